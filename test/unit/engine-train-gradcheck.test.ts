/**
 * Whole-model gradient checks (real ORT): for each zoo model at tiny sizes, the graph's dL/dparams against central
 * finite differences of the eval graph's loss, on the largest-gradient coordinates and a few random ones. Then the
 * optimizer stages: one real train step against the update rule computed on the host from that gradient.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Trainer, releaseSessions, type ModelSpec, type LossSpec, type OptimizerSpec } from '../../src/engine/index.ts';
import { Rng } from '../../src/util/random.ts';
import type { SampleSet } from '../../src/data/samples.ts';
import { ellipses, tabular } from './engine-fixtures.ts';

afterAll(releaseSessions);

function images(n: number, shape: number[], seed: number, classes: number): SampleSet {
  const rng = new Rng(seed);
  const per = shape.reduce((a, b) => a * b, 1);
  return {
    size: n,
    inputs: { image: { shape, data: Float32Array.from({ length: n * per }, () => rng.normal()) } },
    targets: { label: { shape: [], data: Float32Array.from({ length: n }, (_, i) => i % classes) } },
  };
}

function multimodalData(n: number): SampleSet {
  const img = images(n, [1, 8, 8], 3, 3);
  const tab = tabular(n, 5, 4);
  return { size: n, inputs: { image: img.inputs.image, tabular: tab.inputs.features }, targets: img.targets };
}

/** Set coordinate i of the trainer's params and return the training-mode loss (batch statistics, fixed dropout seed). */
async function lossAt(t: Trainer, base: Float32Array, i: number, delta: number, data: SampleSet): Promise<number> {
  const v = base.slice();
  v[i] += delta;
  t.setParameters(v);
  return (await t.lossAndGradient(data)).loss;
}

async function gradCheck(model: ModelSpec, data: SampleSet, loss?: LossSpec, trainModeDiffers = false): Promise<void> {
  const t = await Trainer.create({ model, loss, optimizer: { type: 'sgd', lr: 0.1 }, batchSize: data.size, seed: 7, providers: ['cpu'] }, data);
  const base = t.getParameters();
  const { loss: l0, gradient } = await t.lossAndGradient(data);
  expect(Number.isFinite(l0)).toBe(true);
  // without batch norm or dropout the eval graph computes the very same loss
  if (!trainModeDiffers) expect(Math.abs(l0 - (await t.evaluate(data)).loss)).toBeLessThan(1e-5 * Math.max(1, Math.abs(l0)));
  const byMag = [...gradient.keys()].sort((a, b) => Math.abs(gradient[b]) - Math.abs(gradient[a]));
  const rng = new Rng(11);
  const coords = [...byMag.slice(0, 4), ...Array.from({ length: 4 }, () => rng.int(gradient.length))];
  const eps = 1e-3; // small: instance norm on tiny maps is strongly curved (1e-2 is off by 20%)
  for (const i of coords) {
    const fd = ((await lossAt(t, base, i, eps, data)) - (await lossAt(t, base, i, -eps, data))) / (2 * eps);
    const g = gradient[i];
    const entry = t.layout.entries.find((e) => i >= e.offset && i < e.offset + e.length)?.name;
    expect(Math.abs(fd - g), `${model.type} param ${entry}[${i}]: analytic ${g} vs finite difference ${fd}`)
      .toBeLessThanOrEqual(3e-2 * Math.max(Math.abs(fd), Math.abs(g)) + 2e-3);
  }
  // The largest gradient must be clearly non-zero, otherwise the check above proves nothing.
  expect(Math.abs(gradient[byMag[0]])).toBeGreaterThan(1e-3);
  await t.dispose();
}

describe('whole-model gradients match finite differences', () => {
  it('mlp (cross-entropy with class weights)', () =>
    gradCheck({ type: 'mlp', hidden: [6, 5], activation: 'tanh', classes: 2 }, tabular(12, 4, 1), { type: 'cross-entropy', classWeights: [1, 3] }));
  it('mlp single logit (bce)', () => gradCheck({ type: 'mlp', hidden: [5], classes: 1 }, tabular(10, 3, 2)));
  it('cnn2d with instance norm', () =>
    gradCheck({ type: 'cnn2d', channels: [3, 4], norm: 'instance', hidden: [5], classes: 3 }, images(6, [1, 8, 8], 1, 3)));
  it('cnn2d with batch norm and dropout (training mode, fixed seed)', () =>
    gradCheck({ type: 'cnn2d', channels: [3, 4], norm: 'batch', hidden: [6], dropout: 0.3, classes: 3 }, images(6, [1, 8, 8], 5, 3), undefined, true));
  it('cnn3d with group norm and average pooling', () =>
    gradCheck({ type: 'cnn3d', channels: [4], norm: 'group', pool: 'avg', classes: 2 }, images(4, [1, 4, 4, 4], 2, 2)));
  it('unet2d (dice + bce)', () => gradCheck({ type: 'unet2d', base: 2, depth: 1 }, ellipses(3, [8, 8], 1)));
  it('unet2d, 3 classes (dice + ce)', () => {
    const d = ellipses(3, [8, 8], 2);
    const mask = d.targets.mask;
    const three = { ...d, targets: { mask: { shape: mask.shape, data: mask.data.map((v, i) => (v ? 1 + (i % 2) : 0)) } } };
    return gradCheck({ type: 'unet2d', base: 2, depth: 1, classes: 3, norm: 'none' }, three);
  });
  it('unet3d (soft dice only)', () => gradCheck({ type: 'unet3d', base: 2, depth: 1, norm: 'group', groups: 2 }, ellipses(2, [4, 4, 4], 3), { type: 'dice' }));
  it('multitask-unet (mask + NaN-masked markers)', () =>
    gradCheck({ type: 'multitask-unet', dims: 2, base: 2, depth: 1, markers: ['idh', '1p19q', 'mgmt'], markerHidden: 4 }, ellipses(4, [8, 8], 4, { markers: 3 })));
  it('multimodal (image + tabular)', () =>
    gradCheck({ type: 'multimodal', image: { channels: [3] }, tabular: { hidden: [4] }, hidden: [5], classes: 3 }, multimodalData(6)));
  it('sequential with mse', () =>
    gradCheck({ type: 'sequential', layers: [{ type: 'dense', units: 4 }, { type: 'leakyRelu' }, { type: 'dense', units: 1 }] },
      tabular(8, 3, 5), { type: 'mse' }));
});

