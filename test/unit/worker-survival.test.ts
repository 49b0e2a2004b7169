// The real training worker thread (src/peer/worker.ts, as a peer daemon starts it) on a survival manifest: it reads the time and
// event columns, uses the manifest's fixed train/test column, trains the Cox model and reports the held-out C-index.
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/scenario/manifest.ts';
import type { WorkerInit, WorkerReply } from '../../src/peer/worker.ts';

const ROOT = join(import.meta.dirname, '../..');

function ask(w: Worker, req: Record<string, unknown>): Promise<WorkerReply> {
  return new Promise((resolve) => {
    const on = (r: WorkerReply): void => { if (r.rid === req.rid) { w.off('message', on); resolve(r); } };
    w.on('message', on);
    w.postMessage(req);
  });
}

describe('training worker on a survival scenario', () => {
  it('splits by the manifest\'s train column, trains the Cox model and reports c_index', async () => {
    const manifest = loadManifest(join(ROOT, 'scenarios/tcga-brca.json'));
    const init: WorkerInit = { manifest, dataPath: join(ROOT, 'data/tcga-brca.csv'), dataOptions: {}, threads: 1, providers: ['cpu'] };
    const w = new Worker(new URL('../../src/peer/worker-boot.mjs', import.meta.url), { workerData: init });
    try {
      const ready = await new Promise<WorkerReply>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
      expect(ready.op).toBe('ready');
      if (ready.op !== 'ready') return;
      // FLamby's fixed split of Fed-TCGA-BRCA: 866 training and 222 test patients
      expect(ready.sampleCount + ready.testCount).toBe(1088);
      expect(ready.testCount).toBe(222);
      const before = await ask(w, { rid: 1, op: 'evaluate', params: ready.params.slice() });
      let params = ready.params;
      for (let e = 0; e < 3; e++) {
        const t = await ask(w, { rid: 2 + e, op: 'train', params: params.slice() });
        if (t.op !== 'trained') throw new Error(JSON.stringify(t));
        params = t.params;
      }
      const after = await ask(w, { rid: 9, op: 'evaluate', params: params.slice() });
      if (before.op !== 'metrics' || after.op !== 'metrics') throw new Error('no metrics');
      expect(after.metrics.c_index).toBeGreaterThan(0.7);
      expect(after.metrics.c_index).toBeGreaterThan(before.metrics.c_index ?? 0);
    } finally {
      await w.terminate();
    }
  }, 120_000);
});
