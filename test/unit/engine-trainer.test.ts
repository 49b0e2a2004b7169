/**
 * The Trainer end to end on real onnxruntime sessions: WDBC accuracy, U-Net segmentation, 3D U-Net and multi-task
 * training, ONNX export round trip, fused steps, partial batches, checkpoints, shared sessions, provider fallback,
 * divergence handling and bad input.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { Trainer, releaseSessions, sessionCacheSize } from '../../src/engine/index.ts';
import { trainLocal } from '../../src/engine/local.ts';
import { readCsvSamples } from '../../src/cli/commands/train.ts';
import { selectSamples, type SampleSet } from '../../src/data/samples.ts';
import { CohortError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/random.ts';
import { decodeCheckpoint, encodeCheckpoint } from '../../src/engine/checkpoint.ts';
import { ellipses, tabular } from './engine-fixtures.ts';

/** The same checkpoint with the optimizer state zeroed (to show that restore really carries the state). */
function encodeWithoutState(ck: Uint8Array): Uint8Array {
  const c = decodeCheckpoint(ck);
  return encodeCheckpoint({ ...c, state: new Float32Array(c.state.length) });
}

afterAll(releaseSessions);

async function rejects(p: Promise<unknown> | (() => unknown), code: string, pattern: RegExp): Promise<void> {
  let err: unknown;
  try { await (typeof p === 'function' ? p() : p); } catch (e) { err = e; }
  expect(err, `expected CohortError ${code}`).toBeInstanceOf(CohortError);
  expect((err as CohortError).code).toBe(code);
  expect((err as CohortError).message).toMatch(pattern);
  expect((err as CohortError).hint).toBeTruthy();
}

describe('training quality', () => {
  it('an MLP reaches >= 95% held-out accuracy on WDBC (fixed split)', async () => {
    const { set } = readCsvSamples('data/wdbc.csv', 'diagnosis');
    expect(set.size).toBe(569);
    const r = await trainLocal(set, { model: { type: 'mlp', hidden: [32], classes: 2 }, optimizer: { type: 'adam', lr: 1e-3 },
      epochs: 40, batchSize: 32, seed: 1, fusedSteps: 8, standardize: ['features'], providers: ['cpu'] });
    expect(r.test.size).toBe(114 - 1); // 20% of each class, rounded
    expect(r.metrics.accuracy).toBeGreaterThanOrEqual(0.95);
    expect(r.metrics.auc).toBeGreaterThan(0.97);
  });

  it('a 2D U-Net learns synthetic ellipses to Dice >= 0.9', async () => {
    const train = ellipses(64, [32, 32], 1), test = ellipses(16, [32, 32], 2);
    const t = await Trainer.create({ model: { type: 'unet2d', base: 8, depth: 2 }, optimizer: { type: 'adam', lr: 3e-3 },
      batchSize: 8, seed: 1, providers: ['cpu'] }, train);
    const before = await t.evaluate(test);
    for (let e = 0; e < 10; e++) await t.trainEpoch(train);
    const after = await t.evaluate(test);
    expect(after.dice).toBeGreaterThanOrEqual(0.9);
    expect(after.iou).toBeGreaterThan(0.8);
    expect(after.loss).toBeLessThan(before.loss);
  });

  it('a 3D U-Net trains without error and loses loss', async () => {
    const data = ellipses(8, [16, 16, 16], 3);
    const t = await Trainer.create({ model: { type: 'unet3d', base: 4, depth: 1, norm: 'group', groups: 2 },
      optimizer: { type: 'adam', lr: 5e-3 }, batchSize: 2, seed: 2, providers: ['cpu'] }, data);
    const before = (await t.evaluate(data)).loss;
    for (let e = 0; e < 4; e++) await t.trainEpoch(data);
    expect((await t.evaluate(data)).loss).toBeLessThan(0.9 * before);
  });

  it('the multi-task U-Net trains mask and marker heads and reports per-marker AUC', async () => {
    const data = ellipses(24, [16, 16], 4, { markers: 4 });
    const t = await Trainer.create({ model: { type: 'multitask-unet', dims: 2, base: 4, depth: 2 },
      optimizer: { type: 'adamw', lr: 5e-3 }, batchSize: 8, seed: 3, providers: ['cpu'] }, data);
    const before = await t.evaluate(data);
    for (let e = 0; e < 6; e++) await t.trainEpoch(data);
    const after = await t.evaluate(data);
    expect(after.loss).toBeLessThan(0.9 * before.loss);
    for (const k of ['auc_idh', 'auc_1p19q', 'auc_mgmt', 'auc_grade']) expect(after[k]).toBeGreaterThanOrEqual(0);
    expect(after.dice).toBeGreaterThan(before.dice as number);
  });

  it('a 3-class U-Net (softmax, Dice + CE) improves its foreground Dice', async () => {
    const d = ellipses(16, [16, 16], 7);
    const mask = d.targets.mask;
    // class 2 for the left half of each lesion, class 1 for the right half
    const three: SampleSet = { ...d, targets: { mask: { shape: mask.shape, data: mask.data.map((v, i) => (v ? 1 + Number(i % 16 < 8) : 0)) } } };
    const t = await Trainer.create({ model: { type: 'unet2d', base: 4, depth: 2, classes: 3 }, optimizer: { type: 'adam', lr: 5e-3 },
      batchSize: 8, seed: 2, providers: ['cpu'] }, three);
    const before = await t.evaluate(three);
    for (let e = 0; e < 8; e++) await t.trainEpoch(three);
    const after = await t.evaluate(three);
    expect(after.loss).toBeLessThan(0.8 * before.loss);
    expect(after.dice).toBeGreaterThan(0.6);
    expect((await t.predict(three)).prob.length).toBe(16 * 3 * 16 * 16);
  });
});

