/**
 * `cohort sim --data` with the table audit (issue 13.4), as a researcher runs it (real processes, real ORT): identifier-like
 * columns and the leaking column named, --ignore reaches the simulated peers' models, a continuous label refused as classes, and
 * --task regression. Fixture: test/fixtures/data/wdbc-leaky.csv (see test/unit/table-audit.test.ts).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const sim = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'sim', ...args],
  { env: { ...process.env, COHORT_LOG_LEVEL: 'warn' }, maxBuffer: 1 << 24 });
const LEAKY = 'test/fixtures/data/wdbc-leaky.csv';

interface SimTableJson {
  final: { mean: number; metric: string };
  table: { features: string[]; identifiers: string[]; ignored: string[]; imputed: Record<string, number>; warnings: Array<{ column: string }> };
  details?: { parameters: number };
}

describe('cohort sim --data: honest tables', () => {
  it('names identifiers and the leaking column; --ignore removes it from every peer\'s model', async () => {
    const leaky = await sim(['--data', LEAKY, '--label', 'diagnosis', '--peers', '4', '--rounds', '3', '--no-baselines', '--json', '--details']);
    const a = JSON.parse(leaky.stdout) as SimTableJson;
    expect(a.table.identifiers).toEqual(['pid', 'enrolment']);
    expect(a.table.warnings.map((w) => w.column)).toEqual(['review_score']);
    expect(a.table.imputed).toEqual({ smoothness_mean: 9 });
    expect(leaky.stderr).toMatch(/note: dropped identifier-like column\(s\): pid, enrolment/);
    expect(leaky.stderr).toMatch(/warning: column 'review_score' alone predicts the label/);
    expect(a.details?.parameters).toBe(8 * 16 + 16 + 16 * 2 + 2); // MLP 16 over 8 inputs, 2 classes
    const clean = await sim(['--data', LEAKY, '--label', 'diagnosis', '--ignore', 'review_score', '--peers', '4', '--rounds', '3', '--no-baselines', '--json', '--details']);
    const b = JSON.parse(clean.stdout) as SimTableJson;
    expect(b.table.ignored).toEqual(['review_score']);
    expect(b.table.warnings).toEqual([]);
    expect(b.table.features).not.toContain('review_score');
    expect(b.details?.parameters).toBe(7 * 16 + 16 + 16 * 2 + 2); // the peers' models no longer see it
  });

  it('refuses a continuous label as classes; --task regression reports r2', async () => {
    const err = await sim(['--data', 'data/wdbc.csv', '--label', 'radius_mean', '--peers', '4']).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(err?.code).toBe(2);
    expect(err?.stderr).toMatch(/hint: to predict the value itself use --task regression --label radius_mean/);
    const { stdout } = await sim(['--data', 'data/wdbc.csv', '--task', 'regression', '--label', 'radius_mean', '--peers', '4', '--rounds', '8',
      '--no-baselines', '--json']);
    const r = JSON.parse(stdout) as SimTableJson;
    expect(r.final.metric).toBe('r2');
    expect(r.final.mean).toBeGreaterThan(0.5);
    expect(r.table.features).not.toContain('radius_mean');
  });
});
