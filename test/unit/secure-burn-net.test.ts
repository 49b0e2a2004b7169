/**
 * A LIVE peer whose secret was rebuilt must never mask with that key again (docs/privacy.md "Burn notices"), over the real
 * network: four libp2p nodes on loopback wired as the runner wires them (test/helpers/secure-rejoin-peers.ts). Peer 3's masked
 * model to peer 0 in round 2 is held back past peer 0's deadline (a send wrapper, as a loaded machine or a slow link would):
 * peer 0 rebuilds peer 3's secret from its holders' shares although peer 3 is alive. Checked: every holder that released a share
 * (and peer 0, whose own share went in) sent peer 3 a burn notice (each first copy lost in transit: the re-sends, until
 * acknowledged, get through); peer 3 burnt its key once and, on the wire, handed no masked
 * model to its transport after the notice before its fresh key's r0; it rejoined without a restart (src/averaging/secure/burn.ts:
 * the rejoin path of rejoin.ts) and masked from r0 with the new key, swapped in everywhere; every decoded sum at every peer, before,
 * during and after, is exact (max relative error <= 1e-6); a notice naming another dealer is refused and counted, one for a key
 * the peer does not use is ignored (stale) and burns nothing.
 */
import { describe, expect, it } from 'vitest';
import { SECURE_CODEC } from '../../src/averaging/secure/node.ts';
import { rekeyLead } from '../../src/averaging/secure/rejoin.ts';
import { useLocalPeers } from '../helpers/local-peers.ts';
import { withSend } from '../helpers/secure-faults.ts';
import { secureGroup } from '../helpers/secure-rejoin-peers.ts';

const SCENARIO = 'b'.repeat(64);
const ROUNDS = 11;
const ROUND_MS = 3000;
const SLOW = 3;   // the live peer whose model arrives late
const LATE_ROUND = 2;
const localPeers = useLocalPeers();

