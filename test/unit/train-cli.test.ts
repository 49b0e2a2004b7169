/** `cohort train` as a user runs it: a real process on data/wdbc.csv, JSON on stdout, logs on stderr. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';

const run = promisify(execFile);
const cli = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'train', ...args],
  { env: { ...process.env, COHORT_LOG_LEVEL: 'info' }, maxBuffer: 1 << 24 });

describe('cohort train', () => {
  it('trains WDBC, falls back from cuda to cpu with a log line, exports a model that loads', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-train-'));
    try {
      const file = join(dir, 'model.onnx');
      const { stdout, stderr } = await cli(['--data', 'data/wdbc.csv', '--label', 'diagnosis', '--epochs', '20', '--seed', '1',
        '--providers', 'cuda,cpu', '--export', file, '--json']);
      const r = JSON.parse(stdout) as { model: string; provider: string; epochs: number; test: { accuracy: number; auc: number }; seconds: number };
      expect(r.model).toBe('mlp');
      expect(r.provider).toBe('cpu');
      expect(r.epochs).toBe(20);
      expect(r.test.accuracy).toBeGreaterThanOrEqual(0.95);
      expect(r.test.auc).toBeGreaterThan(0.97);
      expect(r.seconds).toBeGreaterThan(0);
      expect(stderr).toMatch(/execution provider cuda is unavailable; falling back to cpu/);
      expect(stderr).toMatch(/training mlp on cpu/);
      const s = await ort.InferenceSession.create(readFileSync(file));
      expect(s.inputNames).toEqual(['features']);
      const out = await s.run({ features: new ort.Tensor('float32', new Float32Array(30), [1, 30]) });
      const p = out.prob.data as Float32Array;
      expect(p[0] + p[1]).toBeCloseTo(1, 5);
      await s.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a missing label column is a clear error with exit code 2', async () => {
    const err = await cli(['--data', 'data/wdbc.csv', '--label', 'nope']).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(err?.code).toBe(2);
    expect(err?.stderr).toMatch(/data\/wdbc.csv has no label column 'nope'/);
    expect(err?.stderr).toMatch(/hint: columns: id, radius_mean/);
  });

  // issue 13.4, honest tables. wdbc-leaky.csv: WDBC with pid, enrolment (distinct integer per row), review_score (label + noise).
  it('names the identifier columns it drops and the column that leaks the label; --ignore removes it', async () => {
    const human = await cli(['--data', 'test/fixtures/data/wdbc-leaky.csv', '--label', 'diagnosis', '--epochs', '5', '--providers', 'cpu']);
    expect(human.stderr).toMatch(/note: dropped identifier-like column\(s\): pid, enrolment \(by name: pid; a distinct value in every row: enrolment\)/);
    expect(human.stderr).toMatch(/features \(8 column\(s\), 8 input\(s\)\): radius_mean, .*, review_score/);
    expect(human.stderr).toMatch(/note: imputed missing values .*: smoothness_mean 9/);
    expect(human.stderr).toMatch(/warning: column 'review_score' alone predicts the label almost perfectly .*--ignore review_score/);
    const { stdout } = await cli(['--data', 'test/fixtures/data/wdbc-leaky.csv', '--label', 'diagnosis', '--epochs', '5', '--providers', 'cpu',
      '--ignore', 'review_score', '--json']);
    const r = JSON.parse(stdout) as { features: string[]; identifiers: string[]; ignored: string[]; imputed: Record<string, number>; warnings: unknown[] };
    expect(r.features).toEqual(['radius_mean', 'texture_mean', 'perimeter_mean', 'area_mean', 'smoothness_mean', 'concavity_mean', 'symmetry_mean']);
    expect(r.identifiers).toEqual(['pid', 'enrolment']);
    expect(r.ignored).toEqual(['review_score']);
    expect(r.imputed).toEqual({ smoothness_mean: 9 });
    expect(r.warnings).toEqual([]);
    const leaky = JSON.parse((await cli(['--data', 'test/fixtures/data/wdbc-leaky.csv', '--label', 'diagnosis', '--epochs', '1', '--providers', 'cpu', '--json'])).stdout) as
      { warnings: Array<{ column: string; statistic: string; value: number }> };
    expect(leaky.warnings.map((w) => [w.column, w.statistic])).toEqual([['review_score', 'auc']]);
    const bad = await cli(['--data', 'data/wdbc.csv', '--label', 'diagnosis', '--ignore', 'radius_mea']).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(bad?.code).toBe(2);
    expect(bad?.stderr).toMatch(/no ignored column 'radius_mea'[\s\S]*did you mean 'radius_mean'/);
  });

  it('refuses a continuous label as classes with a hint, and --task regression predicts it (R2, MAE in its units)', async () => {
    const err = await cli(['--data', 'data/wdbc.csv', '--label', 'radius_mean']).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(err?.code).toBe(2);
    expect(err?.stderr).toMatch(/label column 'radius_mean' has \d+ distinct values \(a continuous column\)/);
    expect(err?.stderr).toMatch(/hint: to predict the value itself use --task regression --label radius_mean/);
    // radius_mean from the other WDBC features (perimeter and area among them: an easy, real target)
    const { stdout } = await cli(['--data', 'data/wdbc.csv', '--task', 'regression', '--label', 'radius_mean', '--epochs', '40', '--seed', '1',
      '--providers', 'cpu', '--json']);
    const r = JSON.parse(stdout) as { task: string; test: { r2: number; mae: number; rmse: number; mae_of_training_mean: number };
      train: { target_mean: number; target_std: number }; features: string[]; warnings: Array<{ column: string }> };
    expect(r.task).toBe('regression');
    expect(r.features).not.toContain('radius_mean');
    expect(r.features).not.toContain('id');
    expect(r.test.r2).toBeGreaterThan(0.5);
    expect(r.test.mae).toBeLessThan(r.test.mae_of_training_mean / 2);
    expect(r.train.target_mean).toBeGreaterThan(10); // original units (mm), not the standardised scale
    expect(r.train.target_mean).toBeLessThan(20);
    expect(r.warnings.map((w) => w.column)).toContain('perimeter_mean');
    const text = await cli(['--data', 'data/wdbc.csv', '--task', 'regression', '--label', 'radius_mean', '--epochs', '5', '--providers', 'cpu']);
    expect(text.stdout).toMatch(/held-out R2 -?\d\.\d{4}, MAE [\d.]+, RMSE [\d.]+ \(units of radius_mean; predicting the training mean: MAE [\d.]+\)/);
  });
});
