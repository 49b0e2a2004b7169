// The real training worker thread (src/peer/worker.ts) with data.preprocessing.standardize: "consortium" hands the runner its
// training part's statistics and waits raw for the agreed standardiser ('standardise', applied once); "site" standardises with
// its own fit at once and says which (the same numbers as the statistics give for this one site).
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agreeStandardiser, combineStats } from '../../src/data/standardiser-stats.ts';
import { loadManifest, type ScenarioManifest } from '../../src/scenario/manifest.ts';
import type { WorkerInit, WorkerReply } from '../../src/peer/worker.ts';

const ROOT = join(import.meta.dirname, '../..');

function ask(w: Worker, req: Record<string, unknown>): Promise<WorkerReply> {
  return new Promise((resolve) => {
    const on = (r: WorkerReply): void => { if (r.rid === req.rid) { w.off('message', on); resolve(r); } };
    w.on('message', on);
    w.postMessage(req);
  });
}

async function withWorker(standardize: unknown, body: (w: Worker, ready: Extract<WorkerReply, { op: 'ready' }>) => Promise<void>): Promise<void> {
  const base = loadManifest(join(ROOT, 'scenarios/wdbc-radiomics.json'));
  const manifest: ScenarioManifest = { ...base, data: { ...base.data, preprocessing: { standardize } } };
  const init: WorkerInit = { manifest, dataPath: join(ROOT, 'data/wdbc.csv'), dataOptions: {}, threads: 1, providers: ['cpu'] };
  const w = new Worker(new URL('../../src/peer/worker-boot.mjs', import.meta.url), { workerData: init });
  try {
    const ready = await new Promise<WorkerReply>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    if (ready.op !== 'ready') throw new Error(JSON.stringify(ready));
    await body(w, ready);
  } finally {
    await w.terminate();
  }
}

describe('training worker input scale', () => {
  it('"consortium": statistics out, raw until the agreed standardiser comes, applied once', async () => {
    let siteInputs: unknown;
    await withWorker('consortium', async (w, ready) => {
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
      let p: Float32Array = params;
      for (let e = 0; e < 3; e++) {
        const t = await ask(w, { rid: 10 + e, op: 'train', params: p.slice() });
        if (t.op !== 'trained') throw new Error(JSON.stringify(t));
        p = t.params;
      }
      const after = await ask(w, { rid: 20, op: 'evaluate', params: p.slice() });
      if (after.op !== 'metrics') throw new Error('no metrics');
      expect(after.metrics.accuracy).toBeGreaterThan(0.9);
    });
    await withWorker('site', async (_w, ready) => {
      expect(ready.inputScale.mode).toBe('site');
      expect(ready.inputScale.stats).toBeUndefined();
      expect(ready.inputScale.standardiser?.mode).toBe('site');
      // one site's own fit: the numbers its statistics give alone
      expect(ready.inputScale.standardiser?.inputs).toEqual(siteInputs);
    });
  }, 180_000);
});
