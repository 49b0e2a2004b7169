/**
 * `cohort bench train` rows (issue 14.6): every model reports the fused (K steps per Loop) and the single-step ORT throughput and,
 * with PyTorch, both ratios. Here at quick size, MLP and CNN only, ORT alone (PyTorch pointed at a missing python) so the test
 * does not depend on python3-torch being installed; the ratio fields are then null, never a made-up number.
 */
import { describe, expect, it } from 'vitest';

describe('bench train rows', () => {
  it('carry fused and single-step throughput for each model', async () => {
    process.env.COHORT_BENCH_PYTHON = '/nonexistent/python3';
    process.env.COHORT_BENCH_CASES = 'mlp,cnn2d';
    try {
      const suite = (await import('../../bench/train.ts')).default;
      const r = (await suite.run({ verbose: false, quick: true, resultsDir: '' })) as unknown as { rows: Record<string, unknown>[]; torch: string };
      expect(r.torch).toMatch(/^unavailable: \/nonexistent\/python3 not found/);
      expect(r.rows.map((x) => x.model)).toEqual(['mlp 30-64-2 (WDBC shape)', 'cnn2d 1x32x32']);
      for (const row of r.rows) {
        expect(row.fused_steps as number).toBeGreaterThan(1);
        for (const k of ['ort_fused_samples_per_s', 'ort_single_samples_per_s']) expect(row[k] as number).toBeGreaterThan(0);
        // the headline figure is the Trainer's default: fused for the MLP, single steps for conv nets
        expect(row.ort_samples_per_s).toBe(row[(row.model as string).startsWith('mlp') ? 'ort_fused_samples_per_s' : 'ort_single_samples_per_s']);
        expect([row.ratio, row.ratio_fused, row.ratio_single, row.torch_samples_per_s]).toEqual([null, null, null, null]);
      }
    } finally {
      delete process.env.COHORT_BENCH_PYTHON;
      delete process.env.COHORT_BENCH_CASES;
    }
  });
});
