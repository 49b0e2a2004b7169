/**
 * A peer restarted during a secure D-PSGD run rejoins the masking with a fresh key (src/averaging/secure/rejoin.ts), over the
 * real network: four libp2p nodes on loopback, each with the daemon's PeerTransport (audited sends, real LevelDB audit log), a
 * NetSecureSession (round-0 key setup over the wire), a RekeyResponder and the secure node, wired as the runner wires them.
 * Peer 3 "dies" in round 2 (its node leaves, its transport closes, its libp2p handler refuses everything, as a killed process's
 * peers see it) and comes back in round 4 with a new node, a RejoinSession and a fresh key. Checked: its receivers rebuild its
 * old secret while it is away; its new key differs from the old; every participant swaps it in before r0 (= its round + lead);
 * it sends no masked model before r0 and one per receiver from r0 on; every decoded sum, before, during and after, equals the plain
 * weighted sum of the same senders' round-start models (max relative error <= 1e-6); a forged rekey announcement is refused.
 */
import { describe, expect, it } from 'vitest';
import { decodeWire } from '../../src/averaging/message.ts';
import type { ModelMessage } from '../../src/averaging/types.ts';
import { createNode } from '../../src/averaging/factory.ts';
import { NetSecureSession } from '../../src/averaging/secure/net-session.ts';
import type { SecureDpsgdNode } from '../../src/averaging/secure/node.ts';
import { REKEY_CODEC, RejoinSession, RekeyResponder, rekeyLead, roundZeroKey } from '../../src/averaging/secure/rejoin.ts';
import { PeerTransport } from '../../src/peer/transport.ts';
import { VectorLearner } from '../../src/sim/learners.ts';
import { Rng } from '../../src/util/random.ts';
import { useLocalPeers } from '../helpers/local-peers.ts';

const SCENARIO = 'd'.repeat(64);
const ROUNDS = 10;
const ROUND_MS = 3000;
const P = 530; // the WDBC MLP's size
const J = 3;   // the peer that restarts
/** Four libp2p nodes on loopback, each with its own LevelDB store and audit log (the peer side of a daemon). */
const localPeers = useLocalPeers();

interface Run { t: PeerTransport; session: NetSecureSession | RejoinSession; responder: RekeyResponder; node: SecureDpsgdNode }

