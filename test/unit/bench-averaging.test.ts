import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import suite, { fedAvgOwnModels, knobsFromEnv, RULES } from '../../bench/averaging.ts';
import { writeResult } from '../../bench/suite.ts';
import { fedAvgBaseline } from '../../src/averaging/baselines.ts';
import { weightedMean } from '../../src/averaging/mixing.ts';
import { QuadraticLearner } from '../../src/sim/learners.ts';

const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-avg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bench averaging knobs', () => {
  it('reads tasks, seeds, rounds, cases and extras from the environment; --quick only sets defaults', () => {
    expect(knobsFromEnv({}, false)).toEqual({ tasks: ['wdbc', 'tcga', 'petct'], seeds: undefined, rounds: undefined, cases: undefined, extras: true });
    expect(knobsFromEnv({}, true)).toMatchObject({ seeds: 2, rounds: 6, cases: 4 });
    expect(knobsFromEnv({ COHORT_BENCH_TASKS: 'tcga, wdbc', COHORT_BENCH_SEEDS: '3', COHORT_BENCH_EXTRAS: '0' }, true))
      .toEqual({ tasks: ['tcga', 'wdbc'], seeds: 3, rounds: 6, cases: 4, extras: false });
    expect(() => knobsFromEnv({ COHORT_BENCH_TASKS: 'mnist' }, false)).toThrow(/unknown task/);
    expect(() => knobsFromEnv({ COHORT_BENCH_SEEDS: '0' }, false)).toThrow(/positive integer/);
  });
});

describe('FedAvg own-models runner', () => {
  it('runs the same FedAvg as the baseline: the sample-weighted mean of the clients\' last local models is its global model', async () => {
    const make = () => [0, 1, 2].map((k) => new QuadraticLearner(Float32Array.from([0, 0]), Float32Array.from([k, 2 * k - 1]), 0.3, 2, k + 1));
    const base = await fedAvgBaseline(make(), async () => 0, { rounds: 3 });
    const learners = make();
    const r = await fedAvgOwnModels(false)({ algorithm: 'dpsgd', learners, seed: 1,
      node: { scenario: 's', layoutHash: 'h', rounds: 3, roundMs: 1, deadlineMs: 1, codec: 'f32', weighting: 'samples', train: true, proximal: false } });
    expect(r.estimates).toHaveLength(3);
    const global = Float32Array.from(weightedMean(r.estimates, [1, 2, 3]));
    expect(Array.from(global)).toEqual(Array.from(base.models[0]!));
    // the clients' own models differ from the global one (each carries its last local step)
    expect(r.estimates[0]![0]).not.toBeCloseTo(global[0]!, 3);
    expect(r.nodes[0]!.stats.bytesSent).toBe(4 * 2 * 3);
  });
});

describe('bench averaging, smallest configuration through the real code', () => {
  it('1 seed, 2 rounds, every task and rule: the JSON names both quantities for every rule and FedAvg', async () => {
    const keys = ['COHORT_BENCH_SEEDS', 'COHORT_BENCH_ROUNDS', 'COHORT_BENCH_CASES', 'COHORT_BENCH_TASKS', 'COHORT_BENCH_EXTRAS'] as const;
    const saved = keys.map((k) => process.env[k]);
    Object.assign(process.env, { COHORT_BENCH_SEEDS: '1', COHORT_BENCH_ROUNDS: '2', COHORT_BENCH_CASES: '2', COHORT_BENCH_TASKS: '', COHORT_BENCH_EXTRAS: '1' });
    let result;
    try {
      result = await suite.run({ verbose: false, quick: false, resultsDir: dir });
    } finally {
      keys.forEach((k, i) => { if (saved[i] === undefined) delete process.env[k]; else process.env[k] = saved[i]; });
    }
    const path = writeResult(result, dir);
    const json = JSON.parse(readFileSync(path, 'utf8'));
    expect(json.suite).toBe('averaging');
    expect(json.tasks.map((t: { task: string }) => t.task)).toEqual(['wdbc', 'tcga', 'petct']);
    const metrics: Record<string, string> = { wdbc: 'accuracy', tcga: 'c_index', petct: 'dice' };
    for (const t of json.tasks) {
      expect(t.metric).toBe(metrics[t.task]);
      expect(t.seeds).toEqual([1]);
      expect(t.rounds).toBe(2);
      expect(t.rules.map((r: { run: string }) => r.run)).toEqual(RULES);
      for (const r of [...t.rules, t.fedavg]) {
        for (const q of ['mean_model', 'own_models']) {
          expect(Object.keys(r[q])).toEqual(['mean', 'half', 'lo', 'hi', 'n']);
          expect(r[q].n).toBe(1);
          expect(r[q].mean).toBeGreaterThan(0);
          expect(r[q].mean).toBeLessThanOrEqual(1);
          expect(r[q].half).toBeNull(); // one seed: no interval, not a made-up one
        }
        expect(r.rounds_to_target.of).toBe(1);
        expect(r.per_seed.own_models).toHaveLength(1);
      }
      expect(t.baselines.centralised.mean).toBeGreaterThan(0);
      expect(t.baselines.local_only.mean).toBeGreaterThan(0);
      expect(RULES).toContain(t.winner.best_rule_by_own_models);
      expect(existsSync(join(dir, `averaging-${t.task}-${t.metric}-vs-round.svg`))).toBe(true);
      expect(readFileSync(join(dir, `averaging-${t.task}-final.svg`), 'utf8')).toContain('own models (mean)');
    }
    const wdbc = json.tasks[0];
    expect(wdbc.single_seed.test_patients).toBe(228);
    expect(wdbc.single_seed.one_patient_pts).toBeLessThan(0.5);
    expect(json.tasks[1].per_site.map((s: { site: string }) => s.site)).toHaveLength(6);
    expect(json.tasks[2].per_site).toHaveLength(4);
    expect(json.compression.map((r: { run: string }) => r.run)).toContain('choco+topk');
    for (const r of json.compression) expect(r.bytes_vs_f32).toBeGreaterThan(0); // every codec row has its rule's f32 row
    expect(json.compression.find((r: { run: string }) => r.run === 'choco+topk').bytes_vs_f32).toBeLessThan(1);
    for (const p of json.plots) expect(existsSync(resolve(p))).toBe(true); // relative to the working directory
    expect(json.scale).toHaveLength(2);
    expect(json.setup.machine.cpus).toBeGreaterThan(0);
    expect(json.rows.length).toBe(3 * (3 + RULES.length));
  });
});
