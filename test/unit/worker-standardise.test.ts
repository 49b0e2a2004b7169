// The real training worker thread (src/peer/worker.ts) with data.preprocessing.standardize: "consortium" hands the runner its
// training part's statistics and waits raw for the agreed standardiser ('standardise', applied once); "site" standardises with
// its own fit at once and says which (the same numbers as the statistics give for this one site).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agreeStandardiser, combineStats } from '../../src/data/standardiser-stats.ts';
import { loadManifest, type ScenarioManifest } from '../../src/scenario/manifest.ts';
import type { WorkerInit } from '../../src/peer/worker.ts';
import { ask, trainRounds, withWorker } from '../helpers/worker.ts';

const ROOT = join(import.meta.dirname, '../..');

/** The WDBC scenario's worker with the given data.preprocessing.standardize. */
function wdbcInit(standardize: unknown): WorkerInit {
  const base = loadManifest(join(ROOT, 'scenarios/wdbc-radiomics.json'));
  const manifest: ScenarioManifest = { ...base, data: { ...base.data, preprocessing: { standardize } } };
  return { manifest, dataPath: join(ROOT, 'data/wdbc.csv'), dataOptions: {}, threads: 1, providers: ['cpu'] };
}

describe('training worker input scale', () => {
  it('"consortium": statistics out, raw until the agreed standardiser comes, applied once', async () => {
    let siteInputs: unknown;
    await withWorker(wdbcInit('consortium'), async (w, ready) => {
      const scale = ready.inputScale;
      expect(scale.mode).toBe('consortium');
      expect(scale.stats?.rows).toBe(ready.sampleCount);
      expect(scale.stats?.classCounts).toHaveLength(2);   // the manifest lists the classes
      expect(scale.meta?.featureNames).toHaveLength(30);
      const agreed = agreeStandardiser(combineStats([scale.stats!]), scale.meta);
      siteInputs = agreed.inputs;
      const params = ready.params.slice();
      const raw = await ask(w, { rid: 1, op: 'evaluate', params: params.slice() });
      const done = await ask(w, { rid: 2, op: 'standardise', standardiser: agreed });
      expect(done).toMatchObject({ op: 'standardised', hash: agreed.hash });
      const scaled = await ask(w, { rid: 3, op: 'evaluate', params: params.slice() });
      if (raw.op !== 'metrics' || scaled.op !== 'metrics') throw new Error('no metrics');
      expect(scaled.metrics.loss).not.toBe(raw.metrics.loss);   // the same model sees other inputs now
      // the same standardiser again is a no-op; another one is refused (the data is standardised once)
      expect(await ask(w, { rid: 4, op: 'standardise', standardiser: agreed })).toMatchObject({ op: 'standardised' });
      const other = agreeStandardiser(combineStats([{ ...scale.stats!, rows: scale.stats!.rows + 1 }]), scale.meta);
      expect(await ask(w, { rid: 5, op: 'standardise', standardiser: other })).toMatchObject({ op: 'error', code: 'STANDARDISER_TWICE' });
      const p = await trainRounds(w, params, 3);
      const after = await ask(w, { rid: 20, op: 'evaluate', params: p.slice() });
      if (after.op !== 'metrics') throw new Error('no metrics');
      expect(after.metrics.accuracy).toBeGreaterThan(0.9);
    });
    await withWorker(wdbcInit('site'), async (_w, ready) => {
      expect(ready.inputScale.mode).toBe('site');
      expect(ready.inputScale.stats).toBeUndefined();
      expect(ready.inputScale.standardiser?.mode).toBe('site');
      // one site's own fit: the numbers its statistics give alone
      expect(ready.inputScale.standardiser?.inputs).toEqual(siteInputs);
    });
  }, 180_000);
});