describe('burn notices over libp2p', () => {
  it('a live peer whose key a receiver rebuilt is told by the holders, masks nothing with that key again and rejoins with a fresh one', async () => {
    /** Every masked model peer SLOW's node handed to its transport: round, receiver, when. */
    const wire: { round: number; to: number; at: number }[] = [];
    let ids: string[] = [];
    const lost = new Set<string>();
    const g = await secureGroup(localPeers, {
      scenario: SCENARIO, seed: 7373, rounds: ROUNDS, roundMs: ROUND_MS, length: 530,
      wire: (i, t) => i !== SLOW ? withSend(t, (to, msg) => {
        // every first burn notice to peer 3 is lost in transit: only the re-sends (until acknowledged) reach it
        if (msg.kind === 'model' && msg.codec === SECURE_CODEC.burnt && !lost.has(`${i}|${msg.participants?.[0]}|${msg.round}`)) { lost.add(`${i}|${msg.participants?.[0]}|${msg.round}`); return; }
        t.send(to, msg);
      }) : withSend(t, (to, msg) => {
        if (msg.kind !== 'model' || msg.codec !== SECURE_CODEC.model) return t.send(to, msg);
        wire.push({ round: msg.round, to: ids.indexOf(to), at: Date.now() });
        // held back a whole round: it reaches peer 0 after that round's deadline there (the round is closed: refused as stale)
        if (msg.round === LATE_ROUND && to === ids[0]) setTimeout(() => t.send(to, msg), ROUND_MS);
        else t.send(to, msg);
      }),
    });
    ids = g.ids;
    const { runs } = g;
    const burnt: { round: number; holder: string; receiver: string; at: number }[] = [];
    const oldPk = Uint8Array.from(runs[SLOW]!.session.publicKeys.get(ids[SLOW]!)!);
    g.rejoinOnBurn(SLOW, (round, holder, receiver) => burnt.push({ round, holder, receiver, at: Date.now() }));
    await g.at(1, 0.3);
    // forged: peer 2 (a holder of every peer at n = 4) names peer 0 as the dealer in a notice to peer 1: refused, counted
    const mk = (shareId: string, payload: Uint8Array) => ({ kind: 'model' as const, scenario: SCENARIO, round: 1, layoutHash: 'layout', codec: SECURE_CODEC.burnt, payload, shareId, participants: [ids[0]!] });
    runs[2]!.t.send(ids[1]!, mk(ids[0]!, runs[2]!.session.publicKeys.get(ids[0]!)!.slice()));
    // a notice for a key peer 1 does not use: stale, ignored, burns nothing
    runs[2]!.t.send(ids[1]!, mk(ids[1]!, new Uint8Array(32).fill(9)));
    await g.waitFor('every round', () => runs.every((r) => r.node.stats.rounds + r.node.secure.roundsNotMixed >= ROUNDS) && Date.now() > g.startAt + ROUNDS * ROUND_MS, (ROUNDS + 8) * ROUND_MS);
    const slow = runs[SLOW]!.node;
    // peer 0 rebuilt the live peer's secret; every holder whose share was released told peer 3
    expect(runs[0]!.node.secure.recovered).toBe(1);
    expect(slow.secure.keyBurnt).toBe(1);
    expect(slow.keyIsBurnt).toBe(false);   // the fresh key is not
    expect(burnt).toHaveLength(1);
    expect(burnt[0]!.round).toBe(LATE_ROUND);
    expect(burnt[0]!.receiver).toBe(ids[0]);
    const released = runs.slice(0, 3).reduce((a, r) => a + r.node.secure.sharesReleased, 0);
    const sent = runs.slice(0, 3).reduce((a, r) => a + r.node.secure.burnNoticesSent, 0);
    expect(released).toBeGreaterThanOrEqual(1);
    expect(sent).toBeGreaterThanOrEqual(released);   // one per released share, plus the rebuilders' own shares
    // notices after the switch name the burnt key: stale there, nothing refused
    expect(slow.secure.burnNotices + slow.secure.burnStale).toBe(sent);
    expect(slow.secure.burnRefused).toBe(0);
    expect(lost.size).toBe(sent);   // every notice's first copy was dropped: all that arrived were re-sends
    // rejoined without a restart: a fresh key, committed, in force everywhere from r0
    const d = g.decided.get(SLOW);
    expect(d?.why).toMatch(/^masking with a fresh key from round \d+/);
    const r0 = d!.from;
    expect(r0).toBeGreaterThanOrEqual(LATE_ROUND + rekeyLead(ROUND_MS));
    expect(r0).toBeLessThan(ROUNDS);
    const newPk = runs[SLOW]!.session.publicKeys.get(ids[SLOW]!)!;
    expect(Buffer.from(newPk).equals(Buffer.from(oldPk))).toBe(false);
    for (const i of [0, 1, 2]) {
      expect(runs[i]!.responder.rekeyed).toEqual([ids[SLOW]]);
      expect(Buffer.from(runs[i]!.session.publicKeys.get(ids[SLOW]!)!).equals(Buffer.from(newPk))).toBe(true);
    }
    // on the wire: nothing left peer 3 between the notice and r0 (none of a round after the one the notice came in), then one
    // masked model per receiver per round from r0, with the new key (the receivers decode them exactly with it: below)
    const before = wire.filter((w) => w.at <= burnt[0]!.at);
    const after = wire.filter((w) => w.at > burnt[0]!.at);
    expect(Math.max(...before.map((w) => w.round))).toBeLessThanOrEqual(LATE_ROUND + 1);
    expect(after.every((w) => w.round >= r0)).toBe(true);
    expect(after).toHaveLength(3 * (ROUNDS - r0));
    expect(slow.secure.maskedSent).toBe(wire.length);
    const withSlow = g.sums.filter((x) => x.round >= r0 && x.receiver !== ids[SLOW] && x.senders.includes(ids[SLOW]!));
    expect(withSlow).toHaveLength(3 * (ROUNDS - r0));
    // the others rebuilt its burnt secret as for any drop and mixed every round; so did peer 3 as a receiver
    for (const i of [0, 1, 2]) expect(runs[i]!.node.secure.roundsNotMixed).toBe(0);
    expect(slow.secure.roundsNotMixed).toBe(0);
    // the forged notice refused and counted, the stale one ignored: peer 1 still masks
    expect(runs[1]!.node.secure.burnRefused).toBe(1);
    expect(runs[1]!.node.secure.burnStale).toBe(1);
    expect(runs[1]!.node.keyIsBurnt).toBe(false);
    expect(runs[1]!.node.secure.maskedSent).toBe(3 * ROUNDS);
    const err = g.relErr();
    if (process.env.COHORT_PRINT) console.log(JSON.stringify({ sums: g.sums.length, relErr: err, burnt, released, sent, wire: wire.length, r0, decided: g.decided.get(SLOW), retries: g.retries.get(SLOW), refused: g.refused }));
    expect(err).toBeLessThanOrEqual(1e-6);
    // refused: the forged notice, and peer 3's held-back model at peer 0 (its round had closed)
    expect(g.refused.sort()).toEqual(['0<-3:stale', '1<-2:unsolicited']);
    g.close();
  }, 180_000);
});
