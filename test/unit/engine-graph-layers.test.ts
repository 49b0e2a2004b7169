// Composite layers in ORT: batch/instance/group norm statistics and seeded dropout masks.
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/engine/graph/index.ts';
import { gradients } from '../../src/engine/autodiff/index.ts';
import { Rng } from '../../src/util/random.ts';
import { run, session } from '../helpers/float64/ort.ts';

const normal = (n: number, seed: number): Float32Array => {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => 2 + 3 * r.normal());
};

describe('batchNorm', () => {
  it('normalises with batch statistics and returns PyTorch-style running statistics', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', [4, 2, 3]);
    const ones = g.constant([1, 1]);
    const zeros = g.constant([0, 0]);
    const { y, runningMean, runningVar } = g.batchNorm(x, ones, zeros, g.input('rm', [2]), g.input('rv', [2]), { training: true, momentum: 0.1 });
    g.output(y, 'y');
    g.output(runningMean!, 'rm_new');
    g.output(runningVar!, 'rv_new');
    const xs = normal(24, 1);
    const out = await run(await session(g), {
      x: { data: xs, shape: [4, 2, 3] }, rm: { data: Float32Array.from([0, 1]), shape: [2] }, rv: { data: Float32Array.from([1, 2]), shape: [2] },
    });
    for (let c = 0; c < 2; c++) {
      const vals: number[] = [];
      const ys: number[] = [];
      for (let n = 0; n < 4; n++) for (let i = 0; i < 3; i++) { vals.push(xs[n * 6 + c * 3 + i]); ys.push(out.y[n * 6 + c * 3 + i]); }
      const mean = vals.reduce((a, b) => a + b) / 12;
      const varUnbiased = vals.reduce((a, b) => a + (b - mean) ** 2, 0) / 11;
      expect(ys.reduce((a, b) => a + b) / 12).toBeCloseTo(0, 5);
      expect(ys.reduce((a, b) => a + b * b, 0) / 12).toBeCloseTo(1, 3);
      expect(out.rm_new[c]).toBeCloseTo(0.9 * [0, 1][c] + 0.1 * mean, 5);
      expect(out.rv_new[c]).toBeCloseTo(0.9 * [1, 2][c] + 0.1 * varUnbiased, 4);
    }
  });

  it('uses the running statistics in eval mode', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', [1, 2, 2]);
    const { y } = g.batchNorm(x, g.constant([2, 1]), g.constant([0, 1]), g.constant([1, -1]), g.constant([4, 1]), { training: false, eps: 0 });
    g.output(y, 'y');
    const out = await run(await session(g), { x: { data: Float32Array.from([3, 5, 0, 1]), shape: [1, 2, 2] } });
    expect([...out.y]).toEqual([2, 4, 2, 3]);
  });
});

describe('groupNorm and instanceNorm', () => {
  it('groupNorm with one group per channel equals instanceNorm', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 3, 4, 4]);
    const gamma = g.constant([1, 2, 3]);
    const beta = g.constant([0, 1, -1]);
    g.output(g.groupNorm(x, 3, gamma, beta), 'gn');
    g.output(g.instanceNorm(x, gamma, beta), 'in');
    const out = await run(await session(g), { x: { data: normal(96, 2), shape: [2, 3, 4, 4] } });
    out.gn.forEach((v, i) => expect(v).toBeCloseTo(out.in[i], 5));
    // channel 0 of sample 0 is standardised
    const c0 = [...out.in.slice(0, 16)];
    expect(c0.reduce((a, b) => a + b) / 16).toBeCloseTo(0, 5);
    expect(c0.reduce((a, b) => a + b * b, 0) / 16).toBeCloseTo(1, 3);
  });
});

describe('maxPool backward', () => {
  it('shares the gradient between tied maxima (the window total stays dY)', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', [1, 1, 2, 4]);
    const y = g.maxPool(x, { kernel: 2 });
    const [dx] = gradients(g, g.reduceSum(g.mul(y, g.constant(8))), [x]);
    g.output(dx, 'dx');
    const out = await run(await session(g), { x: { data: Float32Array.from([1, 1, 0, 5, 1, 1, 2, 3]), shape: [1, 1, 2, 4] } });
    expect([...out.dx]).toEqual([2, 2, 0, 8, 2, 2, 0, 0]);
  });
});

describe('dropout', () => {
  async function masks(ratio: number, seeds: number[], salt = 0): Promise<{ y: Float32Array[]; dx: Float32Array[] }> {
    const g = new GraphBuilder();
    const x = g.input('x', [100, 100]);
    const seed = g.input('seed', [], 'int64');
    const y = g.dropout(x, ratio, seed, salt);
    const [dx] = gradients(g, g.reduceSum(y), [x]);
    g.output(y, 'y');
    g.output(dx, 'dx');
    const s = await session(g);
    const res = { y: [] as Float32Array[], dx: [] as Float32Array[] };
    for (const sd of seeds) {
      const out = await run(s, { x: { data: new Float32Array(10000).fill(1), shape: [100, 100] }, seed: { data: BigInt64Array.from([BigInt(sd)]), shape: [] } });
      res.y.push(out.y);
      res.dx.push(out.dx);
    }
    return res;
  }

  it('drops the requested fraction, scales the rest, and reuses the mask in backward', async () => {
    const { y, dx } = await masks(0.3, [7]);
    const kept = y[0].filter((v) => v !== 0);
    expect(kept.length / 10000).toBeGreaterThan(0.68);
    expect(kept.length / 10000).toBeLessThan(0.72);
    kept.forEach((v) => expect(v).toBeCloseTo(1 / 0.7, 5));
    expect([...dx[0]]).toEqual([...y[0]]); // x = 1, so dL/dx = mask / (1 - p) = y
  });

  it('is a pure function of the seed (same seed, same mask; new seed or salt, new mask)', async () => {
    const a = await masks(0.5, [1, 1, 2]);
    expect([...a.y[0]]).toEqual([...a.y[1]]);
    const same = a.y[0].filter((v, i) => (v === 0) === (a.y[2][i] === 0)).length / 10000;
    expect(same).toBeGreaterThan(0.45);
    expect(same).toBeLessThan(0.55); // independent masks agree about half the time
    const b = await masks(0.5, [1], 3);
    expect([...b.y[0]]).not.toEqual([...a.y[0]]);
  });

  it('is the identity without a seed (eval)', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [3]);
    expect(g.dropout(x, 0.5, null)).toBe(x);
  });
});
