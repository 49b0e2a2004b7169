// DP-SGD in the ONNX train step (src/engine/dp.ts) against the update computed on the host from per-sample gradients,
// the noise's scale, refusals, and the accountant's record of the steps taken.
import { afterAll, describe, expect, it } from 'vitest';
import { Trainer, releaseSessions } from '../../src/engine/index.ts';
import { epsilonSpent } from '../../src/privacy/accountant.ts';
import type { SampleSet } from '../../src/data/samples.ts';
import { CohortError } from '../../src/util/errors.ts';
import { tabular } from './engine-fixtures.ts';

afterAll(releaseSessions);

function row(set: SampleSet, i: number): SampleSet {
  const pick = (t: { shape: readonly number[]; data: Float32Array }) => {
    const per = t.shape.reduce((a, b) => a * b, 1);
    return { shape: [...t.shape], data: t.data.slice(i * per, (i + 1) * per) };
  };
  return {
    size: 1,
    inputs: Object.fromEntries(Object.entries(set.inputs).map(([k, t]) => [k, pick(t)])),
    targets: Object.fromEntries(Object.entries(set.targets).map(([k, t]) => [k, pick(t)])),
  };
}

const model = { type: 'mlp' as const, hidden: [8], classes: 2 };
const sgd = { type: 'sgd' as const, lr: 1 };

