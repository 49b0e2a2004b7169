/**
 * `cohort bench robustness`: does robust aggregation keep a Byzantine minority from wrecking the honest peers' models, and what does
 * it cost without an attacker? (issue 11; docs/robustness.md)
 *
 * Rows {task, peers, algorithm, attack, aggregator, topology, byzantine_fraction, honest_mean, honest_min, attack_free_mean, seeds,
 * delta, byzantine_named, honest_named}: honest_mean / honest_min are the mean over seeds of the honest peers' mean and worst
 * accuracy (C-index for TCGA) on the pooled test set; attack_free_mean the same aggregator, topology and peers with no attacker;
 * delta = honest_mean - attack_free_mean; byzantine_named / honest_named the mean over seeds of the peers named by a majority of
 * the honest peers that scored them (robust aggregators only).
 *
 * Configuration (sized for ~20 minutes on a loaded 2-core machine; the simulator's softmax learner for WDBC, the engine's linear
 * Cox model for TCGA):
 *   wdbc16   WDBC, 16 peers, Dirichlet(0.5), D-PSGD, 30 rounds, 5 seeds.
 *            no attacker: 4 aggregators x 5 topologies (ring, random 4-regular, expander, complete, dumbbell)
 *            10% and 20% Byzantine on the expander: every attack x 4 aggregators (10%), x {mean, clipped} (20%)
 *            10% on ring, 4-regular, complete, dumbbell: sign-flip, gaussian, alie, dissensus x {mean, clipped}, 3 seeds
 *   wdbc100  WDBC, 100 peers, expander, D-PSGD, 20 rounds, 2 seeds: 0 / 10% / 20% x {mean, clipped} x 5 attacks
 *   tcga     Fed-TCGA-BRCA natural split (6 regions: 10% and 20% are both one Byzantine region), complete graph, 50 rounds,
 *            3 seeds: no attacker and 5 attacks x {mean, clipped}. A seed whose honest training diverged (NaN loss, refused by the
 *            engine) is counted in `diverged` and left out of the means.
 * Knobs: COHORT_BENCH_TASKS=wdbc16,wdbc100,tcga  COHORT_BENCH_SEEDS=N  COHORT_BENCH_ROUNDS=R  COHORT_BENCH_ONLY=none,expander10 (a subset:
 * the no-attacker rows, the 10%-on-the-expander rows); --quick: 1 seed, 5 rounds, few cases.
 * Writes bench/results/robustness.json (by the CLI) and bench/results/robustness-*.svg.
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { BenchSuite } from './suite.ts';
import { loadManifest } from '../src/scenario/manifest.ts';
import { runScenarioSim, type SimOverrides, type SimScenario } from '../src/sim/run.ts';
import type { Topology } from '../src/sim/network.ts';
import type { AggregatorName } from '../src/averaging/robust.ts';
import { ATTACKS, type AttackName } from '../src/sim/attacks/index.ts';
import { intervalPlot } from '../src/util/plot.ts';
import { tInterval } from '../src/util/stats.ts';
import { CohortError } from '../src/util/errors.ts';

const TOPOLOGIES: Record<string, Topology> = {
  ring: { kind: 'ring' }, '4-regular': { kind: 'random-regular', degree: 4 }, expander: { kind: 'expander' }, complete: { kind: 'complete' },
  dumbbell: { kind: 'dumbbell' },
};
const AGGS: AggregatorName[] = ['mean', 'clipped', 'trimmed-mean', 'median'];

interface Case {
  readonly task: 'wdbc' | 'tcga';
  readonly peers: number;
  readonly topology: string;
  readonly aggregator: AggregatorName;
  readonly attack: AttackName | 'none';
  readonly fraction: number;
  readonly seeds: number;
  readonly rounds: number;
}

type Row = {
  task: string; peers: number; algorithm: string; attack: string; aggregator: string; topology: string; byzantine_fraction: number;
  honest_mean: number; honest_min: number; attack_free_mean: number | null; seeds: number; delta: number | null;
  honest_mean_ci95: [number, number]; byzantine_named: number | null; honest_named: number | null;
  /** Seeds whose run stopped because the honest peers' training diverged (NaN loss): not in the means. */
  diverged: number; diverged_runs?: string[];
};

