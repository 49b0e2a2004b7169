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
});
