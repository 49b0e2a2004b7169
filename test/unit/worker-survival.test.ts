// The real training worker thread (src/peer/worker.ts, as a peer daemon starts it) on a survival manifest: it reads the time and
// event columns, uses the manifest's fixed train/test column, trains the Cox model and reports the held-out C-index.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/scenario/manifest.ts';
import type { WorkerInit } from '../../src/peer/worker.ts';
import { ask, trainRounds, withWorker } from '../helpers/worker.ts';

const ROOT = join(import.meta.dirname, '../..');

describe('training worker on a survival scenario', () => {
  it('splits by the manifest\'s train column, trains the Cox model and reports c_index', async () => {
    const manifest = loadManifest(join(ROOT, 'scenarios/tcga-brca.json'));
    const init: WorkerInit = { manifest, dataPath: join(ROOT, 'data/tcga-brca.csv'), dataOptions: {}, threads: 1, providers: ['cpu'] };
    await withWorker(init, async (w, ready) => {
      // FLamby's fixed split of Fed-TCGA-BRCA: 866 training and 222 test patients
      expect(ready.sampleCount + ready.testCount).toBe(1088);
      expect(ready.testCount).toBe(222);
      const before = await ask(w, { rid: 1, op: 'evaluate', params: ready.params.slice() });
      const params = await trainRounds(w, ready.params, 3, 2);
      const after = await ask(w, { rid: 9, op: 'evaluate', params: params.slice() });
      if (before.op !== 'metrics' || after.op !== 'metrics') throw new Error('no metrics');
      expect(after.metrics.c_index).toBeGreaterThan(0.7);
      expect(after.metrics.c_index).toBeGreaterThan(before.metrics.c_index ?? 0);
    });
  }, 120_000);
});
