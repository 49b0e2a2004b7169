/**
 * `cohort predict` as a user runs it (real processes): train --export on data/wdbc.csv, then predict on the rows train held
 * out gives train's own held-out accuracy; bad input (a missing column, a file that is no ONNX model, an ONNX model without
 * Cohort's metadata) is a clear error with exit code 2. A U-Net trained on one synthetic PET/CT site segments another site's raw
 * folder through `cohort predict DIR` (the intensity transform in-graph, the preprocessing from the model's metadata).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTable } from '../../src/data/tabular.ts';
import { auditTable } from '../../src/data/table-audit.ts';
import { Trainer, releaseSessions } from '../../src/engine/index.ts';
import { tabular } from './engine-fixtures.ts';
import { writeSynthSite } from '../../src/data/synth.ts';

const run = promisify(execFile);
const cohort = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { maxBuffer: 1 << 24 });
const failure = (args: string[]) => cohort(args).then(() => null, (e: { code: number; stderr: string }) => e);

let dir = '';
interface Trained { model: string; test: { accuracy: number; auc: number }; testSamples: number }
let trainedOnce: Promise<Trained> | undefined;
/** One `cohort train --export` shared by the tests (whichever runs first trains). */
function trained(): Promise<Trained> {
  const model = join(dir, 'm.onnx');
  return (trainedOnce ??= cohort(['train', '--data', 'data/wdbc.csv', '--label', 'diagnosis', '--epochs', '15', '--seed', '3',
    '--providers', 'cpu', '--export', model, '--json']).then((r) => ({ ...JSON.parse(r.stdout) as Omit<Trained, 'model'>, model })));
}
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'cohort-predict-')); });
afterAll(async () => { rmSync(dir, { recursive: true, force: true }); await releaseSessions(); });

