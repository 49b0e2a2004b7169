/**
 * `cohort train --data FOLDER` as a user runs it: a real process on a tiny SYNTHETIC PET/CT site (8 subjects, 2D 32x32),
 * through the data layer's preprocessing, a held-out split by subject, real onnxruntime training, JSON on stdout.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { writeSynthSite } from '../../src/data/synth.ts';

const run = promisify(execFile);
const cli = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'train', '--providers', 'cpu', ...args],
  { env: { ...process.env, COHORT_LOG_LEVEL: 'warn' }, maxBuffer: 1 << 24 });
const failure = (args: string[]) => cli(args).then(() => null, (e: { code: number; stderr: string }) => e);

const PRE = { modalities: ['PT', 'CT'], size: [32, 32], crop: 'mask',
  intensity: { PT: { method: 'suv', max: 20 }, CT: { method: 'window', level: 40, width: 400 } } };

interface Result {
  model: string; provider: string; epochs: number; seconds: number; task: string;
  test: Record<string, number>; train: { samples: number; subjects: number; loss: number }; testSubjects: number; inputs: Record<string, number[]>;
}

describe('cohort train on a medical folder', () => {
  let dir = '', site = '', pre = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cohort-train-img-'));
    site = join(dir, 'site1');
    writeSynthSite(site, { site: 1, cases: 8, seed: 1 });
    pre = join(dir, 'pre.json');
    writeFileSync(pre, JSON.stringify(PRE));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('trains the default 2D U-Net, split by subject, held-out Dice, exports a model that loads', async () => {
    const file = join(dir, 'unet.onnx');
    const { stdout } = await cli(['--data', site, '--preprocess', pre, '--epochs', '30', '--batch', '2', '--seed', '1', '--export', file, '--json']);
    const r = JSON.parse(stdout) as Result;
    expect(r).toMatchObject({ model: 'unet2d', provider: 'cpu', epochs: 30, task: 'segmentation', testSubjects: 2, inputs: { image: [2, 32, 32] } });
    expect(r.train).toMatchObject({ samples: 6, subjects: 6 });
    expect(r.test.dice).toBeGreaterThan(0.6); // 30 epochs on 6 phantoms: ~0.88 measured; an untrained net is ~0.1
    expect(r.test.iou).toBeGreaterThan(0.4);
    expect(r.test.iou).toBeLessThanOrEqual(r.test.dice);
    expect(r.seconds).toBeGreaterThan(0);
    const s = await ort.InferenceSession.create(readFileSync(file));
    expect(s.inputNames).toEqual(['image']);
    const out = await s.run({ image: new ort.Tensor('float32', new Float32Array(2 * 32 * 32), [1, 2, 32, 32]) });
    expect((out.prob.data as Float32Array).length).toBe(32 * 32);
    await s.release();
  });

  it('takes preprocessing, model and optimizer from a scenario manifest (multimodal classifier: accuracy and AUC)', async () => {
    const { stdout } = await cli(['--data', site, '--scenario', 'scenarios/petct-multimodal.json', '--epochs', '3', '--json']);
    const r = JSON.parse(stdout) as Result;
    expect(r).toMatchObject({ model: 'multimodal', task: 'classification', epochs: 3, inputs: { image: [2, 32, 32], clinical: [2] } });
    expect(r.test.accuracy).toBeGreaterThanOrEqual(0);
    expect(r.test.accuracy).toBeLessThanOrEqual(1);
    expect(r.test.auc).toBeGreaterThanOrEqual(0);
    expect(r.test.dice).toBeUndefined();
  });

  it('bad input: not a medical folder, no preprocessing config, model shape vs sample shape (exit code 2)', async () => {
    const empty = join(dir, 'notes');
    mkdirSync(empty);
    writeFileSync(join(empty, 'readme.txt'), 'no images here');
    const unet3d = join(dir, 'unet3d.json');
    writeFileSync(unet3d, JSON.stringify({ type: 'unet3d', base: 4 }));
    const [notFolder, noConfig, shape] = await Promise.all([
      failure(['--data', empty, '--preprocess', pre]),
      failure(['--data', site]),
      failure(['--data', site, '--preprocess', pre, '--model', unet3d]),
    ]);
    expect(notFolder?.code).toBe(2);
    expect(notFolder?.stderr).toMatch(/notes is not a medical folder: it holds no <subject>\/<modality>\/ image folders/);
    expect(noConfig?.code).toBe(2);
    expect(noConfig?.stderr).toMatch(/site1 is an image folder, and images need a preprocessing config/);
    expect(noConfig?.stderr).toMatch(/hint: pass --preprocess CONFIG.json/);
    expect(shape?.code).toBe(2);
    expect(shape?.stderr).toMatch(/model unet3d expects input 'image' of shape \[C,D,H,W\], but the preprocessed samples are \[2,32,32\]/);
  });
});
