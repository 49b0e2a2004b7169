/**
 * The regression export (issue 13.2): `cohort train --task regression --export` writes a self-contained model whose `value` output
 * is in the target's units (the z-scored prediction multiplied back in-graph), and `cohort predict` on the raw held-out rows gives
 * the R2 and MAE that train reported. Real processes, real onnxruntime.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { readTable } from '../../src/data/tabular.ts';
import { auditTable } from '../../src/data/table-audit.ts';
import { readCohortMetadata } from '../../src/engine/export.ts';

const run = promisify(execFile);
const cohort = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args],
  { env: { ...process.env, COHORT_LOG_LEVEL: 'warn' }, maxBuffer: 1 << 24, timeout: 240_000 });

/** The rows of `file` at `rows` (0-based data rows), header first. */
function csvRows(file: string, rows: readonly number[]): string {
  const lines = readFileSync(file, 'utf8').trimEnd().split(/\r?\n/);
  return [lines[0], ...rows.map((r) => lines[r + 1])].join('\n') + '\n';
}

describe('regression export', () => {
  it('train --task regression --export: predict on the raw held-out rows gives train\'s R2 and MAE, in the target\'s units', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-regexport-'));
    try {
      const model = join(dir, 'radius.onnx');
      const { stdout } = await cohort(['train', '--data', 'data/wdbc.csv', '--task', 'regression', '--label', 'radius_mean', '--epochs', '30',
        '--seed', '1', '--providers', 'cpu', '--export', model, '--json']);
      const t = JSON.parse(stdout) as { test: { r2: number; mae: number }; train: { target_mean: number; target_std: number }; exported: string; testSamples: number };
      expect(t.exported).toBe(model);
      const meta = readCohortMetadata(readFileSync(model), model);
      expect(meta.task).toEqual({ kind: 'regression', label: 'radius_mean' });
      expect(meta.outputs).toContain('value');
      expect(meta.target!.mean).toBeCloseTo(t.train.target_mean, 4);
      expect(meta.target!.std).toBeCloseTo(t.train.target_std, 4);

      // the held-out rows train scored (its audit's seeded split), raw, as a hospital would feed them
      const split = auditTable(readTable('data/wdbc.csv'), { label: 'radius_mean', task: 'regression', seed: 1, testFraction: 0.2 }).split;
      expect(split.test.length).toBe(t.testSamples);
      const heldOut = join(dir, 'held-out.csv');
      writeFileSync(heldOut, csvRows('data/wdbc.csv', split.test));
      const p = JSON.parse((await cohort(['predict', '--model', model, '--data', heldOut, '--out', join(dir, 'p.csv'), '--json'])).stdout) as
        { n: number; labelled: number; r2: number; mae: number };
      expect(p.labelled).toBe(t.testSamples);
      expect(p.r2).toBeCloseTo(t.test.r2, 3);
      expect(p.mae).toBeCloseTo(t.test.mae, 3);
      expect(p.mae).toBeLessThan(t.train.target_std); // millimetres, not z-scores: a z-scored output would miss by ~target_mean
      const header = readFileSync(join(dir, 'p.csv'), 'utf8').split('\n')[0];
      expect(header).toBe('subject,predicted_radius_mean');

      // plain onnxruntime: value = prob * std + mean exactly (the rescale is in the graph, not in Cohort's code)
      const s = await ort.InferenceSession.create(readFileSync(model));
      const names = meta.inputs.features;
      const table = readTable(heldOut);
      const x = Float32Array.from({ length: table.rows * names.length }, (_, k) => {
        const v = table.columns.find((c) => c.name === names[k % names.length])!.values[Math.floor(k / names.length)];
        return v === null ? Number.NaN : (v as number);
      });
      // diagnosis (M/B) is a categorical feature when the target is radius_mean: fed as strings, one-hot in-graph
      const cats = meta.inputs.categories;
      const cells = Array.from({ length: table.rows * cats.length }, (_, k) =>
        String(table.columns.find((c) => c.name === cats[k % cats.length])!.values[Math.floor(k / cats.length)] ?? ''));
      expect(cats).toEqual(['diagnosis']);
      const out = await s.run({ features: new ort.Tensor('float32', x, [table.rows, names.length]), categories: new ort.Tensor('string', cells, [table.rows, cats.length]) });
      const value = out['value']!.data as Float32Array, prob = out['prob']!.data as Float32Array;
      for (let i = 0; i < table.rows; i++) expect(value[i]).toBeCloseTo(prob[i]! * meta.target!.std + meta.target!.mean, 3);
      await s.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