describe('cohort predict', () => {
  it('predicts the rows cohort train held out with the accuracy train reported, one row per subject', async () => {
    const { model, ...train } = await trained();
    // the held-out rows, as cohort train split them (same seed and fraction), written as a raw CSV
    const audit = auditTable(readTable('data/wdbc.csv'), { label: 'diagnosis', task: 'classification', ignore: [], seed: 3, testFraction: 0.2 });
    const lines = readFileSync('data/wdbc.csv', 'utf8').trim().split(/\r?\n/);
    const held = audit.split.test.map((i) => audit.samples.rowIndex[i]);
    writeFileSync(join(dir, 'held.csv'), [lines[0], ...held.map((r) => lines[r + 1])].join('\n') + '\n');
    const out = join(dir, 'p.csv');
    const r = JSON.parse((await cohort(['predict', '--model', model, '--data', join(dir, 'held.csv'), '--out', out, '--json'])).stdout) as
      { n: number; accuracy: number; auc: number; labelled: number; ignored: string[]; predictions: string; model: { classes: string[]; task: { kind: string } } };
    expect(r.n).toBe(train.testSamples);
    expect(r.labelled).toBe(train.testSamples);
    expect(r.accuracy).toBe(train.test.accuracy);
    expect(r.auc).toBeCloseTo(train.test.auc, 6);
    expect(r.ignored).toEqual(['id']);
    expect(r.model.classes).toEqual(['benign', 'malignant']);
    expect(r.model.task.kind).toBe('classification');
    const rows = readFileSync(out, 'utf8').trim().split('\n');
    expect(rows[0]).toBe('subject,prob_benign,prob_malignant,label');
    expect(rows.length).toBe(train.testSamples + 1);
    const first = rows[1].split(',');
    expect(first[0]).toBe(lines[held[0] + 1].split(',')[0]); // the id column names the subject
    expect(Number(first[1]) + Number(first[2])).toBeCloseTo(1, 5);
    expect(['benign', 'malignant']).toContain(first[3]);
    // without the label column: predictions only, row numbers when there is no id column either
    const bare = lines.map((l) => l.split(',').slice(1, -1).join(','));
    writeFileSync(join(dir, 'bare.csv'), bare.join('\n') + '\n');
    const b = JSON.parse((await cohort(['predict', '--model', model, '--data', join(dir, 'bare.csv'), '--out', out, '--json'])).stdout) as Record<string, unknown>;
    expect(b.n).toBe(569);
    expect(b.accuracy).toBeUndefined();
    expect(readFileSync(out, 'utf8').split('\n')[1]).toMatch(/^1,/);
  });

  it('a table missing a column is exit 2 naming it; extra columns are a note', async () => {
    const { model } = await trained();
    const lines = readFileSync('data/wdbc.csv', 'utf8').trim().split(/\r?\n/).map((l) => l.split(','));
    const drop = lines[0].indexOf('texture_worst');
    writeFileSync(join(dir, 'less.csv'), lines.map((r) => r.filter((_, j) => j !== drop).join(',')).join('\n') + '\n');
    const err = await failure(['predict', '--model', model, '--data', join(dir, 'less.csv'), '--out', join(dir, 'x.csv')]);
    expect(err?.code).toBe(2);
    expect(err?.stderr).toMatch(/less.csv lacks 1 column\(s\) the model reads: texture_worst/);
    writeFileSync(join(dir, 'more.csv'), lines.map((r, i) => [...r, i ? 'x' : 'site'].join(',')).join('\n') + '\n');
    const ok = await cohort(['predict', '--model', model, '--data', join(dir, 'more.csv'), '--out', join(dir, 'x.csv')]);
    expect(ok.stderr).toMatch(/note: ignored column\(s\) the model does not read: id, site/);
    expect(ok.stdout).toMatch(/wrote 569 predictions to .*x.csv \(accuracy 0\.\d+, auc 0\.\d+ on 569 labelled rows\)/);
  });

  it('a file that is no ONNX model, and an ONNX model without Cohort metadata, are clear errors (exit 2)', async () => {
    const notOnnx = await failure(['predict', '--model', 'data/wdbc.csv', '--data', 'data/wdbc.csv', '--out', join(dir, 'x.csv')]);
    expect(notOnnx?.code).toBe(2);
    expect(notOnnx?.stderr).toMatch(/data\/wdbc.csv is not an ONNX model/);
    const t = await Trainer.create({ model: { type: 'mlp', hidden: [4], classes: 2 }, optimizer: { type: 'sgd' }, batchSize: 4, seed: 1, providers: ['cpu'] }, tabular(8, 3, 1));
    writeFileSync(join(dir, 'plain.onnx'), t.exportOnnx());
    await t.dispose();
    const plain = await failure(['predict', '--model', join(dir, 'plain.onnx'), '--data', 'data/wdbc.csv', '--out', join(dir, 'x.csv')]);
    expect(plain?.code).toBe(2);
    expect(plain?.stderr).toMatch(/plain.onnx is an ONNX model without Cohort's metadata/);
    const none = await failure(['predict', '--model', join(dir, 'nope.onnx'), '--data', 'data/wdbc.csv']);
    expect(none?.code).toBe(2);
    expect(none?.stderr).toMatch(/no such model file/);
  });
});

describe('cohort predict on a medical folder', () => {
  it('a U-Net exported by cohort train segments a site it never saw; a table for an image model is exit 2', async () => {
    const site1 = join(dir, 'site1'), site2 = join(dir, 'site2'), pre = join(dir, 'pre.json'), model = join(dir, 'unet.onnx');
    writeSynthSite(site1, { site: 1, cases: 8, seed: 1 });
    writeSynthSite(site2, { site: 2, cases: 4, seed: 5 });
    writeFileSync(pre, JSON.stringify({ modalities: ['PT', 'CT'], size: [32, 32], crop: 'mask',
      intensity: { PT: { method: 'suv', max: 20 }, CT: { method: 'window', level: 40, width: 400 } } }));
    await cohort(['train', '--data', site1, '--preprocess', pre, '--epochs', '30', '--batch', '2', '--seed', '1', '--providers', 'cpu', '--export', model, '--json']);
    const out = join(dir, 'seg.csv');
    const r = JSON.parse((await cohort(['predict', '--model', model, '--data', site2, '--out', out, '--json'])).stdout) as
      { n: number; dice: number; labelled: number; model: { task: { kind: string }; image: { shape: number[]; intensity: { inGraph: boolean }[] } } };
    expect(r.n).toBe(4);
    expect(r.model.task.kind).toBe('segmentation');
    expect(r.model.image.shape).toEqual([2, 32, 32]);
    expect(r.model.image.intensity.map((i) => i.inGraph)).toEqual([true, true]);
    expect(r.dice).toBeGreaterThan(0.5); // 0.747 measured; an untrained net is ~0.1
    const rows = readFileSync(out, 'utf8').trim().split('\n');
    expect(rows[0]).toBe('subject,foreground_voxels,foreground_fraction');
    expect(rows.slice(1).map((l) => l.split(',')[0])).toEqual(['s2-0000', 's2-0001', 's2-0002', 's2-0003']);
    const err = await failure(['predict', '--model', model, '--data', 'data/wdbc.csv', '--out', join(dir, 'x.csv')]);
    expect(err?.code).toBe(2);
    expect(err?.stderr).toMatch(/is an image model \(input image \[2, 32, 32\]\); data\/wdbc.csv is a table/);
  }, 240_000);
});