function cases(quick: boolean): Case[] {
  const tasks = (process.env['COHORT_BENCH_TASKS'] ?? 'wdbc16,wdbc100,tcga').split(',');
  const seedsEnv = process.env['COHORT_BENCH_SEEDS'] ? Number(process.env['COHORT_BENCH_SEEDS']) : undefined;
  const roundsEnv = process.env['COHORT_BENCH_ROUNDS'] ? Number(process.env['COHORT_BENCH_ROUNDS']) : undefined;
  const S = (n: number) => seedsEnv ?? (quick ? 1 : n);
  const R = (n: number) => roundsEnv ?? (quick ? 5 : n);
  const out: Case[] = [];
  const attacks = quick ? (['sign-flip', 'alie'] as AttackName[]) : [...ATTACKS];
  if (tasks.includes('wdbc16')) {
    const base = { task: 'wdbc' as const, peers: 16, seeds: S(5), rounds: R(30) };
    for (const topology of Object.keys(TOPOLOGIES)) for (const aggregator of AGGS) out.push({ ...base, topology, aggregator, attack: 'none', fraction: 0 });
    for (const attack of attacks) for (const aggregator of AGGS) out.push({ ...base, topology: 'expander', aggregator, attack, fraction: 0.1 });
    for (const attack of attacks) for (const aggregator of ['mean', 'clipped'] as const) out.push({ ...base, topology: 'expander', aggregator, attack, fraction: 0.2 });
    for (const topology of ['ring', '4-regular', 'complete', 'dumbbell']) for (const attack of ['sign-flip', 'gaussian', 'alie', 'dissensus'] as const) {
      for (const aggregator of ['mean', 'clipped'] as const) out.push({ ...base, seeds: S(3), topology, aggregator, attack, fraction: 0.1 });
    }
  }
  if (tasks.includes('wdbc100')) {
    const base = { task: 'wdbc' as const, peers: 100, seeds: S(2), rounds: R(20), topology: 'expander' };
    for (const aggregator of ['mean', 'clipped'] as const) {
      out.push({ ...base, aggregator, attack: 'none', fraction: 0 });
      for (const fraction of [0.1, 0.2]) for (const attack of ['sign-flip', 'scaling', 'gaussian', 'alie', 'dissensus'] as const) out.push({ ...base, aggregator, attack, fraction });
    }
  }
  if (tasks.includes('tcga')) {
    const base = { task: 'tcga' as const, peers: 6, seeds: S(3), rounds: R(50), topology: 'complete' };
    for (const aggregator of ['mean', 'clipped'] as const) {
      out.push({ ...base, aggregator, attack: 'none', fraction: 0 });
      for (const attack of ['sign-flip', 'scaling', 'gaussian', 'alie', 'label-flip'] as const) out.push({ ...base, aggregator, attack, fraction: 0.1 });
    }
  }
  // COHORT_BENCH_ONLY=none,expander10: a subset of the cases above (the no-attacker rows; the 10%-on-the-expander rows), for a
  // rerun that fits a loaded machine; the JSON's config says which subset ran
  const only = process.env['COHORT_BENCH_ONLY']?.split(',');
  if (!only) return out;
  return out.filter((c) => (only.includes('none') && c.attack === 'none') || (only.includes('expander10') && c.topology === 'expander' && c.fraction === 0.1));
}

const suite: BenchSuite = {
  name: 'robustness',
  description: 'Byzantine attacks against plain and robust aggregation (D-PSGD) on five topologies; honest peers vs attack-free',
  async run(opts) {
    const started = Date.now();
    const wdbc = loadManifest('scenarios/wdbc-radiomics.json');
    const tcga = loadManifest('scenarios/tcga-brca.json');
    const load: number[] = [loadavg()[0]!];
    const all = cases(opts.quick);
    const rows: Row[] = [];
    for (const [k, c] of all.entries()) {
      const m: SimScenario = c.task === 'wdbc' ? { ...wdbc, averaging: { ...wdbc.averaging, topology: TOPOLOGIES[c.topology]! } }
        : { ...tcga, averaging: { ...tcga.averaging, topology: TOPOLOGIES[c.topology]! } };
      const means: number[] = [];
      const mins: number[] = [];
      const named: number[] = [];
      const falseNamed: number[] = [];
      const diverged: string[] = [];
      for (let seed = 1; seed <= c.seeds; seed++) {
        const o: SimOverrides = {
          ...(c.task === 'wdbc' ? { peers: c.peers, learner: 'softmax' as const } : {}), baselines: false, rounds: c.rounds, seed, aggregator: c.aggregator,
          ...(c.attack !== 'none' ? { attack: { name: c.attack, fraction: c.fraction } } : {}),
        };
        let r;
        try {
          r = await runScenarioSim(m, o);
        } catch (e) {
          // an attack can blow the honest models up until the engine's training refuses to go on (NaN loss): counted, not averaged
          if (!(e instanceof CohortError)) throw e;
          diverged.push(`seed ${seed}: ${e.message}`);
          continue;
        }
        means.push(r.final.mean);
        mins.push(r.final.min);
        if (r.attack?.suspicion) { named.push(r.attack.suspicion.byzantine_named); falseNamed.push(r.attack.suspicion.honest_named); }
      }
      const avg = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : Number.NaN);
      const ci = means.length > 1 ? tInterval(means) : { lo: means[0] ?? Number.NaN, hi: means[0] ?? Number.NaN };
      rows.push({
        task: c.task === 'wdbc' ? 'wdbc' : 'tcga-brca', peers: c.peers, algorithm: 'dpsgd', attack: c.attack, aggregator: c.aggregator, topology: c.topology,
        byzantine_fraction: c.fraction, honest_mean: avg(means), honest_min: avg(mins), attack_free_mean: null, seeds: c.seeds, delta: null,
        honest_mean_ci95: [ci.lo, ci.hi], byzantine_named: named.length ? avg(named) : null, honest_named: falseNamed.length ? avg(falseNamed) : null,
        diverged: diverged.length, ...(diverged.length ? { diverged_runs: diverged } : {}),
      });
      load.push(loadavg()[0]!);
      if (opts.verbose || process.env["COHORT_BENCH_PROGRESS"]) process.stderr.write(`[${k + 1}/${all.length}] ${c.task} ${c.peers} ${c.topology} ${c.aggregator} ${c.attack} ${c.fraction}: ${avg(means).toFixed(4)}\n`);
    }
    // attack-free reference of each row: same task, peers, topology, aggregator with no attacker (else the same with mean)
    for (const r of rows) {
      const free = rows.find((x) => x.task === r.task && x.peers === r.peers && x.topology === r.topology && x.aggregator === r.aggregator && x.attack === 'none');
      if (free) { r.attack_free_mean = free.honest_mean; r.delta = r.honest_mean - free.honest_mean; }
    }
    const targets = checkTargets(rows);
    writePlots(rows, opts.resultsDir);
    return {
      suite: 'robustness', rows, targets,
      config: { wall_s: Math.round((Date.now() - started) / 1000), cpus: cpus().length, load1_min: Math.min(...load), load1_max: Math.max(...load), quick: opts.quick,
        tasks: process.env['COHORT_BENCH_TASKS'] ?? 'wdbc16,wdbc100,tcga', only: process.env['COHORT_BENCH_ONLY'] ?? 'all' },
    };
  },
};

