// The scenario export path (issue 13.2): the real training worker thread's 'export' wraps the final model into the self-contained
// one: a peer's model.onnx reads RAW table rows (the consortium's agreed standardiser in-graph), outputs labels, and carries the
// scenario, participants, rounds and metric in its metadata; on the held-out rows it scores what the worker's own evaluation scores.
// An image scenario's model reads raw intensities (its preprocessing's intensity transform in-graph) and gives the worker's Dice.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { agreeStandardiser, combineStats } from '../../src/data/standardiser-stats.ts';
import { readTable, readTabular, stratifiedSplit, type Table } from '../../src/data/tabular.ts';
import { readCohortMetadata } from '../../src/engine/export.ts';
import { meanDice } from '../../src/engine/metrics.ts';
import { preprocessFolder, splitBySubject } from '../../src/data/preprocess.ts';
import { selectSamples } from '../../src/data/samples.ts';
import { writeSynthSite } from '../../src/data/synth.ts';
import { predictTable, scoreAgainstTruth } from '../../src/cli/commands/predict.ts';
import { loadManifest, type ScenarioManifest } from '../../src/scenario/manifest.ts';
import type { WorkerInit } from '../../src/peer/worker.ts';
import { ask, trainRounds, withWorker } from '../helpers/worker.ts';

const ROOT = join(import.meta.dirname, '../..');

/** The rows of a table at the given indices (same columns). */
function rowsOf(t: Table, rows: readonly number[]): Table {
  return { ...t, rows: rows.length, columns: t.columns.map((c) => ({ ...c, values: rows.map((r) => c.values[r]) })) };
}

describe('scenario export from the training worker', () => {
  it('"consortium": model.onnx reads raw rows and scores the worker\'s held-out accuracy; provenance in the metadata', async () => {
    const base = loadManifest(join(ROOT, 'scenarios/wdbc-radiomics.json'));
    const manifest: ScenarioManifest = { ...base, data: { ...base.data, preprocessing: { standardize: 'consortium' } } };
    const init: WorkerInit = { manifest, dataPath: join(ROOT, 'data/wdbc.csv'), dataOptions: {}, threads: 1, providers: ['cpu'] };
    await withWorker(init, async (w, ready) => {
      const scale = ready.inputScale;
      const agreed = agreeStandardiser(combineStats([scale.stats!]), scale.meta);
      expect(await ask(w, { rid: 1, op: 'standardise', standardiser: agreed })).toMatchObject({ op: 'standardised' });
      const p = await trainRounds(w, ready.params.slice(), 3);
      const own = await ask(w, { rid: 20, op: 'evaluate', params: p.slice() });
      if (own.op !== 'metrics') throw new Error('no metrics');
      const provenance = { scenario: { id: 'abc123', hash: 'abc123', name: manifest.name }, participants: ['peerA', 'peerB'], rounds: 3,
        metric: { name: 'accuracy', value: own.metrics.accuracy } };
      const out = await ask(w, { rid: 21, op: 'export', params: p.slice(), provenance });
      if (out.op !== 'bytes') throw new Error(JSON.stringify(out));
      const meta = readCohortMetadata(out.bytes, 'model.onnx');
      expect(meta).toMatchObject({ task: { kind: 'classification', label: 'diagnosis' }, classes: ['benign', 'malignant'], ...provenance });
      expect(meta.inputs.features).toHaveLength(30);
      // the worker's held-out rows (its split: the manifest's class list, holdout and seed), raw, through the exported model
      const labels = readTabular(join(ROOT, 'data/wdbc.csv'), { label: 'diagnosis', classNames: ['benign', 'malignant'] });
      const held = stratifiedSplit(labels.set.targets.label!.data, manifest.data.holdout, manifest.training.seed).test.map((i) => labels.rowIndex[i]);
      const table = rowsOf(readTable(join(ROOT, 'data/wdbc.csv')), held);
      const scored = scoreAgainstTruth(await predictTable(out.bytes, meta, table), meta, table);
      expect(scored.labelled).toBe(ready.testCount);
      expect(scored.accuracy).toBe(own.metrics.accuracy);
      expect(own.metrics.accuracy).toBeGreaterThan(0.9);
    });
  }, 180_000);

  it('an image scenario (synthetic PET/CT U-Net): model.onnx on raw volumes gives the worker\'s held-out Dice', async () => {
    const manifest = loadManifest(join(ROOT, 'scenarios/petct-segmentation.json'));
    const dir = mkdtempSync(join(tmpdir(), 'cohort-worker-export-'));
    const site = join(dir, 'site');
    writeSynthSite(site, { site: 1, cases: 8, seed: 4 });
    const init: WorkerInit = { manifest, dataPath: site, dataOptions: {}, threads: 1, providers: ['cpu'] };
    try {
      await withWorker(init, async (w, ready) => {
        const p = await trainRounds(w, ready.params.slice(), 3);
        const own = await ask(w, { rid: 20, op: 'evaluate', params: p.slice() });
        const out = await ask(w, { rid: 21, op: 'export', params: p.slice() });
        if (own.op !== 'metrics' || out.op !== 'bytes') throw new Error('no metrics or model');
        const meta = readCohortMetadata(out.bytes, 'model.onnx');
        expect(meta.task.kind).toBe('segmentation');
        expect(meta.image?.intensity.map((i) => [i.modality, i.config.method, i.inGraph])).toEqual([['PT', 'suv', true], ['CT', 'window', true]]);
        // the worker's held-out subjects, preprocessed the same way (same seed: same crops and flips) but without the intensity steps
        const cfg = manifest.data.preprocessing as Record<string, unknown>;
        const raw = preprocessFolder(site, { ...cfg, intensity: { PT: { method: 'none' }, CT: { method: 'none' } } }, manifest.training.seed);
        const test = selectSamples(raw.set, splitBySubject(raw, manifest.data.holdout, manifest.training.seed).test);
        expect(test.size).toBe(ready.testCount);
        const s = await ort.InferenceSession.create(out.bytes);
        const prob = (await s.run({ image: new ort.Tensor('float32', test.inputs.image.data, [test.size, ...test.inputs.image.shape]) })).prob.data as Float32Array;
        await s.release();
        expect(meanDice(prob, test.targets.mask.data, prob.length / test.size)).toBeCloseTo(own.metrics.dice!, 4);
        expect(own.metrics.dice).toBeGreaterThan(0.05); // non-empty predicted masks: the equality above is not two empty ones
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
