// Images with a consortium intensity z-score (issue 13.1) on the real training worker thread: two synthetic PET/CT sites (different
// scanner calibrations); the worker of site A sends its PT voxel statistics (exactly what its raw training crops give), waits raw,
// applies the mean/sd agreed with site B's statistics, and its exported model.onnx carries those two numbers in-graph: on site A's
// raw held-out volumes it gives the worker's own Dice.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { agreeStandardiser, combineStats } from '../../src/data/standardiser-stats.ts';
import { agreedIntensity, intensityStats } from '../../src/data/intensity-stats.ts';
import { parsePreprocessConfig, preprocessFolder, splitBySubject } from '../../src/data/preprocess.ts';
import { selectSamples } from '../../src/data/samples.ts';
import { writeSynthSite } from '../../src/data/synth.ts';
import { readCohortMetadata } from '../../src/engine/export.ts';
import { meanDice } from '../../src/engine/metrics.ts';
import { loadManifest, type ScenarioManifest } from '../../src/scenario/manifest.ts';
import type { WorkerInit } from '../../src/peer/worker.ts';
import { ask, trainRounds, withWorker } from '../helpers/worker.ts';

const ROOT = join(import.meta.dirname, '../..');

describe('training worker: consortium intensity z-score', () => {
  it('statistics out, the agreed PT mean/sd applied, the same two numbers in the exported graph', async () => {
    const base = loadManifest(join(ROOT, 'scenarios/petct-segmentation.json'));
    const preprocessing = { ...base.data.preprocessing, minCount: 2,
      intensity: { PT: { method: 'zscore', scope: 'consortium' }, CT: { method: 'window', level: 40, width: 400 } } };
    const manifest: ScenarioManifest = { ...base, data: { ...base.data, preprocessing } };
    const cfg = parsePreprocessConfig(preprocessing);
    const dir = mkdtempSync(join(tmpdir(), 'cohort-worker-intensity-'));
    const siteA = join(dir, 'a'), siteB = join(dir, 'b');
    writeSynthSite(siteA, { site: 0, cases: 8, seed: 4 });
    writeSynthSite(siteB, { site: 2, cases: 8, seed: 4 });
    // what each site's training part gives (the worker's own preprocessing and split, here in the test)
    const trainStats = (root: string) => {
      const r = preprocessFolder(root, preprocessing, manifest.training.seed);
      return intensityStats(selectSamples(r.set, splitBySubject(r, manifest.data.holdout, manifest.training.seed).train), cfg, { minCount: 2 });
    };
    const statsB = trainStats(siteB)!;
    const init: WorkerInit = { manifest, dataPath: siteA, dataOptions: {}, threads: 1, providers: ['cpu'] };
    try {
      await withWorker(init, async (w, ready) => {
        expect(ready.inputScale.mode).toBe('consortium');
        expect(ready.inputScale.stats).toEqual(trainStats(siteA));
        expect(Object.keys(ready.inputScale.stats!.inputs)).toEqual(['intensity:PT']);
        const agreed = agreeStandardiser(combineStats([ready.inputScale.stats!, statsB]));
        const pt = agreedIntensity(agreed, cfg).PT!;
        const aloneA = agreedIntensity(agreeStandardiser(combineStats([ready.inputScale.stats!])), cfg).PT!;
        expect(Math.abs(pt.mean - aloneA.mean) / aloneA.mean).toBeGreaterThan(1e-3);   // site B's scanner moved the agreed values
        const before = await ask(w, { rid: 1, op: 'evaluate', params: ready.params.slice() });
        expect(await ask(w, { rid: 2, op: 'standardise', standardiser: agreed })).toMatchObject({ op: 'standardised', hash: agreed.hash });
        const after = await ask(w, { rid: 3, op: 'evaluate', params: ready.params.slice() });
        if (before.op !== 'metrics' || after.op !== 'metrics') throw new Error('no metrics');
        expect(after.metrics.loss).not.toBe(before.metrics.loss);   // the same model sees the PT channel on the agreed scale now
        const p = await trainRounds(w, ready.params.slice(), 3);
        const own = await ask(w, { rid: 20, op: 'evaluate', params: p.slice() });
        const out = await ask(w, { rid: 21, op: 'export', params: p.slice() });
        if (own.op !== 'metrics' || out.op !== 'bytes') throw new Error('no metrics or model');
        const meta = readCohortMetadata(out.bytes, 'model.onnx');
        expect(meta.image?.intensity.map((i) => [i.modality, i.config.method, i.inGraph])).toEqual([['PT', 'zscore', true], ['CT', 'window', true]]);
        expect(meta.image?.intensity[0]!.config).toMatchObject({ scope: 'consortium', mean: pt.mean, std: pt.std });
        // site A's held-out subjects, preprocessed the same way without the intensity steps: raw PT and CT into the graph
        const raw = preprocessFolder(siteA, { ...preprocessing, intensity: { PT: { method: 'none' }, CT: { method: 'none' } } }, manifest.training.seed);
        const test = selectSamples(raw.set, splitBySubject(raw, manifest.data.holdout, manifest.training.seed).test);
        expect(test.size).toBe(ready.testCount);
        const s = await ort.InferenceSession.create(out.bytes);
        const prob = (await s.run({ image: new ort.Tensor('float32', test.inputs.image!.data, [test.size, ...test.inputs.image!.shape]) })).prob!.data as Float32Array;
        await s.release();
        expect(meanDice(prob, test.targets.mask!.data, prob.length / test.size)).toBeCloseTo(own.metrics.dice!, 4);
        expect(own.metrics.dice).toBeGreaterThan(0.05); // non-empty predicted masks: the equality above is not two empty ones
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
