/**
 * Export (issue 14.4, issue 13.2): every zoo model exported with a symbolic batch reloads in a plain onnxruntime-node
 * session and predicts at batch 1 and 3 what Cohort's own eval graph predicts for the same samples. The self-contained
 * table model (raw columns in, standardiser / imputation / one-hot in-graph, labels out) predicts raw rows as Cohort's own
 * evaluation does on the same rows: WDBC, a table with categorical and missing cells (an unseen category too), a Cox model.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import onnx from 'onnx-proto';
import { Trainer, releaseSessions, type ModelSpec, type LossSpec } from '../../src/engine/index.ts';
import { trainLocal } from '../../src/engine/local.ts';
import { readCohortMetadata, selfContainedImage, selfContainedTabular, type ExportTask } from '../../src/engine/export.ts';
import { preprocessFolder, type IntensityConfig } from '../../src/data/preprocess.ts';
import { writeSynthSite } from '../../src/data/synth.ts';
import { describeModelInput, sourceColumns } from '../../src/data/model-input.ts';
import { applyStandardiser, encodeRows, readTable, tableToSamples, type Table, type TabularSamples } from '../../src/data/tabular.ts';
import { predictTable, scoreAgainstTruth } from '../../src/cli/commands/predict.ts';
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

function multimodal(n: number): SampleSet {
  const img = images(n, [1, 8, 8], 3, 3);
  return { size: n, inputs: { image: img.inputs.image, tabular: tabular(n, 5, 4).inputs.features }, targets: img.targets };
}

/** Rows [from, to) of every input as ORT feeds. */
function feeds(data: SampleSet, from: number, to: number): Record<string, ort.Tensor> {
  return Object.fromEntries(Object.entries(data.inputs).map(([name, t]) => {
    const per = t.shape.reduce((a, b) => a * b, 1);
    return [name, new ort.Tensor('float32', t.data.slice(from * per, to * per), [to - from, ...t.shape])];
  }));
}

const ZOO: ReadonlyArray<{ name: string; model: ModelSpec; data: () => SampleSet; loss?: LossSpec }> = [
  { name: 'mlp', model: { type: 'mlp', hidden: [6], classes: 2 }, data: () => tabular(3, 4, 1) },
  { name: 'cnn2d (batch norm)', model: { type: 'cnn2d', channels: [3, 4], norm: 'batch', hidden: [5], classes: 3 }, data: () => images(3, [1, 8, 8], 1, 3) },
  { name: 'cnn3d (group norm)', model: { type: 'cnn3d', channels: [4], norm: 'group', pool: 'avg', classes: 2 }, data: () => images(3, [1, 4, 4, 4], 2, 2) },
  { name: 'unet2d', model: { type: 'unet2d', base: 2, depth: 1 }, data: () => ellipses(3, [8, 8], 1) },
  { name: 'unet3d (group norm)', model: { type: 'unet3d', base: 2, depth: 1, norm: 'group', groups: 2 }, data: () => ellipses(3, [4, 4, 4], 3) },
  { name: 'unet3d (instance norm, depth 2)', model: { type: 'unet3d', base: 2, depth: 2 }, data: () => ellipses(3, [4, 4, 4], 4) },
  { name: 'multitask-unet 3D', model: { type: 'multitask-unet', dims: 3, base: 2, depth: 1, markers: ['idh', 'mgmt'], markerHidden: 4 },
    data: () => ellipses(3, [4, 4, 4], 5, { markers: 2 }) },
  { name: 'multimodal', model: { type: 'multimodal', image: { channels: [3] }, tabular: { hidden: [4] }, hidden: [5], classes: 3 }, data: () => multimodal(3) },
  { name: 'sequential', model: { type: 'sequential', layers: [{ type: 'conv', channels: 3 }, { type: 'batchNorm' }, { type: 'relu' },
    { type: 'maxPool' }, { type: 'flatten' }, { type: 'dense', units: 5 }, { type: 'dropout', ratio: 0.2 }, { type: 'dense', units: 2 }] },
  data: () => images(3, [1, 8, 8], 6, 2) },
];

