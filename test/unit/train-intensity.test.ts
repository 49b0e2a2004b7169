/**
 * `cohort train --data FOLDER` (a real process) with a consortium intensity z-score and one site: the site's training part gives
 * the PT mean and sd (data/intensity-stats.ts ownIntensityScale), the exported model carries them in-graph, and on the raw held-out
 * volumes it gives the Dice the command reported.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { writeSynthSite } from '../../src/data/synth.ts';
import { parsePreprocessConfig, preprocessFolder, splitBySubject } from '../../src/data/preprocess.ts';
import { ownIntensityScale } from '../../src/data/intensity-stats.ts';
import { selectSamples } from '../../src/data/samples.ts';
import { readCohortMetadata } from '../../src/engine/export.ts';
import { meanDice } from '../../src/engine/metrics.ts';

const run = promisify(execFile);
const PRE = { modalities: ['PT', 'CT'], size: [32, 32], crop: 'mask',
  intensity: { PT: { method: 'zscore', scope: 'consortium' }, CT: { method: 'window', level: 40, width: 400 } } };

describe('cohort train: consortium intensity z-score on one site', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-train-intensity-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the training part\'s PT mean/sd, in-graph in the export; raw held-out volumes give the reported Dice', async () => {
    const site = join(dir, 'site'), pre = join(dir, 'pre.json'), file = join(dir, 'm.onnx');
    writeSynthSite(site, { site: 1, cases: 8, seed: 1 });
    writeFileSync(pre, JSON.stringify(PRE));
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'train', '--providers', 'cpu', '--data', site, '--preprocess', pre,
      '--epochs', '15', '--batch', '2', '--seed', '1', '--export', file, '--json'], { env: { ...process.env, COHORT_LOG_LEVEL: 'warn' }, maxBuffer: 1 << 24 });
    const r = JSON.parse(stdout) as { test: { dice: number } };
    const bytes = readFileSync(file);
    const meta = readCohortMetadata(bytes, 'm.onnx');
    const folded = preprocessFolder(site, PRE, 1);
    const split = splitBySubject(folded, 0.25, 1);
    const own = ownIntensityScale(folded.set, split.train, parsePreprocessConfig(PRE))!;
    expect(meta.image?.intensity[0]).toMatchObject({ modality: 'PT', inGraph: true, config: { method: 'zscore', scope: 'consortium', mean: own.agreed.PT!.mean, std: own.agreed.PT!.std } });
    const raw = preprocessFolder(site, { ...PRE, intensity: { PT: { method: 'none' }, CT: { method: 'none' } } }, 1);
    const test = selectSamples(raw.set, split.test);
    const s = await ort.InferenceSession.create(bytes);
    const prob = (await s.run({ image: new ort.Tensor('float32', test.inputs.image!.data, [test.size, ...test.inputs.image!.shape]) })).prob!.data as Float32Array;
    await s.release();
    expect(meanDice(prob, test.targets.mask!.data, prob.length / test.size)).toBeCloseTo(r.test.dice, 4);
    expect(r.test.dice).toBeGreaterThan(0.05);
  }, 300_000);
});
