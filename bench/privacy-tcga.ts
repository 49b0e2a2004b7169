/**
 * The Fed-TCGA-BRCA part of `cohort bench privacy` (docs/privacy.md, TCGA-BRCA): DP-SGD utility on survival, with the loss
 * that makes a per-patient guarantee honest (discrete-time logistic hazard, src/engine/survival-discrete.ts; the Cox partial
 * likelihood stays refused).
 *
 * Rows (part "utility", task "tcga"; the 6 regions are the peers): scenarios/tcga-brca-dp.json at epsilon 1, 3, 8 and inf
 * (its model form, clip and learning rate were chosen by bench/privacy-tune-tcga.ts with 5-fold cross-validation on FLamby's
 * training rows only, tuning seeds 101-103; bench/tcga-diagnose.ts shows why the model form matters), and the non-private Cox reference scenarios/tcga-brca.json, with the same seeds 1..N: final C-index on
 * FLamby's pooled test set (mean over peers) with a 95% t interval over seeds, epsilon actually spent, noise multipliers.
 *
 *   npx tsx bench/privacy-tcga.ts     runs the rows and MERGES them into bench/results/privacy.json: the file is read right
 *                                     before writing and only the rows with task "tcga" and the "tcga" field are replaced
 * Knobs: COHORT_BENCH_SEEDS=N (5), COHORT_BENCH_ROUNDS=R (the scenarios' own), COHORT_BENCH_TCGA_SCENARIO=path,
 * COHORT_BENCH_TCGA_RUNS=1,3,8,inf,cox (which rows; a merge then replaces only those rows, so runs can go in parallel).
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadManifest } from '../src/scenario/manifest.ts';
import { runScenarioSim } from '../src/sim/run.ts';
import { releaseSessions } from '../src/engine/index.ts';
import { tInterval } from '../src/util/stats.ts';
import { intervalPlot } from '../src/util/plot.ts';
import { cpus, loadavg } from 'node:os';
import { RESULTS_DIR } from './suite.ts';

export type TcgaRow = {
  part: 'utility'; task: 'tcga'; scenario: string; loss: string; peers: number; epsilon: number | 'inf'; seeds: number;
  c_index_mean: number; c_index_lo: number; c_index_hi: number; per_seed: number[];
  epsilon_spent_max: number | null; noise_multiplier_min: number | null; noise_multiplier_max: number | null; secure: boolean; rounds: number;
};

export const TCGA_NOTE = 'Fed-TCGA-BRCA, 6 regions as peers, D-PSGD on the complete graph; DP rows: discrete-time logistic hazard (10 yearly intervals, '
  + 'proportional-hazards form: one linear predictor + 10 baseline logits, 49 parameters; a sum of per-patient terms, so DP-SGD clipping bounds each patient); '
  + 'reference: linear Cox (Breslow), non-private. C-index on FLamby\'s pooled test set.';

const EPSILONS = [1, 3, 8, Infinity];

export async function tcgaUtility(o: { seeds: number; rounds?: number; verbose: boolean; resultsDir: string }): Promise<TcgaRow[]> {
  const dpPath = process.env.COHORT_BENCH_TCGA_SCENARIO ?? 'scenarios/tcga-brca-dp.json';
  const wanted = (process.env.COHORT_BENCH_TCGA_RUNS ?? '1,3,8,inf,cox').split(',');
  const runs = ([...EPSILONS.map((e) => [dpPath, e] as [string, number]), ['scenarios/tcga-brca.json', Infinity]] as [string, number][])
    .filter(([path, e], i) => wanted.includes(i === EPSILONS.length ? 'cox' : Number.isFinite(e) ? String(e) : 'inf'));
  const rows: TcgaRow[] = [];
  for (const [path, eps] of runs) {
    const m = loadManifest(path);
    const rounds = o.rounds ?? m.rounds.max;
    const c: number[] = [], spent: number[] = [], sig: number[] = [];
    let peers = 0;
    for (let s = 1; s <= o.seeds; s++) {
      const r = await runScenarioSim(m, { seed: s, baselines: false, dpEpsilon: eps, rounds, evalEvery: rounds });
      c.push(r.final.mean);
      peers = r.peers;
      if (r.privacy?.dp) { spent.push(r.privacy.dp.epsilon_spent); sig.push(r.privacy.dp.noise_multiplier.min, r.privacy.dp.noise_multiplier.max); }
      if (o.verbose) process.stderr.write(`utility tcga ${path} eps ${eps} seed ${s}: ${r.final.mean.toFixed(4)}\n`);
    }
    const iv = tInterval(c);
    rows.push({
      part: 'utility', task: 'tcga', scenario: path.replace(/^.*\//, ''), loss: m.loss?.type ?? 'cox', peers, epsilon: Number.isFinite(eps) ? eps : 'inf',
      seeds: o.seeds, c_index_mean: iv.mean, c_index_lo: iv.lo, c_index_hi: iv.hi, per_seed: c.map((a) => Math.round(a * 1e4) / 1e4),
      epsilon_spent_max: spent.length ? Math.max(...spent) : null, noise_multiplier_min: sig.length ? Math.min(...sig) : null,
      noise_multiplier_max: sig.length ? Math.max(...sig) : null, secure: m.privacy?.secure ?? false, rounds,
    });
  }
  await releaseSessions();
  writeTcgaPlot(o.resultsDir, rows);
  return rows;
}

/** C-index vs epsilon, one bar per row in the order hazard eps 1, 3, 8, no DP, then Cox (bench/results/privacy-tcga.svg). */
export function writeTcgaPlot(resultsDir: string, all: readonly TcgaRow[]): void {
  const order = (r: TcgaRow) => (r.loss === 'cox' ? 1e9 : r.epsilon === 'inf' ? 1e8 : r.epsilon);
  const rows = [...all].sort((a, b) => order(a) - order(b));
  const seeds = [...new Set(rows.map((r) => r.seeds))].join('/');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, 'privacy-tcga.svg'), intervalPlot({
    title: 'Fed-TCGA-BRCA (6 regions, D-PSGD): C-index vs epsilon (delta 1e-5; 95% t over seeds)', yLabel: 'C-index (mean over peers)',
    categories: rows.map((r) => (r.loss === 'cox' ? 'Cox, no DP' : r.epsilon === 'inf' ? 'hazard, no DP' : `hazard, eps ${r.epsilon}`)),
    groups: [{ name: `${seeds} seeds`, values: rows.map((r) => (Number.isFinite(r.c_index_lo) ? { mean: r.c_index_mean, lo: r.c_index_lo, hi: r.c_index_hi } : null)) }],
  }));
}

