/**
 * Held-out n and 95% intervals of a site's evaluation (src/engine/evaluate.ts: computeIntervals through
 * Trainer.evaluateWithIntervals), on real onnxruntime sessions: the point values equal evaluate()'s, accuracy's interval is
 * Wilson's for the hit count, AUC / balanced accuracy / Dice / C-index come with a seeded bootstrap that contains the value.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Trainer, releaseSessions } from '../../src/engine/index.ts';
import type { SampleSet } from '../../src/data/samples.ts';
import { Rng } from '../../src/util/random.ts';
import { wilsonInterval } from '../../src/util/stats.ts';
import { ellipses, tabular } from './engine-fixtures.ts';

afterAll(releaseSessions);

const cpu = { batchSize: 16, seed: 1, providers: ['cpu' as const] };

describe('classification', () => {
  it('n, Wilson for accuracy, bootstrap for AUC and balanced accuracy; values equal evaluate(); same seed, same interval', async () => {
    const train = tabular(160, 6, 1), clean = tabular(37, 6, 2);
    // every fifth held-out label flipped: no model is perfect on it, so every interval has width
    const test: SampleSet = { ...clean, targets: { label: { shape: [], data: clean.targets.label!.data.map((y, i) => (i % 5 === 0 ? 1 - y : y)) } } };
    const t = await Trainer.create({ ...cpu, model: { type: 'mlp', hidden: [8], classes: 2 }, optimizer: { type: 'adam', lr: 0.02 } }, train);
    for (let e = 0; e < 5; e++) await t.trainEpoch(train);
    const plain = await t.evaluate(test);
    const { metrics, evaluation } = await t.evaluateWithIntervals(test, { seed: 3 });
    expect(metrics).toEqual(plain);
    expect(evaluation.n).toBe(37);
    const acc = evaluation.scores.accuracy!;
    expect(acc.method).toBe('wilson');
    expect(acc.value).toBe(plain.accuracy);
    const w = wilsonInterval(Math.round(acc.value * 37), 37);
    expect([acc.lo, acc.hi]).toEqual([w.lo, w.hi]);
    for (const k of ['auc', 'balancedAccuracy'] as const) {
      const s = evaluation.scores[k]!;
      expect(s.method).toBe('bootstrap');
      expect(s.value).toBe(plain[k]);
      expect(s.lo).toBeLessThanOrEqual(s.value);
      expect(s.hi).toBeGreaterThanOrEqual(s.value);
      expect(s.hi - s.lo).toBeGreaterThan(0);
      expect(s.hi).toBeLessThanOrEqual(1);
    }
    expect((await t.evaluateWithIntervals(test, { seed: 3 })).evaluation).toEqual(evaluation);
    await t.dispose();
  });
});

describe('segmentation and survival', () => {
  it('Dice gets a bootstrap interval over samples', async () => {
    const data = ellipses(12, [16, 16], 5);
    const t = await Trainer.create({ ...cpu, batchSize: 4, model: { type: 'unet2d', base: 4, depth: 1 }, optimizer: { type: 'adam', lr: 5e-3 } }, data);
    for (let e = 0; e < 2; e++) await t.trainEpoch(data);
    const { metrics, evaluation } = await t.evaluateWithIntervals(data);
    expect(evaluation.n).toBe(12);
    const d = evaluation.scores.dice!;
    expect(d.method).toBe('bootstrap');
    expect(d.value).toBeCloseTo(metrics.dice!, 6);
    expect(d.lo).toBeLessThanOrEqual(d.value + 1e-12);
    expect(d.hi).toBeGreaterThanOrEqual(d.value - 1e-12);
    await t.dispose();
  });

  it('the C-index of a Cox model gets a bootstrap interval', async () => {
    const rng = new Rng(9);
    const n = 60;
    const x = Float32Array.from({ length: n * 2 }, () => rng.normal());
    const time = Float32Array.from({ length: n }, (_, i) => Math.round((-Math.log(1 - rng.next()) / Math.exp(x[i * 2]!)) * 20) / 20);
    const event = Float32Array.from({ length: n }, () => (rng.next() < 0.7 ? 1 : 0));
    const data: SampleSet = { size: n, inputs: { features: { shape: [2], data: x } }, targets: { time: { shape: [], data: time }, event: { shape: [], data: event } } };
    const t = await Trainer.create({ ...cpu, model: { type: 'mlp', hidden: [], classes: 1 }, loss: { type: 'cox' }, optimizer: { type: 'adam', lr: 0.05 } }, data);
    for (let e = 0; e < 5; e++) await t.trainEpoch(data);
    const { metrics, evaluation } = await t.evaluateWithIntervals(data);
    const c = evaluation.scores.c_index!;
    expect(c).toMatchObject({ value: metrics.c_index, method: 'bootstrap' });
    expect(c.lo).toBeLessThanOrEqual(c.value);
    expect(c.hi).toBeGreaterThanOrEqual(c.value);
    expect(c.hi - c.lo).toBeGreaterThan(0);
    await t.dispose();
  });
});
