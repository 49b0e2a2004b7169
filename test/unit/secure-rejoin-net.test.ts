/**
 * A peer restarted during a secure D-PSGD run rejoins the masking with a fresh key (src/averaging/secure/rejoin.ts), over the
 * real network: four libp2p nodes on loopback wired as the runner wires them (test/helpers/secure-rejoin-peers.ts).
 * Peer 3 "dies" in round 2 (its node leaves, its transport closes, its libp2p handler refuses everything, as a killed process's
 * peers see it) and comes back in round 4 with a new node, a RejoinSession and a fresh key. Checked: its receivers rebuild its
 * old secret while it is away; its new key differs from the old; every participant swaps it in before r0 (= its round + lead);
 * it sends no masked model before r0 and one per receiver from r0 on; every decoded sum, before, during and after, equals the plain
 * weighted sum of the same senders' round-start models (max relative error <= 1e-6); a forged rekey announcement is refused.
 */
import { describe, expect, it } from 'vitest';
import { REKEY_CODEC, rekeyLead } from '../../src/averaging/secure/rejoin.ts';
import { useLocalPeers } from '../helpers/local-peers.ts';
import { secureGroup } from '../helpers/secure-rejoin-peers.ts';

const SCENARIO = 'd'.repeat(64);
const ROUNDS = 10;
const ROUND_MS = 3000;
const J = 3;   // the peer that restarts
/** Four libp2p nodes on loopback, each with its own LevelDB store and audit log (the peer side of a daemon). */
const localPeers = useLocalPeers();

describe('secure rejoin over libp2p', () => {
  it('a restarted peer masks again from r0 with a fresh key; every sum stays exact', async () => {
    const g = await secureGroup(localPeers, { scenario: SCENARIO, seed: 6262, rounds: ROUNDS, roundMs: ROUND_MS, length: 530 });
    const { ids, runs } = g;
    const oldPk = Uint8Array.from(runs[J]!.session.publicKeys.get(ids[J]!)!);
    await g.at(2, 0.3);
    g.kill(J);
    await g.at(4, 0.4);
    // back on the same identity, with a fresh key; its setup resolved at once, before any reply was in
    const session = await g.restart(J);
    expect([...session.publicKeys.keys()]).toEqual([ids[J]]);
    const node = runs[J]!.node;
    const r0 = 4 + rekeyLead(ROUND_MS);
    await g.waitFor('the rejoin decision', () => g.decided.has(J), 3 * rekeyLead(ROUND_MS) * ROUND_MS + 20_000);
    expect(g.decided.get(J)).toEqual({ from: r0, why: `masking with a fresh key from round ${r0}` });
    const newPk = session.publicKeys.get(ids[J]!)!;
    expect(Buffer.from(newPk).equals(Buffer.from(oldPk))).toBe(false);
    // a forged announcement (another key, signed by nobody) is refused by every responder
    for (const i of [0, 1]) runs[2]!.t.send(ids[i]!, { kind: 'model', scenario: SCENARIO, round: r0 + 1, layoutHash: 'layout', codec: REKEY_CODEC.announce, payload: new Uint8Array(96).fill(7) });
    await g.waitFor('every round', () => runs.every((r) => r.node.stats.rounds + r.node.secure.roundsNotMixed >= (r === runs[J] ? ROUNDS - 5 : ROUNDS)) && Date.now() > g.startAt + ROUNDS * ROUND_MS, (ROUNDS + 8) * ROUND_MS);
    for (const i of [0, 1, 2]) {
      expect(runs[i]!.responder.rekeyed).toEqual([ids[J]]);
      expect(Buffer.from(runs[i]!.session.publicKeys.get(ids[J]!)!).equals(Buffer.from(newPk))).toBe(true);
      expect(runs[i]!.node.secure.recovered).toBeGreaterThanOrEqual(1);   // peer 3's old secret, while it was away
    }
    expect(runs[0]!.responder.refused + runs[1]!.responder.refused).toBe(2);
    // the joiner sent nothing before r0, then one masked model per receiver (3) per round
    expect(node.secure.maskedSent).toBe(3 * (ROUNDS - r0));
    // every decoded sum equals the plain weighted sum of its senders' round-start models; peer 3 is a sender again from r0
    const withJ = g.sums.filter((s) => s.round >= r0 && s.receiver !== ids[J] && s.senders.includes(ids[J]!));
    expect(withJ.length).toBe(3 * (ROUNDS - r0));
    const err = g.relErr();
    if (process.env.COHORT_PRINT) console.log(JSON.stringify({ sums: g.sums.length, withJ: withJ.length, relErr: err, r0, refused: g.refused }));
    expect(err).toBeLessThanOrEqual(1e-6);
    expect(g.refused.sort()).toEqual(['0<-2:secure-rekey-refused', '1<-2:secure-rekey-refused']);   // the forged announcements only
    g.close();
  }, 180_000);
});
