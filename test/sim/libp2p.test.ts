// The same averaging rules over real libp2p peers on 127.0.0.1 (TCP + Noise + Yamux, roster gater, /cohort/model/1).
import { describe, expect, it } from 'vitest';
import { consensusDistance, type PushSumNode } from '../../src/averaging/index.ts';
import type { SecureDpsgdNode } from '../../src/averaging/secure/node.ts';
import { runOnLoopback } from '../../src/net/averaging-transport.ts';
import { VectorLearner } from '../../src/sim/learners.ts';
import { Rng } from '../../src/util/random.ts';

const D = 16;

function vectors(n: number, seed: number): Float32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: D }, () => rng.normal() * 3));
}

function mean(xs: readonly Float32Array[]): Float64Array {
  const m = new Float64Array(D);
  for (const x of xs) x.forEach((v, i) => { m[i] = m[i]! + v / xs.length; });
  return m;
}

describe('averaging over real libp2p peers on loopback', () => {
  it('push-sum: mass is conserved exactly over real libp2p (sum x / sum w = the mean to 1e-9) and the 4 peers converge to it', async () => {
    const xs = vectors(4, 1);
    const r = await runOnLoopback({
      algorithm: 'pushsum', seed: 7, learners: xs.map((x) => new VectorLearner(x)), settings: { fanout: 3 },
      node: { scenario: 'loop', layoutHash: 'h16', rounds: 30, roundMs: 150, deadlineMs: 120, codec: 'f64', weighting: 'uniform', train: false, proximal: false },
    });
    const target = mean(xs);
    const nodes = r.nodes as PushSumNode[];
    // exactness: the total mass (held + shares in flight that no receiver has added) is conserved over the real network,
    // so sum x / sum w is the exact mean; convergence speed depends on how many pushes this (shared, loaded) machine managed
    const byId = new Map(nodes.map((n) => [n.peer, n]));
    const x = new Float64Array(D);
    let w = 0;
    for (const n of nodes) {
      const m = n.mass();
      m.x.forEach((v, i) => { x[i] = x[i]! + v; });
      w += m.w;
      for (const s of n.unacknowledged()) {
        if (byId.get(s.to)?.hasReceived(s.id)) continue;
        s.x.forEach((v, i) => { x[i] = x[i]! + v; });
        w += s.w;
      }
    }
    for (let i = 0; i < D; i++) expect(Math.abs(x[i]! / w - target[i]!)).toBeLessThan(1e-9);
    const startErr = Math.max(...xs.flatMap((v) => Array.from(v, (e, i) => Math.abs(e - target[i]!))));
    for (const n of nodes) {
      const z = n.estimate64();
      for (let i = 0; i < D; i++) expect(Math.abs(z[i]! - target[i]!)).toBeLessThan(startErr * 0.1);
    }
    expect(r.nodes.every((n) => n.stats.bytesSent > 0 && n.stats.messagesReceived > 0)).toBe(true);
  });

  it('D-PSGD: 4 peers agree, and keep the mean when every model that missed a deadline was applied late', async () => {
    const xs = vectors(4, 2);
    const r = await runOnLoopback({
      algorithm: 'dpsgd', seed: 8, learners: xs.map((x) => new VectorLearner(x)),
      node: { scenario: 'loop', layoutHash: 'h16', rounds: 8, roundMs: 400, deadlineMs: 320, codec: 'f32', weighting: 'uniform', train: false, proximal: false },
    });
    expect(consensusDistance(r.estimates)).toBeLessThan(consensusDistance(xs) * 1e-4);
    // a model that misses its deadline is applied late as a correction; only one later than the next mix (a badly stalled machine)
    // leaves that round's W one-sided (documented), so the mean is checked when every missed model was corrected
    const missed = r.nodes.reduce((a, n) => a + n.stats.missedAtDeadline, 0);
    const corrected = r.nodes.reduce((a, n) => a + n.stats.lateApplied, 0);
    const target = mean(xs);
    const got = mean(r.estimates);
    const drift = Math.max(...Array.from(got, (v, i) => Math.abs(v - target[i]!)));
    if (missed === corrected) expect(drift).toBeLessThan(1e-4);
  });

  it('secure D-PSGD (cohort sim --libp2p --secure): each peer sets up its own keys over libp2p; every peer ends on the plain mean, and only masked models travel', async () => {
    const xs = vectors(4, 3);
    const r = await runOnLoopback({
      algorithm: 'dpsgd', seed: 9, secure: true, learners: xs.map((x) => new VectorLearner(x)),
      node: { scenario: 'loop-secure', layoutHash: 'h16', rounds: 4, roundMs: 600, deadlineMs: 480, codec: 'f32', weighting: 'uniform', train: false, proximal: false },
    });
    const nodes = r.nodes as SecureDpsgdNode[];
    // the real key setup ran: announcements and sealed shares went over the wire, nothing was refused
    expect(r.secureSetup!.bytesPerPeer).toBeGreaterThan(0);
    expect(r.secureSetup!.refused).toBe(0);
    // every model a peer sent was masked (a loaded machine may drop a round's mix, never unmask one)
    expect(nodes.every((n) => n.secure.maskedSent > 0 && n.secure.maskedRefused === 0)).toBe(true);
    // complete graph, Metropolis weights 1/4: one mix gives every peer the exact mean; the masks cancel to fixed-point rounding
    const target = mean(xs);
    const mixed = nodes.filter((n) => n.stats.messagesReceived > 0);
    expect(mixed.length).toBe(4);
    for (const e of r.estimates) {
      const err = Math.max(...Array.from(e, (v, i) => Math.abs(v - target[i]!) / Math.max(1, Math.abs(target[i]!))));
      expect(err).toBeLessThan(1e-5);
    }
  });
});