describe('secure rejoin over libp2p', () => {
  it('a restarted peer masks again from r0 with a fresh key; every sum stays exact', async () => {
    const { peers: group, ids } = await localPeers(4, 6262);
    const startAt = Date.now() + 6000;
    const rng = new Rng(11);
    const snaps = new Map<string, Float32Array>();
    const sums: { receiver: string; round: number; sum: Float64Array; senders: string[] }[] = [];
    const refused: string[] = [];
    const down = [false, false, false, false];
    const runs: Run[] = [];
    const cfg = { scenario: SCENARIO, layoutHash: 'layout', rounds: ROUNDS, roundMs: ROUND_MS, deadlineMs: 1500, codec: 'f32' as const, weighting: 'uniform' as const, train: false, proximal: false };
    const watch = (i: number, node: SecureDpsgdNode): void => {
      node.onSnapshot = (r, v) => snaps.set(`${ids[i]}|${r}`, v.slice());
      node.onSum = (r, s, senders) => sums.push({ receiver: ids[i]!, round: r, sum: s.slice(), senders: [...senders] });
      node.onReject = (reason, from) => refused.push(`${i}<-${ids.indexOf(from)}:${reason}`);
    };
    const transport = (i: number): PeerTransport => new PeerTransport(group[i]!.node, group[i]!.audit, SCENARIO, { at: () => ids, all: () => ids }, startAt, { kind: 'complete' }, ROUND_MS);
    for (const [i, { node, identitySeed }] of group.entries()) {
      const t = transport(i);
      const session = new NetSecureSession({ scenario: SCENARIO, layoutHash: 'layout', identitySeed, graph: t.staticGraph(), deadlineMs: 30_000,
        onRefused: (from, reason) => refused.push(`${i}<-${ids.indexOf(from)}:${reason}`) });
      const responder = new RekeyResponder({ scenario: SCENARIO, layoutHash: 'layout', roundMs: ROUND_MS, session, mine: () => roundZeroKey(session, ids[i]!, SCENARIO, identitySeed),
        onRefused: (from, reason) => refused.push(`${i}<-${ids.indexOf(from)}:${reason}`) });
      const x = Float32Array.from({ length: P }, () => rng.normal());
      const el = createNode('dpsgd', session.wrap(responder.wrap(t)), new VectorLearner(x), { ...cfg, seed: i + 1 }, { secure: session }) as SecureDpsgdNode;
      responder.node = el;
      watch(i, el);
      runs.push({ t, session, responder, node: el });
      node.models.onModel({
        receive: (_h, bytes, from) => {
          if (down[i]) return { ok: false, reason: 'unknown-scenario' };
          runs[i]!.t.deliver(from.toString(), decodeWire(bytes) as ModelMessage);
          return { ok: true };
        },
      });
      session.setup().catch((e: unknown) => refused.push(`setup ${i}: ${String(e)}`));
      el.start();
    }
    const waitFor = async (what: string, ok: () => boolean, ms: number): Promise<void> => {
      const end = Date.now() + ms;
      while (!ok()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; refused: ${refused.join(', ')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const at = (round: number, frac: number): Promise<void> => waitFor(`round ${round}`, () => Date.now() >= startAt + (round + frac) * ROUND_MS, (round + 10) * ROUND_MS + 20_000);
    const oldPk = Uint8Array.from(runs[J]!.session.publicKeys.get(ids[J]!)!);
    await at(2, 0.3);
    // kill -9: the run stops, nothing reaches the peer any more
    down[J] = true;
    const old = runs[J]!;
    old.node.leave();
    old.session.close();
    old.t.close();
    await at(4, 0.4);
    // back on the same identity, with a fresh key
    const t = transport(J);
    let decided: { from: number; why: string } | undefined;
    const session = new RejoinSession({ scenario: SCENARIO, layoutHash: 'layout', identitySeed: group[J]!.identitySeed, graph: t.staticGraph(), roundMs: ROUND_MS, rounds: ROUNDS,
      onDecided: (from, why) => { decided = { from, why }; node.sendsFrom = from; }, onRefused: (from, reason) => refused.push(`J<-${ids.indexOf(from)}:${reason}`) });
    const responder = new RekeyResponder({ scenario: SCENARIO, layoutHash: 'layout', roundMs: ROUND_MS, session, mine: () => session.mine });
    responder.joiner = session;
    const node = createNode('dpsgd', session.wrap(responder.wrap(t)), new VectorLearner(Float32Array.from({ length: P }, () => rng.normal())), { ...cfg, seed: 99 }, { secure: session }) as SecureDpsgdNode;
    node.sendsFrom = Number.POSITIVE_INFINITY;
    responder.node = node;
    watch(J, node);
    runs[J] = { t, session, responder, node };
    down[J] = false;
    // the setup never holds the node's rounds back (they share the transport's queue): it resolves before any reply is in
    await session.setup();
    expect([...session.publicKeys.keys()]).toEqual([ids[J]]);
    node.rejoin();
    const r0 = 4 + rekeyLead(ROUND_MS);
    await waitFor('the rejoin decision', () => decided !== undefined, 3 * rekeyLead(ROUND_MS) * ROUND_MS + 20_000);
    expect(decided).toEqual({ from: r0, why: `masking with a fresh key from round ${r0}` });
    const newPk = session.publicKeys.get(ids[J]!)!;
    expect(Buffer.from(newPk).equals(Buffer.from(oldPk))).toBe(false);
    // a forged announcement (another key, signed by nobody) is refused by every responder
    for (const i of [0, 1]) runs[2]!.t.send(ids[i]!, { kind: 'model', scenario: SCENARIO, round: r0 + 1, layoutHash: 'layout', codec: REKEY_CODEC.announce, payload: new Uint8Array(96).fill(7) });
    await waitFor('every round', () => runs.every((r) => r.node.stats.rounds + r.node.secure.roundsNotMixed >= (r === runs[J] ? ROUNDS - 5 : ROUNDS)) && Date.now() > startAt + ROUNDS * ROUND_MS, (ROUNDS + 8) * ROUND_MS);
    for (const i of [0, 1, 2]) {
      expect(runs[i]!.responder.rekeyed).toEqual([ids[J]]);
      expect(Buffer.from(runs[i]!.session.publicKeys.get(ids[J]!)!).equals(Buffer.from(newPk))).toBe(true);
      expect(runs[i]!.node.secure.recovered).toBeGreaterThanOrEqual(1);   // peer 3's old secret, while it was away
    }
    expect(runs[0]!.responder.refused + runs[1]!.responder.refused).toBe(2);
    // the joiner sent nothing before r0, then one masked model per receiver (3) per round
    expect(node.secure.maskedSent).toBe(3 * (ROUNDS - r0));
    // every decoded sum equals the plain weighted sum of its senders' round-start models; peer 3 is a sender again from r0
    const withJ = sums.filter((s) => s.round >= r0 && s.receiver !== ids[J] && s.senders.includes(ids[J]!));
    expect(withJ.length).toBe(3 * (ROUNDS - r0));
    let err = 0, scale = 0;
    for (const { round, sum, senders } of sums) {
      const w = 1 / 4;   // complete graph of 4: Metropolis-Hastings weights 1 / (1 + 3)
      for (let k = 0; k < P; k++) {
        const plain = senders.reduce((a, s) => a + w * snaps.get(`${s}|${round}`)![k]!, 0);
        err = Math.max(err, Math.abs(sum[k]! - plain));
        scale = Math.max(scale, Math.abs(plain));
      }
    }
    if (process.env.COHORT_PRINT) console.log(JSON.stringify({ sums: sums.length, withJ: withJ.length, relErr: err / scale, r0, refused }));
    expect(err / scale).toBeLessThanOrEqual(1e-6);
    expect(refused.sort()).toEqual(['0<-2:secure-rekey-refused', '1<-2:secure-rekey-refused']);   // the forged announcements only
    for (const r of runs) { r.node.leave(); r.session.close(); r.t.close(); }
  }, 180_000);
});