/** Replace the file's TCGA rows of the same scenario and epsilon by `rows`, keep every other row, set the tcga note; the file
 *  is read here, right before writing. */
export function mergeTcga(file: string, rows: readonly TcgaRow[]): void {
  const old = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) as { rows?: Record<string, unknown>[]; measured_at?: string } & Record<string, unknown> : { suite: 'privacy' };
  const now = new Date().toISOString();
  const same = (r: Record<string, unknown>) => rows.some((n) => n.scenario === r.scenario && n.epsilon === r.epsilon);
  const kept = (old.rows ?? []).filter((r) => r.task !== 'tcga' || !same(r)).map((r) => ({ ...r, measured_at: r.measured_at ?? old.measured_at }));
  const out = { ...old, rows: [...kept, ...rows.map((r) => ({ ...r, measured_at: now, host: { cpus: cpus().length, load1: Math.round(loadavg()[0]! * 10) / 10 } }))], tcga: TCGA_NOTE };
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
}

async function main(): Promise<void> {
  const seeds = Number(process.env.COHORT_BENCH_SEEDS ?? 5);
  const rounds = process.env.COHORT_BENCH_ROUNDS ? Number(process.env.COHORT_BENCH_ROUNDS) : undefined;
  const rows = await tcgaUtility({ seeds, rounds, verbose: true, resultsDir: RESULTS_DIR });
  for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
  const file = join(RESULTS_DIR, 'privacy.json');
  mergeTcga(file, rows);
  const merged = JSON.parse(readFileSync(file, 'utf8')) as { rows: Record<string, unknown>[] };
  writeTcgaPlot(RESULTS_DIR, merged.rows.filter((r) => r.task === 'tcga') as TcgaRow[]);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