/** One full-batch step of `opt` from the trainer's initial params, against `rule` applied on the host. */
async function optimizerStep(opt: OptimizerSpec, steps: number, rule: (p: Float32Array, g: Float32Array[], k: number) => Float32Array,
  mu = 0, anchorShift = 0): Promise<void> {
  const data = tabular(16, 4, 9);
  const t = await Trainer.create({ model: { type: 'mlp', hidden: [5], classes: 2 }, optimizer: opt, batchSize: 16, seed: 3,
    providers: ['cpu'], proximalMu: mu }, data);
  if (mu > 0) t.setProximalAnchor(t.getParameters().map((v) => v + anchorShift));
  let p = t.getParameters();
  const grads: Float32Array[] = [];
  for (let k = 0; k < steps; k++) {
    grads.push((await t.lossAndGradient(data)).gradient);
    await t.trainSteps(data, 1);
    p = rule(p, grads, k);
    const got = t.getParameters();
    let worst = 0;
    for (let i = 0; i < p.length; i++) worst = Math.max(worst, Math.abs(got[i] - p[i]) / (1e-4 + Math.abs(p[i])));
    expect(worst, `${opt.type} step ${k + 1}`).toBeLessThan(2e-3);
    p = got;
  }
  await t.dispose();
}

describe('optimizer stages match their update rules', () => {
  it('sgd with momentum and nesterov, weight decay', async () => {
    const v: Float32Array[] = [];
    await optimizerStep({ type: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01 }, 3, (p, gs, k) => {
      const g = gs[k].map((x, i) => x + 0.01 * p[i]);
      const prev = v[k - 1] ?? new Float32Array(g.length);
      const mom = g.map((x, i) => 0.9 * prev[i] + x);
      v.push(mom);
      return p.map((x, i) => x - 0.1 * (g[i] + 0.9 * mom[i]));
    });
  });
  it('adam with bias correction and a warm-up schedule', async () => {
    let m = new Float32Array(0), s = new Float32Array(0);
    await optimizerStep({ type: 'adam', lr: 0.01, schedule: { warmupSteps: 2 } }, 3, (p, gs, k) => {
      const g = gs[k];
      if (k === 0) { m = new Float32Array(g.length); s = new Float32Array(g.length); }
      m = m.map((x, i) => 0.9 * x + 0.1 * g[i]);
      s = s.map((x, i) => 0.999 * x + 0.001 * g[i] * g[i]);
      const lr = k < 2 ? (0.01 * (k + 1)) / 2 : 0.01;
      const bc1 = 1 - 0.9 ** (k + 1), bc2 = 1 - 0.999 ** (k + 1);
      return p.map((x, i) => x - (lr / bc1) * m[i] / (Math.sqrt(s[i]) / Math.sqrt(bc2) + 1e-8));
    });
  });
  it('adamw decouples weight decay', async () => {
    let m = new Float32Array(0), s = new Float32Array(0);
    await optimizerStep({ type: 'adamw', lr: 0.01, weightDecay: 0.1 }, 2, (p, gs, k) => {
      const g = gs[k];
      if (k === 0) { m = new Float32Array(g.length); s = new Float32Array(g.length); }
      m = m.map((x, i) => 0.9 * x + 0.1 * g[i]);
      s = s.map((x, i) => 0.999 * x + 0.001 * g[i] * g[i]);
      const bc1 = 1 - 0.9 ** (k + 1), bc2 = 1 - 0.999 ** (k + 1);
      return p.map((x, i) => x * (1 - 0.01 * 0.1) - (0.01 / bc1) * m[i] / (Math.sqrt(s[i]) / Math.sqrt(bc2) + 1e-8));
    });
  });
  it('gradient-norm clipping and the FedProx proximal term', async () => {
    const c = 0.05, mu = 0.5, shift = 0.2;
    await optimizerStep({ type: 'sgd', lr: 0.1, clipNorm: c }, 1, (p, gs) => {
      // anchor = p0 + shift, so mu (p - anchor) = -mu * shift at the first step
      const g = gs[0].map((x) => x - mu * shift);
      const norm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
      const scale = Math.min(1, c / norm);
      expect(scale).toBeLessThan(1); // the clip is active in this check
      return p.map((x, i) => x - 0.1 * g[i] * scale);
    }, mu, shift);
  });
});
