/**
 * Regression in the engine (issue 13.4): the metrics by hand, and a real ORT Trainer with the mse loss on a linear target: its
 * eval output is the value itself (no sigmoid) and evaluate() reports r2 / mae / rmse that match the host-side formulas.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Trainer, releaseSessions } from '../../src/engine/index.ts';
import { meanAbsoluteError, r2, rootMeanSquaredError } from '../../src/engine/metrics.ts';
import type { SampleSet } from '../../src/data/samples.ts';
import { Rng } from '../../src/util/random.ts';

afterAll(releaseSessions);

describe('regression metrics', () => {
  it('r2, MAE and RMSE by hand', () => {
    const y = [1, 2, 3, 4];
    expect(r2(y, y)).toBe(1);
    expect(r2([2.5, 2.5, 2.5, 2.5], y)).toBe(0); // the mean explains nothing
    expect(r2([4, 3, 2, 1], y)).toBeCloseTo(1 - 20 / 5, 12); // worse than the mean: negative
    expect(meanAbsoluteError([1, 2, 3, 6], y)).toBe(0.5);
    expect(rootMeanSquaredError([1, 2, 3, 6], y)).toBe(1);
    expect(r2([1, 1], [3, 3])).toBeNaN(); // constant target
  });

  it('an mse MLP with one output learns y = 2 x0 - x1 + 0.5; eval outputs the value and reports r2/mae/rmse', async () => {
    const rng = new Rng(5);
    const n = 256;
    const x = Float32Array.from({ length: n * 2 }, () => rng.normal());
    const y = Float32Array.from({ length: n }, (_, i) => 2 * x[2 * i]! - x[2 * i + 1]! + 0.5);
    const set: SampleSet = { size: n, inputs: { features: { shape: [2], data: x } }, targets: { label: { shape: [], data: y } } };
    const t = await Trainer.create({ model: { type: 'mlp', hidden: [], classes: 1 }, loss: { type: 'mse' }, optimizer: { type: 'adam', lr: 0.05 },
      batchSize: 32, seed: 1, providers: ['cpu'] }, set);
    for (let e = 0; e < 60; e++) await t.trainEpoch(set, { rng });
    const pred = (await t.predict(set)).prob;
    expect(Math.min(...pred)).toBeLessThan(-2); // no sigmoid squashing the value into (0, 1)
    expect(Math.max(...pred)).toBeGreaterThan(3);
    const m = await t.evaluate(set);
    expect(m.r2).toBeGreaterThan(0.99);
    expect(m.r2).toBeCloseTo(r2(pred, y), 6);
    expect(m.mae).toBeCloseTo(meanAbsoluteError(pred, y), 6);
    expect(m.rmse).toBeCloseTo(rootMeanSquaredError(pred, y), 6);
    expect(m.accuracy).toBeUndefined();
    await t.dispose();
  });
});