describe('runner mechanics', () => {
  const data = tabular(50, 6, 1);
  const cfg = { model: { type: 'mlp' as const, hidden: [8], classes: 2 }, optimizer: { type: 'sgd' as const, lr: 0.1, momentum: 0.9 },
    batchSize: 8, seed: 5, providers: ['cpu' as const] };

  it('K fused steps (ONNX Loop) give the same weights as K single steps; the partial last batch is trained', async () => {
    const a = await Trainer.create({ ...cfg, fusedSteps: 3 }, data);
    const b = await Trainer.create({ ...cfg, fusedSteps: 1 }, data);
    const ra = await a.trainEpoch(data), rb = await b.trainEpoch(data);
    expect(ra.steps).toBe(7); // 6 full batches of 8 + one of 2
    expect(rb.steps).toBe(7);
    expect(a.steps).toBe(7);
    const pa = a.getParameters(), pb = b.getParameters();
    let worst = 0;
    for (let i = 0; i < pa.length; i++) worst = Math.max(worst, Math.abs(pa[i] - pb[i]));
    expect(worst).toBeLessThan(1e-5);
    expect(ra.loss).toBeCloseTo(rb.loss, 5);
    const c = await Trainer.create({ ...cfg, dropLast: true }, data);
    expect((await c.trainEpoch(data)).steps).toBe(6);
  });

  it('batch norm keeps running statistics as local buffers; dropout is seeded; fused = single steps with both', async () => {
    const imgs = ellipses(24, [8, 8], 9);
    const labelled: SampleSet = { ...imgs, targets: { label: { shape: [], data: Float32Array.from({ length: 24 }, (_, i) => i % 2) } } };
    const bn = { model: { type: 'cnn2d' as const, channels: [4], norm: 'batch' as const, hidden: [8], dropout: 0.25, classes: 2 },
      optimizer: { type: 'adam' as const, lr: 1e-2 }, batchSize: 6, seed: 4, providers: ['cpu' as const] };
    const a = await Trainer.create({ ...bn, fusedSteps: 2 }, labelled);
    const b = await Trainer.create({ ...bn, fusedSteps: 1 }, labelled);
    expect(a.bufferLayout.entries.map((e) => e.name)).toEqual(['norm0.running_mean', 'norm0.running_var']);
    expect(a.getBuffers()).toEqual(Float32Array.from([0, 0, 0, 0, 1, 1, 1, 1]));
    await a.trainEpoch(labelled);
    await b.trainEpoch(labelled);
    let worst = 0;
    const pa = a.getParameters(), pb = b.getParameters();
    for (let i = 0; i < pa.length; i++) worst = Math.max(worst, Math.abs(pa[i] - pb[i]));
    expect(worst).toBeLessThan(1e-5);
    expect(a.getBuffers().slice(0, 4).some((v) => v !== 0)).toBe(true); // running means moved
    // eval uses the running statistics, and the exported file carries them: same predictions
    const expected = (await a.predict(labelled)).prob;
    const s = await ort.InferenceSession.create(a.exportOnnx());
    const got = (await s.run({ image: new ort.Tensor('float32', labelled.inputs.image.data, [24, 1, 8, 8]) })).prob.data as Float32Array;
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - expected[i])).toBeLessThan(1e-5);
    await s.release();
    // checkpoints carry the buffers
    const c = await Trainer.create(bn, labelled);
    c.restore(a.checkpoint());
    expect(c.getBuffers()).toEqual(a.getBuffers());
  });

  it('sessions are shared by trainers of the same model; layouts and hashes are stable', async () => {
    const a = await Trainer.create(cfg, data);
    const n = sessionCacheSize();
    const b = await Trainer.create({ ...cfg, seed: 99, optimizer: { ...cfg.optimizer, lr: 0.5 } }, data);
    expect(sessionCacheSize()).toBe(n);
    expect(b.layout.hash).toBe(a.layout.hash);
    expect(a.layout.entries.map((e) => `${e.name}:${e.shape.join('x')}`)).toEqual(['fc0.w:6x8', 'fc0.b:8', 'out.w:8x2', 'out.b:2']);
    expect(a.layout.length).toBe(6 * 8 + 8 + 8 * 2 + 2);
    const same = await Trainer.create(cfg, data);
    expect(same.getParameters()).toEqual(a.getParameters()); // seeded init
    expect(b.getParameters()).not.toEqual(a.getParameters());
  });

  it('checkpoints restore params, optimizer state and step; a foreign checkpoint is refused', async () => {
    const a = await Trainer.create(cfg, data);
    await a.trainSteps(data, 3);
    const ck = a.checkpoint();
    await a.trainSteps(data, 2, { rng: new Rng(1) });
    const b = await Trainer.create({ ...cfg, seed: 77 }, data);
    b.restore(ck);
    expect(b.steps).toBe(3);
    // same batches from the restored point: identical only if the momentum state came back too
    await b.trainSteps(data, 2, { rng: new Rng(1) });
    expect(b.getParameters()).toEqual(a.getParameters());
    const fresh = await Trainer.create({ ...cfg, seed: 77 }, data);
    fresh.restore(ck);
    fresh.restore(encodeWithoutState(ck));
    await fresh.trainSteps(data, 2, { rng: new Rng(1) });
    expect(fresh.getParameters()).not.toEqual(a.getParameters());
    const other = await Trainer.create({ ...cfg, model: { type: 'mlp', hidden: [9], classes: 2 } }, data);
    await rejects(() => other.restore(ck), 'LAYOUT_MISMATCH', /different model/);
    await rejects(() => other.restore(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9])), 'BAD_CHECKPOINT', /magic/);
  });

  it('the exported ONNX model reloads in a fresh InferenceSession and predicts the same', async () => {
    const train = ellipses(16, [16, 16], 5), test = ellipses(4, [16, 16], 6);
    const t = await Trainer.create({ model: { type: 'unet2d', base: 4, depth: 2 }, optimizer: { type: 'adam', lr: 3e-3 },
      batchSize: 4, seed: 1, providers: ['cpu'] }, train);
    await t.trainEpoch(train);
    const expected = (await t.predict(test)).prob;
    // dynamic batch (default): the same file scores 4 samples at once and 1 at a time
    const s = await ort.InferenceSession.create(t.exportOnnx());
    expect(s.inputNames).toEqual(['image']);
    const all = (await s.run({ image: new ort.Tensor('float32', test.inputs.image.data, [4, 1, 16, 16]) })).prob.data as Float32Array;
    const one = (await s.run({ image: new ort.Tensor('float32', test.inputs.image.data.slice(256, 512), [1, 1, 16, 16]) })).prob.data as Float32Array;
    expect(all.length).toBe(expected.length);
    let worst = 0;
    for (let i = 0; i < all.length; i++) worst = Math.max(worst, Math.abs(all[i] - expected[i]));
    for (let i = 0; i < one.length; i++) worst = Math.max(worst, Math.abs(one[i] - expected[256 + i]));
    expect(worst).toBeLessThan(1e-5);
    await s.release();
    const fixed = await ort.InferenceSession.create(t.exportOnnx({ batch: 2 }));
    const two = (await fixed.run({ image: new ort.Tensor('float32', test.inputs.image.data.slice(0, 512), [2, 1, 16, 16]) })).prob.data as Float32Array;
    expect(Math.abs(two[300] - expected[300])).toBeLessThan(1e-5);
    await fixed.release();
  });

  it('asking for cuda on this machine falls back to cpu', async () => {
    const t = await Trainer.create({ ...cfg, providers: ['cuda', 'cpu'] }, data);
    expect(t.provider).toBe('cpu');
  });

  it('overlapping training calls on one trainer are refused', async () => {
    const t = await Trainer.create(cfg, data);
    const first = t.trainEpoch(data);
    await rejects(t.trainSteps(data, 1), 'TRAINER_BUSY', /already training/);
    await first;
    await t.trainSteps(data, 1);
    expect(t.steps).toBe(8);
  });

  it('a NaN loss stops training with a clear error and keeps the last good weights', async () => {
    const t = await Trainer.create(cfg, data);
    await t.trainSteps(data, 2);
    const good = t.getParameters();
    const poisoned: SampleSet = { ...data, inputs: { features: { shape: [6], data: data.inputs.features.data.map((v, i) => (i % 6 === 0 ? Number.NaN : v)) } } };
    await rejects(t.trainEpoch(poisoned), 'NON_FINITE_LOSS', /diverged at step 3: the loss is NaN/);
    expect(t.getParameters()).toEqual(good);
    expect(t.steps).toBe(2);
    // in a fused chunk the good steps before the bad one are kept too: same weights as stepping one by one
    const victim = new Rng(3).permutation(50)[8 * 4 + 1]; // a sample of the 5th batch of the epoch below
    const half = data.inputs.features.data.map((v, i) => (i === victim * 6 ? Number.NaN : v));
    const halfSet: SampleSet = { ...data, inputs: { features: { shape: [6], data: half } } };
    const order = { rng: new Rng(3) };
    const fusedT = await Trainer.create({ ...cfg, fusedSteps: 6 }, data);
    const singleT = await Trainer.create({ ...cfg, fusedSteps: 1 }, data);
    await rejects(fusedT.trainEpoch(halfSet, { rng: new Rng(3) }), 'NON_FINITE_LOSS', /loss is NaN/);
    await rejects(singleT.trainEpoch(halfSet, order), 'NON_FINITE_LOSS', /loss is NaN/);
    expect(fusedT.steps).toBe(singleT.steps);
    expect(fusedT.steps).toBe(4);
    const pf = fusedT.getParameters(), ps = singleT.getParameters();
    for (let i = 0; i < pf.length; i++) expect(Math.abs(pf[i] - ps[i])).toBeLessThan(1e-5);
    // divergence from a absurd learning rate: the last accepted step's weights stay
    const huge = await Trainer.create({ ...cfg, optimizer: { type: 'sgd', lr: 1e38 } }, data);
    let last = huge.getParameters();
    let err: unknown;
    for (let k = 0; k < 5 && !err; k++) {
      try { await huge.trainSteps(data, 1); last = huge.getParameters(); } catch (e) { err = e; }
    }
    expect((err as CohortError).code).toBe('NON_FINITE_LOSS');
    expect(huge.getParameters()).toEqual(last);
    expect(last.every(Number.isFinite)).toBe(true);
  });
});

