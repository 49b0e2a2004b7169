/**
 * Secure Epidemic Learning over the real network: four libp2p nodes on loopback, each with the daemon's PeerTransport (audited
 * sends, real LevelDB audit log), a NetSecureSession (key setup over the wire) and the secure node with the public EL draw, as
 * the runner builds them (createNode('epidemic', ..., { s, secure })). Every receiver's decoded sum equals the plain weighted sum
 * of the same senders' round-start models (max relative error <= 1e-6), nothing is refused, and a receiver drawn by fewer than
 * two senders receives nothing.
 */
import { describe, expect, it } from 'vitest';
import { decodeWire } from '../../src/averaging/message.ts';
import type { ModelMessage } from '../../src/averaging/types.ts';
import { createNode } from '../../src/averaging/factory.ts';
import { NetSecureSession } from '../../src/averaging/secure/net-session.ts';
import type { SecureDpsgdNode } from '../../src/averaging/secure/node.ts';
import { publicRoundGraph } from '../../src/averaging/secure/receivers.ts';
import { PeerTransport } from '../../src/peer/transport.ts';
import { VectorLearner } from '../../src/sim/learners.ts';
import { Rng } from '../../src/util/random.ts';
import { useLocalPeers } from '../helpers/local-peers.ts';

const SCENARIO = 'e'.repeat(64);
const ROUNDS = 4;
const ROUND_MS = 3000;
const S = 2;
const P = 530; // the WDBC MLP's size
const localPeers = useLocalPeers();

describe('secure Epidemic Learning over libp2p', () => {
  it('masked sums equal the plain sums of the public senders, no refusals', async () => {
    const { peers: group, ids } = await localPeers(4, 5151);
    const startAt = Date.now() + 6000; // keys and shares are agreed before round 0
    const rng = new Rng(9);
    const snaps = new Map<string, Float32Array>();
    const sums: { receiver: string; round: number; sum: Float64Array; senders: string[] }[] = [];
    const refused: string[] = [];
    const peers = group.map(({ node, audit, identitySeed }, i) => {
      const t = new PeerTransport(node, audit, SCENARIO, { at: () => ids, all: () => ids }, startAt, { kind: 'complete' }, ROUND_MS);
      const session = new NetSecureSession({ scenario: SCENARIO, layoutHash: 'layout', identitySeed, graph: t.staticGraph(), deadlineMs: 30_000,
        onRefused: (from, reason) => refused.push(`${i}<-${ids.indexOf(from)}:${reason}`) });
      node.models.onModel({
        receive: (_h, bytes, from) => {
          const msg = decodeWire(bytes);
          t.deliver(from.toString(), msg as ModelMessage);
          return { ok: true };
        },
      });
      const x = Float32Array.from({ length: P }, () => rng.normal());
      const el = createNode('epidemic', session.wrap(t), new VectorLearner(x), {
        scenario: SCENARIO, layoutHash: 'layout', rounds: ROUNDS, roundMs: ROUND_MS, deadlineMs: 2000, codec: 'f32', seed: i + 1,
        weighting: 'uniform', train: false, proximal: false,
      }, { s: S, secure: session }) as SecureDpsgdNode;
      el.onSnapshot = (r, v) => snaps.set(`${ids[i]}|${r}`, v.slice());
      el.onSum = (r, s, senders) => sums.push({ receiver: ids[i]!, round: r, sum: s.slice(), senders: [...senders] });
      return { t, session, el };
    });
    const setupErrors: string[] = [];
    for (const p of peers) {
      p.el.onReject = (reason, from) => refused.push(`node<-${ids.indexOf(from)}:${reason}`);
      p.session.setup().catch((e: unknown) => setupErrors.push(String(e)));
      p.el.start();
    }
    await new Promise<void>((resolve, reject) => {
      const end = startAt + (ROUNDS + 6) * ROUND_MS;
      const poll = setInterval(() => {
        if (peers.every((p) => p.el.stats.rounds >= ROUNDS)) { clearInterval(poll); resolve(); }
        else if (Date.now() > end) { clearInterval(poll); reject(new Error(`rounds mixed: ${peers.map((p) => p.el.stats.rounds).join(',')}; setup: ${setupErrors.join('; ')}; refused: ${refused.join(', ')}; sums ${sums.length}`)); }
      }, 200);
    });
    let err = 0, scale = 0, nonEmpty = 0;
    for (const { receiver, round, sum, senders } of sums) {
      const expected = publicRoundGraph(ids, S, SCENARIO, round).senders.get(receiver)!;
      expect([...senders].sort()).toEqual([...expected]);
      if (senders.length === 0) continue;
      nonEmpty++;
      const w = 1 / (senders.length + 1);
      for (let i = 0; i < P; i++) {
        const plain = senders.reduce((a, k) => a + w * snaps.get(`${k}|${round}`)![i]!, 0);
        err = Math.max(err, Math.abs(sum[i]! - plain));
        scale = Math.max(scale, Math.abs(plain));
      }
    }
    if (process.env.COHORT_PRINT) console.log(JSON.stringify({ sums: sums.length, nonEmpty, relErr: err / scale, maskedSent: peers.map((p) => p.el.secure.maskedSent) }));
    expect(nonEmpty).toBeGreaterThan(0);
    expect(err / scale).toBeLessThanOrEqual(1e-6);
    expect(refused).toEqual([]);
    for (const p of peers) {
      expect(p.el.name).toBe('epidemic');
      expect(p.el.secure.maskedRefused + p.el.secure.sharesRefused + p.el.secure.roundsNotMixed).toBe(0);
      p.el.leave();
      p.session.close();
      p.t.close();
    }
  }, 120_000);
});
