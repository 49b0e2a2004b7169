// The same averaging rules over real libp2p peers on 127.0.0.1 (TCP + Noise + Yamux, roster gater, /cohort/model/1).
import { describe, expect, it } from 'vitest';
import { consensusDistance, type PushSumNode } from '../../src/averaging/index.ts';
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
  it('push-sum: 4 peers reach the exact mean', async () => {
    const xs = vectors(4, 1);
    const r = await runOnLoopback({
      algorithm: 'pushsum', seed: 7, learners: xs.map((x) => new VectorLearner(x)), settings: { fanout: 1 },
      node: { scenario: 'loop', layoutHash: 'h16', rounds: 40, roundMs: 60, deadlineMs: 50, codec: 'f64', weighting: 'uniform', train: false, proximal: false },
    });
    const target = mean(xs);
    for (const n of r.nodes) {
      const z = (n as PushSumNode).estimate64();
      for (let i = 0; i < D; i++) expect(Math.abs(z[i]! - target[i]!)).toBeLessThan(1e-6);
    }
    expect(r.nodes.every((n) => n.stats.bytesSent > 0 && n.stats.messagesReceived > 0)).toBe(true);
  });

  it('D-PSGD: 4 peers agree and keep the mean', async () => {
    const xs = vectors(4, 2);
    const r = await runOnLoopback({
      algorithm: 'dpsgd', seed: 8, learners: xs.map((x) => new VectorLearner(x)),
      node: { scenario: 'loop', layoutHash: 'h16', rounds: 15, roundMs: 120, deadlineMs: 100, codec: 'f32', weighting: 'uniform', train: false, proximal: false },
    });
    expect(consensusDistance(r.estimates)).toBeLessThan(consensusDistance(xs) * 1e-4);
    const target = mean(xs);
    const got = mean(r.estimates);
    for (let i = 0; i < D; i++) expect(Math.abs(got[i]! - target[i]!)).toBeLessThan(1e-4);
  });
});
