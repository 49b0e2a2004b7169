// The real training worker (src/peer/worker.ts) reads a scenario's table as the simulator does (src/data/site-table.ts): the
// identifier column and data.selector.ignore are not features, so the feature list is the simulator's; and a regression scenario
// (the manifest `cohort sim --data --task regression` writes) runs on a real worker: the target's statistics travel with the
// features', the agreed standardiser scales both, R2/MAE come back in the target's units and the exported model's `value` is too.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { agreeStandardiser, combineStats } from '../../src/data/standardiser-stats.ts';
import { readTable, stratifiedSplit } from '../../src/data/tabular.ts';
import { siteTable, targetQuintiles } from '../../src/data/site-table.ts';
import { loadSimData } from '../../src/sim/datasets.ts';
import { tableScenario } from '../../src/scenario/table-scenario.ts';
import { readCohortMetadata } from '../../src/engine/export.ts';
import type { ScenarioManifest } from '../../src/scenario/manifest.ts';
import type { WorkerInit } from '../../src/peer/worker.ts';
import { ask, withWorker } from '../helpers/worker.ts';

const ROOT = join(import.meta.dirname, '../..');
const WDBC = join(ROOT, 'data/wdbc.csv');

/** A worker on the WDBC table for the given manifest. */
const wdbcInit = (manifest: ScenarioManifest): WorkerInit => ({ manifest, dataPath: WDBC, dataOptions: {}, threads: 1, providers: ['cpu'] });

describe('training worker tables', () => {
  it('drops the id column and data.selector.ignore: the same features as the simulator', async () => {
    const { manifest } = tableScenario({ data: WDBC, label: 'diagnosis', ignore: ['texture_mean', 'texture_se'] });
    expect(manifest.data.selector.ignore).toEqual(['texture_mean', 'texture_se']);
    const sim = loadSimData(manifest.data.selector, manifest.data.preprocessing, 1);
    await withWorker(wdbcInit(manifest), async (_w, ready) => {
      const names = ready.inputScale.meta!.featureNames!;
      expect(names).toHaveLength(28);   // 31 columns - diagnosis - id - two ignored
      expect(names).not.toContain('id');
      expect(names).not.toContain('texture_mean');
      expect(names).toEqual(sim.featureNames);
    });
  }, 120_000);

  it('regression: target scale agreed with the features, R2/MAE in the target\'s units, export value in units', async () => {
    const { manifest } = tableScenario({ data: WDBC, label: 'radius_mean', task: 'regression', ignore: ['perimeter_mean', 'area_mean'] });
    expect(manifest.task.kind).toBe('regression');
    await withWorker(wdbcInit(manifest), async (w, ready) => {
      const stats = ready.inputScale.stats!;
      expect(Object.keys(stats.inputs).sort()).toEqual(['features', 'target']);
      const agreed = agreeStandardiser(combineStats([stats]), ready.inputScale.meta);
      const targetMean = agreed.inputs['target']!.mean[0]!;
      expect(targetMean).toBeGreaterThan(10);   // radius in mm
      expect(await ask(w, { rid: 1, op: 'standardise', standardiser: agreed })).toMatchObject({ op: 'standardised', hash: agreed.hash });
      let p: Float32Array = ready.params;
      for (let e = 0; e < 15; e++) {
        const t = await ask(w, { rid: 10 + e, op: 'train', params: p.slice() });
        if (t.op !== 'trained') throw new Error(JSON.stringify(t));
        p = t.params;
      }
      const ev = await ask(w, { rid: 40, op: 'evaluate', params: p.slice(), intervals: true });
      if (ev.op !== 'metrics') throw new Error(JSON.stringify(ev));
      expect(ev.metrics.r2).toBeGreaterThan(0.5);
      // the report's intervals: bootstrap R2, and MAE in the target's units like the metric
      const { r2, mae: maeCi } = ev.evaluation!.scores;
      expect(r2!.value).toBeCloseTo(ev.metrics.r2!, 6);
      expect(maeCi!.value).toBeCloseTo(ev.metrics.mae!, 6);
      expect(maeCi!.lo).toBeLessThanOrEqual(maeCi!.value);
      expect(maeCi!.hi).toBeGreaterThanOrEqual(maeCi!.value);
      expect(ev.evaluation!.n).toBe(ready.testCount);
      const exp = await ask(w, { rid: 41, op: 'export', params: p.slice() });
      if (exp.op !== 'bytes') throw new Error(JSON.stringify(exp));
      const meta = readCohortMetadata(exp.bytes, 'worker export');
      expect(meta.target).toEqual({ mean: targetMean, std: agreed.inputs['target']!.std[0]! });

      // the worker's held-out rows (its split: the target's quintiles, the manifest's seed), raw, through the exported model:
      // the MAE in millimetres equals what the worker reported, so the report's MAE is in the target's units
      const t = siteTable(readTable(WDBC), { label: 'radius_mean', regression: true, ignore: manifest.data.selector.ignore ?? [] }).samples;
      const y = t.set.targets['label']!.data;
      const test = stratifiedSplit(targetQuintiles(y), manifest.data.holdout, manifest.training.seed).test;
      expect(test.length).toBe(ready.testCount);
      const table = readTable(WDBC);
      const cell = (name: string, i: number): number | string | null => table.columns.find((c) => c.name === name)!.values[t.rowIndex[i]!]!;
      const F = meta.inputs.features, C = meta.inputs.categories;
      const x = Float32Array.from(test.flatMap((i) => F.map((f) => (cell(f, i) ?? Number.NaN) as number)));
      const s = await ort.InferenceSession.create(exp.bytes);
      const out = await s.run({ features: new ort.Tensor('float32', x, [test.length, F.length]),
        ...(C.length ? { categories: new ort.Tensor('string', test.flatMap((i) => C.map((c) => String(cell(c, i) ?? ''))), [test.length, C.length]) } : {}) });
      await s.release();
      const value = out['value']!.data as Float32Array;
      const mae = test.reduce((a, i, k) => a + Math.abs(value[k]! - y[i]!), 0) / test.length;
      expect(mae).toBeCloseTo(ev.metrics.mae!, 3);
      expect(mae).toBeLessThan(agreed.inputs['target']!.std[0]!);
    });
  }, 180_000);
});