describe('DP-SGD train step', () => {
  it('equals -lr * mean of per-sample gradients each clipped to C (sigma 0, q = 1: every sample drawn)', async () => {
    const data = tabular(6, 5, 3);
    const C = 0.05; // small enough that every per-sample gradient here is clipped
    const ref = await Trainer.create({ model, optimizer: sgd, batchSize: 6, seed: 11, providers: ['cpu'] }, data);
    const x0 = ref.getParameters();
    const mean = new Float64Array(x0.length);
    let clipped = 0;
    for (let i = 0; i < 6; i++) {
      const { gradient } = await ref.lossAndGradient(row(data, i));
      const norm = Math.sqrt(gradient.reduce((a, v) => a + v * v, 0));
      if (norm > C) clipped++;
      const f = Math.min(1, C / norm);
      gradient.forEach((v, k) => { mean[k] += (v * f) / 6; });
    }
    expect(clipped).toBeGreaterThan(3);
    const dp = await Trainer.create({ model, optimizer: sgd, batchSize: 6, seed: 11, providers: ['cpu'], dp: { clip: C, noiseMultiplier: 0, noiseSeed: 1 } }, data);
    expect(Array.from(dp.getParameters())).toEqual(Array.from(x0));
    await dp.trainSteps(data, 1);
    const x1 = dp.getParameters();
    let worst = 0;
    for (let k = 0; k < x0.length; k++) worst = Math.max(worst, Math.abs((x0[k] - x1[k]) - mean[k]));
    expect(worst).toBeLessThan(1e-6);
    // and a large clip gives the plain (unclipped) mean gradient: the same step as the ordinary train step
    const big = await Trainer.create({ model, optimizer: sgd, batchSize: 6, seed: 11, providers: ['cpu'], dp: { clip: 1e6, noiseMultiplier: 0, noiseSeed: 1 } }, data);
    const plain = await Trainer.create({ model, optimizer: sgd, batchSize: 6, seed: 11, providers: ['cpu'] }, data);
    await big.trainSteps(data, 1);
    await plain.trainSteps(data, 1);
    const a = big.getParameters(), b = plain.getParameters();
    for (let k = 0; k < a.length; k++) expect(Math.abs(a[k] - b[k])).toBeLessThan(1e-6);
  });

  it('adds N(0, (sigma C)^2) per coordinate, divided by the expected batch size', async () => {
    const data = tabular(8, 20, 4);
    const C = 0.5, sigma = 2, n = 8;
    const mk = (s: number) => Trainer.create({ model: { type: 'mlp', hidden: [16], classes: 2 }, optimizer: sgd, batchSize: n, seed: 5,
      providers: ['cpu'], dp: { clip: C, noiseMultiplier: s, noiseSeed: 9 } }, data);
    const quiet = await mk(0), noisy = await mk(sigma);
    await quiet.trainSteps(data, 1);
    await noisy.trainSteps(data, 1);
    const a = quiet.getParameters(), b = noisy.getParameters();
    const z = Array.from(a, (v, k) => ((v - b[k]) * n) / (sigma * C));
    const m = z.reduce((s, v) => s + v, 0) / z.length;
    const sd = Math.sqrt(z.reduce((s, v) => s + (v - m) ** 2, 0) / (z.length - 1));
    expect(z.length).toBeGreaterThan(300);
    expect(Math.abs(m)).toBeLessThan(0.2);
    expect(sd).toBeGreaterThan(0.9);
    expect(sd).toBeLessThan(1.1);
    // same noise seed: the same draw; the OS CSPRNG (no seed): a different one
    const again = await mk(sigma);
    await again.trainSteps(data, 1);
    expect(Array.from(again.getParameters())).toEqual(Array.from(b));
    const os = await Trainer.create({ model: { type: 'mlp', hidden: [16], classes: 2 }, optimizer: sgd, batchSize: n, seed: 5,
      providers: ['cpu'], dp: { clip: C, noiseMultiplier: sigma } }, data);
    await os.trainSteps(data, 1);
    expect(Array.from(os.getParameters())).not.toEqual(Array.from(b));
  });

  it('Poisson sampling at q = B/n; an epoch is n/B steps; the phases feed the accountant', async () => {
    const data = tabular(60, 5, 6);
    const t = await Trainer.create({ model, optimizer: { type: 'adam', lr: 0.01 }, batchSize: 10, seed: 2, providers: ['cpu'],
      dp: { clip: 1, noiseMultiplier: 1.1, noiseSeed: 3 } }, data);
    const r = await t.trainEpoch(data);
    expect(r.steps).toBe(6);
    await t.trainSteps(data, 4);
    expect(t.privacyPhases).toEqual([{ q: 10 / 60, sigma: 1.1, steps: 10 }]);
    const eps = epsilonSpent(t.privacyPhases, 1e-5).epsilon;
    expect(eps).toBeGreaterThan(0);
    expect(Number.isFinite(eps)).toBe(true);
  });

  it('refuses models without per-sample gradients (BatchNorm, Cox loss) and bad settings, with the reason', async () => {
    const data = tabular(8, 4, 1);
    const rejects = async (cfg: Parameters<typeof Trainer.create>[0], set: SampleSet, re: RegExp): Promise<void> => {
      const e = await Trainer.create(cfg, set).then(() => null, (x: unknown) => x);
      expect(e).toBeInstanceOf(CohortError);
      expect((e as CohortError).code).toBe('DP_UNSUPPORTED');
      expect((e as Error).message).toMatch(re);
    };
    const surv: SampleSet = { size: 8, inputs: data.inputs, targets: { time: { shape: [], data: Float32Array.from({ length: 8 }, (_, i) => i + 1) }, event: { shape: [], data: Float32Array.from({ length: 8 }, (_, i) => i % 2) } } };
    await rejects({ model: { type: 'mlp', hidden: [], classes: 1 }, loss: { type: 'cox' }, optimizer: sgd, batchSize: 4, seed: 1, dp: { clip: 1, noiseMultiplier: 1 } }, surv, /Cox/);
    await rejects({ model, optimizer: sgd, batchSize: 4, seed: 1, dp: { clip: 0, noiseMultiplier: 1 } }, data, /clip must be a positive/);
    await rejects({ model, optimizer: sgd, batchSize: 4, seed: 1, dp: { clip: 1, noiseMultiplier: -1 } }, data, /noiseMultiplier/);
    const img: SampleSet = { size: 4, inputs: { image: { shape: [1, 6, 6], data: new Float32Array(144).fill(0.5) } }, targets: { label: { shape: [], data: Float32Array.of(0, 1, 0, 1) } } };
    await rejects({ model: { type: 'cnn2d', channels: [2], norm: 'batch', classes: 2 }, optimizer: sgd, batchSize: 2, seed: 1, dp: { clip: 1, noiseMultiplier: 1 } }, img, /BatchNorm/);
  });
});