describe('bad input gives clear errors', () => {
  const data = tabular(20, 4, 2);
  const opt = { type: 'sgd' as const, lr: 0.1 };
  it('unknown layer and unknown model type', async () => {
    await rejects(Trainer.create({ model: { type: 'sequential', layers: [{ type: 'dense', units: 4 }, { type: 'superconv' }] },
      optimizer: opt, batchSize: 4, seed: 1 }, data), 'BAD_MODEL_SPEC', /unknown layer "superconv" at layers\[1\]/);
    await rejects(Trainer.create({ model: { type: 'transformer' } as never, optimizer: opt, batchSize: 4, seed: 1 }, data),
      'BAD_MODEL_SPEC', /unknown model type "transformer"/);
  });
  it('shape mismatch between model and data', async () => {
    await rejects(Trainer.create({ model: { type: 'unet2d' }, optimizer: opt, batchSize: 4, seed: 1 }, data), 'SHAPE_MISMATCH', /per-sample shape \[4\]/);
    const t = await Trainer.create({ model: { type: 'mlp', classes: 2 }, optimizer: opt, batchSize: 4, seed: 1, providers: ['cpu'] }, data);
    await rejects(t.trainEpoch(tabular(10, 5, 3)), 'SHAPE_MISMATCH', /\[5\], the model expects \[4\]/);
    await rejects(Trainer.create({ model: { type: 'sequential', layers: [{ type: 'conv', channels: 2 }] }, optimizer: opt, batchSize: 4, seed: 1 }, data),
      'SHAPE_MISMATCH', /Conv/);
  });
  it('empty dataset', async () => {
    const t = await Trainer.create({ model: { type: 'mlp', classes: 2 }, optimizer: opt, batchSize: 4, seed: 1, providers: ['cpu'] }, data);
    await rejects(t.trainEpoch(selectSamples(data, [])), 'EMPTY_DATASET', /no samples/);
    await rejects(trainLocal(selectSamples(data, []), { model: { type: 'mlp', classes: 2 }, optimizer: opt, epochs: 1, batchSize: 4, seed: 1 }),
      'EMPTY_DATASET', /no samples/);
  });
  it('missing label column, label out of range, bad parameters vector', async () => {
    await rejects(() => readCsvSamples('data/wdbc.csv', 'outcome'), 'MISSING_COLUMN', /no label column 'outcome'/);
    const t = await Trainer.create({ model: { type: 'mlp', classes: 2 }, optimizer: opt, batchSize: 4, seed: 1, providers: ['cpu'] }, data);
    const three = { ...data, targets: { label: { shape: [], data: data.targets.label.data.map((v, i) => (i === 3 ? 2 : v)) } } };
    await rejects(t.trainEpoch(three), 'BAD_LABEL', /value 2 of sample 3/);
    await rejects(() => t.setParameters(new Float32Array(3)), 'LAYOUT_MISMATCH', /3 values/);
    await rejects(() => t.setParameters(t.getParameters().fill(Number.POSITIVE_INFINITY, 5, 6)), 'NON_FINITE_PARAMS', /index 5/);
  });
});