describe('export with a symbolic batch: every zoo model at batch 1 and 3', () => {
  for (const z of ZOO) {
    it(z.name, async () => {
      const data = z.data();
      const t = await Trainer.create({ model: z.model, loss: z.loss, optimizer: { type: 'sgd', lr: 0.1 }, batchSize: 3, seed: 3, providers: ['cpu'] }, data);
      const expected = await t.predict(data);
      const bytes = t.exportOnnx();
      // no shape in the file may keep the export's sentinel batch (97): ORT would carry it to the outputs and warn at every batch
      const g = onnx.onnx.ModelProto.decode(bytes).graph!;
      const dims = [...(g.valueInfo ?? []), ...(g.input ?? []), ...(g.output ?? [])].flatMap((v) => v.type?.tensorType?.shape?.dim ?? []);
      expect(dims.filter((d) => Number(d.dimValue ?? 0) === 97)).toEqual([]);
      const s = await ort.InferenceSession.create(bytes);
      try {
        const all = await s.run(feeds(data, 0, 3));
        const ones = await Promise.all([0, 1, 2].map((i) => s.run(feeds(data, i, i + 1))));
        for (const [out, want] of [['prob', expected.prob], ['markers_prob', expected.markers]] as const) {
          if (!want) { expect(s.outputNames).not.toContain(out); continue; }
          const got3 = all[out].data as Float32Array;
          const got1 = new Float32Array(ones.flatMap((o) => [...(o[out].data as Float32Array)]));
          expect(got3.length).toBe(want.length);
          expect(got1.length).toBe(want.length);
          let worst = 0;
          for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got3[i] - want[i]), Math.abs(got1[i] - want[i]));
          expect(worst, `${z.name} ${out}`).toBeLessThan(1e-5);
        }
      } finally {
        await s.release();
        await t.dispose();
      }
    });
  }
});

/** Train briefly on a table and export the self-contained model; Cohort's own predictions for `other` (encoded as training was). */
async function trainAndExport(table: Table, t: TabularSamples, task: ExportTask, model: ModelSpec, loss?: LossSpec) {
  const r = await trainLocal(t.set, { model, loss, optimizer: { type: 'adam', lr: 0.01 }, epochs: 5, batchSize: 16, seed: 2, providers: ['cpu'],
    standardize: ['features'], ...(task.kind === 'survival' ? { split: halves(t.set.size) } : { testFraction: 0.25 }) });
  const s = r.standardisers['features']!;
  const bytes = selfContainedTabular(r.trainer.exportOnnx(), { input: describeModelInput(t, s), task });
  /** What Cohort itself predicts for a table: the reader's encoding fitted on `table`, the training standardiser, the eval graph. */
  const cohort = async (other: Table) => {
    const labelCol = task.label ? other.columns.find((c) => c.name === task.label) : undefined;
    const col = (name: string | undefined) => other.columns.find((c) => c.name === name)!;
    const survival = task.kind === 'survival' ? { time: col(task.time), event: col(task.event) } : undefined;
    const enc = encodeRows(other, t.encoding, labelCol, [], 1, labelCol ? t.classNames : undefined, survival);
    const set = { ...enc.set, inputs: { features: applyStandardiser(enc.set.inputs.features, s) } };
    return { set, prob: (await r.trainer.predict(set)).prob, metrics: labelCol ? await r.trainer.evaluate(set) : undefined };
  };
  return { bytes, cohort, trainer: r.trainer, table };
}

function halves(n: number): { train: number[]; test: number[] } {
  const all = [...Array(n).keys()];
  return { train: all.filter((i) => i % 4), test: all.filter((i) => !(i % 4)) };
}

function worstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]));
  return w;
}

