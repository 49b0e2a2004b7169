// The training worker under the peer's provider policy (issue 14.1), on this CPU-only machine: compute.providerFallback "error" with
// providers ['cuda'] stops the worker's start with PROVIDER_UNAVAILABLE and the reason (the daemon turns it into this peer's failed
// run); "cpu" falls back, and the worker posts its graph reports (provider per graph, cuda refused with its reason, nodes measured
// from ORT's profile) after 'ready' and again when training builds a new graph.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/scenario/manifest.ts';
import { quietProbe } from '../../src/engine/providers.ts';
import { withStartingWorker, withWorker } from '../helpers/worker.ts';

const ROOT = join(import.meta.dirname, '../..');
const manifest = loadManifest(join(ROOT, 'scenarios/wdbc-radiomics.json'));
const cudaMissing = quietProbe('cuda') !== undefined;

const base = { manifest, dataPath: join(ROOT, 'data/wdbc.csv'), dataOptions: { label: 'diagnosis' }, threads: 1 };

describe.runIf(cudaMissing)('training worker provider policy (no CUDA provider here)', () => {
  it('fallback "error" with providers [cuda]: the worker does not start, PROVIDER_UNAVAILABLE with the reason and a hint', async () => {
    await withStartingWorker({ ...base, providers: ['cuda'], providerFallback: 'error' }, async (_w, { messages, next }) => {
      const first = await next((r) => r.rid === 0);
      expect(first).toMatchObject({ op: 'error', code: 'PROVIDER_UNAVAILABLE' });
      if (first.op !== 'error') throw new Error('unreachable');
      expect(first.message).toContain('execution provider cuda is unavailable here');
      expect(first.message).toContain('the CUDA provider is not installed');
      expect(first.hint).toContain('setup:gpu');
      expect(messages.some((m) => m.op === 'ready')).toBe(false);
    });
  }, 120_000);

  it('fallback "cpu" with providers [cuda]: trains on cpu and reports each graph, cuda refused with its reason', async () => {
    await withWorker({ ...base, providers: ['cuda'], providerFallback: 'cpu' }, async (w, ready, { next }) => {
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
    });
  }, 180_000);
});