/** The targets, as measured: ClippedGossip at 10% on the expander within 3 points of attack-free; robust costs <= 1 point. */
function checkTargets(rows: Row[]) {
  const underAttack = rows.filter((r) => r.aggregator === 'clipped' && r.topology === 'expander' && r.byzantine_fraction === 0.1 && r.attack !== 'none')
    .map((r) => ({ task: r.task, peers: r.peers, attack: r.attack, delta: r.delta, met: r.delta !== null && r.delta >= -0.03 }));
  const cost = rows.filter((r) => r.attack === 'none' && r.aggregator !== 'mean').map((r) => {
    const plain = rows.find((x) => x.attack === 'none' && x.aggregator === 'mean' && x.task === r.task && x.peers === r.peers && x.topology === r.topology);
    const d = plain ? r.honest_mean - plain.honest_mean : null;
    return { task: r.task, peers: r.peers, topology: r.topology, aggregator: r.aggregator, vs_mean: d, met: d !== null && d >= -0.01 };
  });
  return { clipped_expander_10pct: underAttack, no_attacker_cost: cost };
}

function writePlots(rows: Row[], dir: string): void {
  const ci = (r: Row | undefined) => (r ? { mean: r.honest_mean, lo: r.honest_mean_ci95[0], hi: r.honest_mean_ci95[1] } : null);
  for (const [task, peers] of [['wdbc', 16], ['wdbc', 100], ['tcga-brca', 6]] as const) {
    const sel = rows.filter((r) => r.task === task && r.peers === peers);
    if (!sel.length) continue;
    const free = sel.find((r) => r.attack === 'none' && r.aggregator === 'mean' && r.topology === (task === 'tcga-brca' ? 'complete' : 'expander'));
    for (const fraction of [0.1, 0.2]) {
      const at = sel.filter((r) => r.byzantine_fraction === fraction && (r.topology === 'expander' || task === 'tcga-brca'));
      if (!at.length) continue;
      const attacks = [...new Set(at.map((r) => r.attack))];
      const aggs = AGGS.filter((a) => at.some((r) => r.aggregator === a));
      const svg = intervalPlot({
        title: `${task}, ${peers} peers, ${fraction * 100}% Byzantine (${task === 'tcga-brca' ? 'complete graph' : 'expander'}): honest peers' mean, 95% t interval over seeds`,
        yLabel: task === 'tcga-brca' ? 'C-index' : 'accuracy', categories: attacks,
        groups: aggs.map((a) => ({ name: a, values: attacks.map((k) => ci(at.find((r) => r.aggregator === a && r.attack === k))) })),
        lines: free ? [{ name: 'no attacker (mean)', y: free.honest_mean }, { name: '3 points below', y: free.honest_mean - 0.03 }] : [],
        width: 960,
      });
      writeFileSync(join(dir, `robustness-${task}-${peers}-byz${Math.round(fraction * 100)}.svg`), svg);
    }
    const none = sel.filter((r) => r.attack === 'none');
    const topos = [...new Set(none.map((r) => r.topology))];
    if (topos.length > 1) {
      writeFileSync(join(dir, `robustness-${task}-${peers}-no-attacker.svg`), intervalPlot({
        title: `${task}, ${peers} peers, no attacker: the cost of robust aggregation per topology`, yLabel: 'accuracy', categories: topos,
        groups: AGGS.map((a) => ({ name: a, values: topos.map((t) => ci(none.find((r) => r.aggregator === a && r.topology === t))) })), width: 960,
      }));
    }
  }
}

export default suite;
