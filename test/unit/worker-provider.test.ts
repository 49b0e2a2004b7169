// The training worker under the peer's provider policy (issue 14.1), on this CPU-only machine: compute.providerFallback "error" with
// providers ['cuda'] stops the worker's start with PROVIDER_UNAVAILABLE and the reason (the daemon turns it into this peer's failed
// run); "cpu" falls back, and the worker posts its graph reports (provider per graph, cuda refused with its reason, nodes measured
// from ORT's profile) after 'ready' and again when training builds a new graph.
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/scenario/manifest.ts';
import { quietProbe } from '../../src/engine/providers.ts';
import type { WorkerInit, WorkerReply } from '../../src/peer/worker.ts';

const ROOT = join(import.meta.dirname, '../..');
const manifest = loadManifest(join(ROOT, 'scenarios/wdbc-radiomics.json'));
const cudaMissing = quietProbe('cuda') !== undefined;

function startWorker(init: WorkerInit): { w: Worker; messages: WorkerReply[]; next: (pred: (r: WorkerReply) => boolean) => Promise<WorkerReply> } {
  const w = new Worker(new URL('../../src/peer/worker-boot.mjs', import.meta.url), { workerData: init });
  const messages: WorkerReply[] = [];
  const waiting: { pred: (r: WorkerReply) => boolean; resolve: (r: WorkerReply) => void }[] = [];
  w.on('message', (r: WorkerReply) => {
    messages.push(r);
    for (const x of waiting.filter((x) => x.pred(r))) { waiting.splice(waiting.indexOf(x), 1); x.resolve(r); }
  });
  const next = (pred: (r: WorkerReply) => boolean): Promise<WorkerReply> => new Promise((resolve, reject) => {
    const seen = messages.find(pred);
    if (seen) return resolve(seen);
    waiting.push({ pred, resolve });
    w.once('error', reject);
  });
  return { w, messages, next };
}

const base = { manifest, dataPath: join(ROOT, 'data/wdbc.csv'), dataOptions: { label: 'diagnosis' }, threads: 1 };

describe.runIf(cudaMissing)('training worker provider policy (no CUDA provider here)', () => {
  it('fallback "error" with providers [cuda]: the worker does not start, PROVIDER_UNAVAILABLE with the reason and a hint', async () => {
    const { w, messages, next } = startWorker({ ...base, providers: ['cuda'], providerFallback: 'error' });
    try {
      const first = await next((r) => r.rid === 0);
      expect(first).toMatchObject({ op: 'error', code: 'PROVIDER_UNAVAILABLE' });
      if (first.op !== 'error') throw new Error('unreachable');
      expect(first.message).toContain('execution provider cuda is unavailable here');
      expect(first.message).toContain('the CUDA provider is not installed');
      expect(first.hint).toContain('setup:gpu');
      expect(messages.some((m) => m.op === 'ready')).toBe(false);
    } finally {
      await w.terminate();
    }
  }, 120_000);

  it('fallback "cpu" with providers [cuda]: trains on cpu and reports each graph, cuda refused with its reason', async () => {
    const { w, next } = startWorker({ ...base, providers: ['cuda'], providerFallback: 'cpu' });
    try {
      const ready = await next((r) => r.op === 'ready');
      if (ready.op !== 'ready') throw new Error(JSON.stringify(ready));
      expect(ready.provider).toBe('cpu');
      const first = await next((r) => r.op === 'graphs');
      if (first.op !== 'graphs') throw new Error('unreachable');
      expect(first.graphs.map((g) => g.graph)).toEqual([`step|${manifest.training.batchSize}`]);
      expect(first.graphs[0]).toMatchObject({ provider: 'cpu', cpuFallbackNodes: 0 });
      expect(first.graphs[0]!.refused).toEqual([expect.stringMatching(/^cuda: the CUDA provider is not installed/)]);
      // a round of local training builds the fused loop graph (mlp): the worker posts the longer list, nodes counted from the profile
      w.postMessage({ rid: 1, op: 'train', params: ready.params });
      expect(await next((r) => r.rid === 1)).toMatchObject({ op: 'trained' });
      const later = await next((r) => r.op === 'graphs' && r.graphs.length > 1);
      if (later.op !== 'graphs') throw new Error('unreachable');
      expect(later.graphs.some((g) => g.graph.startsWith('loop|'))).toBe(true);
      for (const g of later.graphs) {
        expect(g).toMatchObject({ provider: 'cpu', cpuFallbackNodes: 0 });
        expect(g.refused[0]).toMatch(/^cuda: /);
      }
      expect(later.graphs.find((g) => g.graph.startsWith('loop|'))!.nodes).toBeGreaterThan(0);
    } finally {
      await w.terminate();
    }
  }, 180_000);
});