describe('self-contained table export: raw rows in, the same predictions as Cohort', () => {
  it('WDBC: cohort predict and a plain onnxruntime-node script on raw rows give the accuracy of Cohort\'s own evaluation', async () => {
    const table = readTable('data/wdbc.csv');
    const t = tableToSamples(table, { label: 'diagnosis' });
    const m = await trainAndExport(table, t, { kind: 'classification', label: 'diagnosis' }, { type: 'mlp', hidden: [16], classes: 2 });
    const own = await m.cohort(table);
    const meta = readCohortMetadata(m.bytes, 'wdbc model');
    expect(meta.inputs.features).toEqual(t.featureNames);
    expect(meta.inputs.categories).toEqual([]);
    expect(meta.classes).toEqual(['benign', 'malignant']);
    expect(meta.task).toEqual({ kind: 'classification', label: 'diagnosis' });
    expect(meta.outputs).toEqual(['prob', 'label', 'class']);
    // cohort predict's path
    const p = await predictTable(m.bytes, meta, table);
    expect(p.ignored).toEqual(['id']);
    expect(worstDiff(p.scores, own.prob)).toBeLessThan(1e-5);
    const scored = scoreAgainstTruth(p, meta, table);
    expect(scored.labelled).toBe(569);
    expect(scored.accuracy).toBe(own.metrics!.accuracy);
    expect(scored.auc).toBeCloseTo(own.metrics!.auc!, 6);
    expect(own.metrics!.accuracy).toBeGreaterThan(0.9); // a model that learned: equality above is not two chance levels
    // the ten-line script of docs/engine.md: only onnxruntime-node and the CSV text
    const dir = mkdtempSync(join(tmpdir(), 'cohort-export-'));
    try {
      writeFileSync(join(dir, 'm.onnx'), m.bytes);
      const [head, ...rows] = readFileSync('data/wdbc.csv', 'utf8').trim().split(/\r?\n/).map((l) => l.split(','));
      const cols = head.map((_, j) => j).filter((j) => !['id', 'diagnosis'].includes(head[j]));
      const x = Float32Array.from(rows.flatMap((r) => cols.map((j) => Number(r[j]))));
      const session = await ort.InferenceSession.create(join(dir, 'm.onnx'));
      const out = await session.run({ features: new ort.Tensor('float32', x, [rows.length, cols.length]) });
      const hits = (out.class.data as string[]).filter((c, i) => c === rows[i][head.indexOf('diagnosis')]).length;
      expect(hits / rows.length).toBe(own.metrics!.accuracy);
      await session.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await m.trainer.dispose();
  });

  it('categorical and missing cells: one-hot, unseen categories and mean imputation in-graph match the reader', async () => {
    const rng = new Rng(5);
    const stages = ['I', 'II', 'III'];
    const lines = ['patient_id,age,sex,stage,marker,outcome'];
    for (let i = 0; i < 160; i++) {
      const stage = stages[rng.int(3)];
      const age = 40 + 30 * rng.next();
      const marker = rng.normal();
      const risk = (stage === 'III' ? 1.5 : stage === 'II' ? 0.5 : -1) + marker + (age - 55) / 20;
      const cell = (v: string): string => (rng.next() < 0.08 ? (rng.next() < 0.5 ? '' : 'NA') : v);
      lines.push(`s${i},${cell(age.toFixed(1))},${cell(rng.next() < 0.5 ? 'F' : 'M')},${cell(stage)},${cell(marker.toFixed(3))},${risk > 0 ? 'poor' : 'good'}`);
    }
    const dir = mkdtempSync(join(tmpdir(), 'cohort-export-'));
    try {
      writeFileSync(join(dir, 'train.csv'), lines.join('\n') + '\n');
      // a new site: an unseen stage, missing cells of every kind, columns in another order, an extra column
      writeFileSync(join(dir, 'new.csv'), ['stage,extra,marker,sex,age,outcome', 'IV,1,0.5,F,60,poor', ',2,,M,,good', 'II,3,NA,,71.5,poor',
        'I,4,-1.2,F,45,good', 'III,5,2.0,M,NA,poor'].join('\n') + '\n');
      const table = readTable(join(dir, 'train.csv'));
      const t = tableToSamples(table, { label: 'outcome' });
      expect(t.encoding.columns.map((c) => c.kind)).toEqual(['numeric', 'categorical', 'categorical', 'numeric']);
      const m = await trainAndExport(table, t, { kind: 'classification', label: 'outcome' }, { type: 'mlp', hidden: [8], classes: 2 });
      const meta = readCohortMetadata(m.bytes, 'table model');
      expect(meta.inputs).toEqual({ features: ['age', 'marker'], categories: ['sex', 'stage'] });
      expect(sourceColumns({ ...describeModelInput(t, { mean: new Float32Array(t.featureNames.length), std: new Float32Array(t.featureNames.length) }), encoding: undefined }))
        .toEqual(t.encoding.columns); // the encoding follows from the feature names too
      for (const file of ['train.csv', 'new.csv']) {
        const tb = readTable(join(dir, file));
        const p = await predictTable(m.bytes, meta, tb);
        const own = await m.cohort(tb);
        expect(worstDiff(p.scores, own.prob), file).toBeLessThan(1e-5);
        expect(scoreAgainstTruth(p, meta, tb).accuracy).toBe(own.metrics!.accuracy);
        if (file === 'new.csv') expect(p.ignored).toEqual(['extra']);
      }
      await m.trainer.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a Cox model exports its risk score from raw columns (TCGA-BRCA)', async () => {
    const table = readTable('data/tcga-brca.csv');
    const t = tableToSamples(table, { survival: { time: 'time_days', event: 'event' }, ignore: ['pid', 'region', 'split'] });
    const m = await trainAndExport(table, t, { kind: 'survival', time: 'time_days', event: 'event' }, { type: 'mlp', hidden: [], classes: 1 }, { type: 'cox' });
    const meta = readCohortMetadata(m.bytes, 'cox model');
    expect(meta.outputs).toEqual(['risk']);
    const p = await predictTable(m.bytes, meta, table);
    expect(p.labels).toBeUndefined();
    expect(worstDiff(p.scores, (await m.cohort(table)).prob)).toBeLessThan(1e-4);
    expect(scoreAgainstTruth(p, meta, table).c_index).toBeGreaterThan(0.5);
    await m.trainer.dispose();
  });

  it('refuses what is not a Cohort model, with clear errors', async () => {
    expect(() => readCohortMetadata(readFileSync('data/wdbc.csv'), 'data/wdbc.csv')).toThrow(/data\/wdbc.csv is not an ONNX model/);
    const t = await Trainer.create({ model: { type: 'mlp', hidden: [4], classes: 2 }, optimizer: { type: 'sgd' }, batchSize: 4, seed: 1, providers: ['cpu'] }, tabular(8, 3, 1));
    let err: unknown;
    try { readCohortMetadata(t.exportOnnx(), 'plain.onnx'); } catch (e) { err = e; }
    expect((err as { code?: string }).code).toBe('NOT_COHORT_MODEL');
    expect(String((err as Error).message)).toMatch(/plain.onnx is an ONNX model without Cohort's metadata/);
    // a description that does not fit the model is refused at export, not discovered at prediction time
    expect(() => selfContainedTabular(t.exportOnnx(), { input: { mean: [0, 0], std: [1, 1], featureNames: ['a', 'b'], classes: ['x', 'y'] },
      task: { kind: 'classification' } })).toThrow(/reads 3 features, the description names 2/);
    await t.dispose();
  });
});

describe('image export: the intensity transform in-graph', () => {
  it('window, suv, per-image z-score and percentile: raw volumes in, Cohort\'s probabilities and the mask (U-Net) or label (CNN) out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-export-img-'));
    try {
      const site = join(dir, 'site');
      writeSynthSite(site, { site: 1, cases: 4, seed: 2 });
      const none: IntensityConfig = { method: 'none' };
      const variants: Array<[IntensityConfig, IntensityConfig]> = [[{ method: 'suv', max: 20 }, { method: 'window', level: 40, width: 400 }],
        [{ method: 'zscore' }, { method: 'zscore' }], [{ method: 'percentile', low: 0.5, high: 99.5 }, { method: 'percentile', low: 5, high: 95 }]];
      for (const [pt, ct] of variants) {
        const cfg = { modalities: ['PT', 'CT'], size: [16, 16], crop: 'mask' as const };
        const norm = preprocessFolder(site, { ...cfg, intensity: { PT: pt, CT: ct } }, 1).set;
        const raw = preprocessFolder(site, { ...cfg, intensity: { PT: none, CT: none } }, 1).set;
        expect(worstDiff(raw.inputs.image.data, norm.inputs.image.data)).toBeGreaterThan(0.5); // the transform matters
        const t = await Trainer.create({ model: { type: 'unet2d', base: 2, depth: 1 }, optimizer: { type: 'adam', lr: 0.01 }, batchSize: 2, seed: 1, providers: ['cpu'] }, norm);
        await t.trainEpoch(norm);
        const want = (await t.predict(norm)).prob;
        const bytes = selfContainedImage(t.exportOnnx(), { intensity: [pt, ct], modalities: ['PT', 'CT'], task: { kind: 'segmentation' }, classes: [] });
        const meta = readCohortMetadata(bytes, 'unet');
        expect(meta.image?.intensity.map((i) => i.inGraph)).toEqual([true, true]);
        expect(meta.outputs).toEqual(['prob', 'mask']);
        const s = await ort.InferenceSession.create(bytes);
        const out = await s.run({ image: new ort.Tensor('float32', raw.inputs.image.data, [raw.size, ...raw.inputs.image.shape]) });
        const prob = out.prob.data as Float32Array;
        expect(worstDiff(prob, want), `${pt.method}/${ct.method}`).toBeLessThan(1e-4);
        const mask = out.mask.data as BigInt64Array;
        expect(mask.length).toBe(want.length);
        expect([...mask].every((m, i) => m === (prob[i] > 0.5 ? 1n : 0n))).toBe(true);
        await s.release();
        await t.dispose();
      }
      // a classifier on the same raw volumes: label and class from the in-graph intensities
      const cfg = { modalities: ['PT', 'CT'], size: [16, 16], crop: 'mask' as const, label: 'outcome', mask: false };
      const [pt, ct] = variants[0];
      const site2 = join(dir, 'site2');
      writeSynthSite(site2, { site: 2, cases: 10, seed: 3 });
      const norm = preprocessFolder(site2, { ...cfg, intensity: { PT: pt, CT: ct } }, 1);
      const raw = preprocessFolder(site2, { ...cfg, intensity: { PT: none, CT: none } }, 1).set;
      const classes = Object.keys(norm.stats.labelBalance ?? {});
      expect(classes.length).toBe(2);
      const t = await Trainer.create({ model: { type: 'cnn2d', channels: [4], classes: 2 }, optimizer: { type: 'adam', lr: 0.01 }, batchSize: 2, seed: 1, providers: ['cpu'] }, norm.set);
      const want = (await t.predict(norm.set)).prob;
      const bytes = selfContainedImage(t.exportOnnx(), { intensity: [pt, ct], modalities: ['PT', 'CT'], task: { kind: 'classification', label: 'outcome' }, classes });
      expect(readCohortMetadata(bytes, 'cnn').classes).toEqual(classes);
      const s = await ort.InferenceSession.create(bytes);
      const out = await s.run({ image: new ort.Tensor('float32', raw.inputs.image.data, [raw.size, ...raw.inputs.image.shape]) });
      expect(worstDiff(out.prob.data as Float32Array, want)).toBeLessThan(1e-4);
      const argmax = [...Array(raw.size).keys()].map((i) => (want[2 * i + 1] > want[2 * i] ? 1 : 0));
      expect([...(out.label.data as BigInt64Array)].map(Number)).toEqual(argmax);
      expect(out.class.data).toEqual(argmax.map((k) => classes[k]));
      await s.release();
      await t.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
