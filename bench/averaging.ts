/**
 * `cohort bench averaging`: can the averaging rules be told apart, and do they meet the design target?
 *
 * Three tasks, every rule (D-PSGD, push-sum, Epidemic Learning, gossip learning, CHOCO-SGD) and the BASELINES (centralised,
 * local-only, FedAvg with a server) on the same data, partition and round budget, over several seeds, with 95% t intervals:
 *   wdbc   WDBC, 8 peers, Dirichlet(0.5) label skew, MLP 30-16-2; 40% held out (228 patients: one patient = 0.44 point), a new
 *          stratified split per seed (repeated hold-out), accuracy
 *   tcga   Fed-TCGA-BRCA, 6 regions (natural split, FLamby's fixed 866/222 split), linear Cox model, C-index
 *   petct  SYNTHETIC 2D PET/CT phantoms, one site per scanner profile (site shift), U-Net, Dice; new phantoms per seed
 * For every rule and for FedAvg, two quantities, both on the pooled test set:
 *   mean model        the average of the peers' final parameters (FedAvg: the server's global model)
 *   own models        each peer's own final model evaluated, averaged over peers (FedAvg: each client's last local model,
 *                     trained from the last-but-one global model, before the server's final average)
 * Seeds are paired (one seed = one split and one initialisation shared by every rule and baseline), so each rule is also compared
 * with FedAvg's mean model and with the best rule by the t interval of the per-seed differences.
 * Rounds to the target: the first round whose own-models mean (rules) / global model (FedAvg) reaches centralised − 1 point
 * (Dice: − 0.02) of the same seed; the design target is within 1 point in no more than 1.2x FedAvg's rounds.
 * Extras on WDBC: int8 / fp16 / top-k compression, and 100 peers of the MLP (wall time, memory).
 *
 * Knobs (environment), for smoke runs: COHORT_BENCH_TASKS=wdbc,tcga,petct  COHORT_BENCH_SEEDS=N (seeds 1..N for every task)
 * COHORT_BENCH_ROUNDS=R (every task)  COHORT_BENCH_CASES=C (PET/CT cases per site, train and test each)  COHORT_BENCH_EXTRAS=0
 * (no compression or 100-peer rows). --quick: 2 seeds, 6 rounds, 4 PET/CT cases, 3 rounds of 100 peers (COHORT_BENCH_ROUNDS sets
 * those too).
 * Writes bench/results/averaging.json (by the CLI) and SVGs averaging-TASK-*.svg, averaging-compression-*.svg.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import { join, relative } from 'node:path';
import { median, type BenchSuite } from './suite.ts';
import { loadManifest } from '../src/scenario/manifest.ts';
import { runScenarioSim, type CurvePoint, type RealRunner, type SimOverrides, type SimReport, type SimScenario } from '../src/sim/run.ts';
import { writeCurvePlots } from '../src/sim/plots.ts';
import { loadSimData } from '../src/sim/datasets.ts';
import { stratifiedSplit } from '../src/sim/partition.ts';
import { weightedMean } from '../src/averaging/mixing.ts';
import type { AlgorithmName, AveragingNode } from '../src/averaging/node.ts';
import type { CodecName } from '../src/averaging/compression.ts';
import { intervalPlot, linePlot, type Series } from '../src/util/plot.ts';
import { pairedInterval, tInterval, wilsonInterval, type Interval } from '../src/util/stats.ts';

export const RULES: AlgorithmName[] = ['dpsgd', 'pushsum', 'epidemic', 'gossip', 'choco'];
const VARIANTS: { algorithm: AlgorithmName; codec: CodecName }[] = [
  { algorithm: 'dpsgd', codec: 'int8' }, { algorithm: 'epidemic', codec: 'int8' }, { algorithm: 'dpsgd', codec: 'fp16' },
  { algorithm: 'choco', codec: 'topk' }, { algorithm: 'choco', codec: 'int8' },
];

export type TaskKey = 'wdbc' | 'tcga' | 'petct';
export const TASKS: TaskKey[] = ['wdbc', 'tcga', 'petct'];

interface TaskSetup {
  readonly key: TaskKey;
  readonly title: string;
  /** The scenario of one seed (PET/CT generates new phantoms per seed). */
  scenario(seed: number): SimScenario;
  readonly overrides: SimOverrides;
  readonly rounds: number;
  readonly seeds: number[];
  /** What "1 point" is in this metric (accuracy, C-index: 0.01; Dice: 0.02 as in DESIGN.md). */
  readonly point: number;
  readonly config: Record<string, unknown>;
  /** Test-set size of one seed where the report has no per-site sizes (random hold-out). */
  testSize?(seed: number): number;
}

export interface BenchKnobs {
  readonly tasks: TaskKey[];
  readonly seeds?: number;
  readonly rounds?: number;
  readonly cases?: number;
  readonly extras: boolean;
}

/** The knobs from the environment (see the header); --quick sets small defaults that the environment still overrides. */
export function knobsFromEnv(env: NodeJS.ProcessEnv, quick: boolean): BenchKnobs {
  const int = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${v}"`);
    return n;
  };
  const tasks = (env['COHORT_BENCH_TASKS'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const t of tasks) if (!(TASKS as string[]).includes(t)) throw new Error(`COHORT_BENCH_TASKS: unknown task "${t}" (tasks: ${TASKS.join(', ')})`);
  return {
    tasks: tasks.length ? (tasks as TaskKey[]) : TASKS,
    seeds: int('COHORT_BENCH_SEEDS') ?? (quick ? 2 : undefined),
    rounds: int('COHORT_BENCH_ROUNDS') ?? (quick ? 6 : undefined),
    cases: int('COHORT_BENCH_CASES') ?? (quick ? 4 : undefined),
    extras: env['COHORT_BENCH_EXTRAS'] !== '0',
  };
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

function taskSetup(key: TaskKey, k: BenchKnobs): TaskSetup {
  if (key === 'wdbc') {
    const m = loadManifest('scenarios/wdbc-radiomics.json');
    const sc: SimScenario = { ...m, data: { ...m.data, holdout: 0.4 } };
    return {
      key, title: 'WDBC (8 peers, Dirichlet 0.5), accuracy', scenario: () => sc, point: 0.01,
      testSize: (seed) => stratifiedSplit(loadSimData(sc.data.selector, sc.data.preprocessing, seed).set, 'label', sc.data.holdout, seed).test.size,
      overrides: { peers: 8, partition: { kind: 'dirichlet', alpha: 0.5 }, evalEvery: 1 },
      rounds: k.rounds ?? 40, seeds: range(k.seeds ?? 10),
      config: { scenario: 'scenarios/wdbc-radiomics.json', peers: 8, partition: 'dirichlet 0.5', holdout: 0.4, split: 'stratified, new per seed',
        topology: m.averaging.topology, model: 'MLP 30-16-2', optimizer: m.optimizer, batch: m.training.batchSize, local_epochs: m.training.localEpochs },
    };
  }
  if (key === 'tcga') {
    const m = loadManifest('scenarios/tcga-brca.json');
    return {
      key, title: 'Fed-TCGA-BRCA (6 regions, natural split), C-index', scenario: () => m, point: 0.01,
      overrides: { evalEvery: 1 }, rounds: k.rounds ?? 50, seeds: range(k.seeds ?? 10),
      config: { scenario: 'scenarios/tcga-brca.json', peers: 6, split: "FLamby's fixed train/test (866 / 222), same for every seed",
        topology: m.averaging.topology, model: 'linear Cox', optimizer: m.optimizer, batch: m.training.batchSize, local_epochs: m.training.localEpochs },
    };
  }
  const m = loadManifest('scenarios/petct-segmentation.json');
  const cases = k.cases ?? 16;
  const scenario = (seed: number): SimScenario => ({
    ...m,
    data: {
      ...m.data, selector: { source: 'synthetic:petct' }, split: { by: 'site' },
      preprocessing: { ...m.data.preprocessing, synthetic: { sites: 4, train: cases, test: cases, seed } },
    },
  });
  return {
    key, title: 'SYNTHETIC PET/CT segmentation (4 scanner sites), Dice', scenario, point: 0.02,
    overrides: { evalEvery: 1 }, rounds: k.rounds ?? 40, seeds: range(k.seeds ?? 5),
    config: { scenario: 'scenarios/petct-segmentation.json', data: 'synthetic:petct (src/sim/datasets.ts), new phantoms per seed', sites: 4,
      cases_per_site: { train: cases, test: cases }, preprocessing: m.data.preprocessing, topology: m.averaging.topology,
      model: m.model, optimizer: m.optimizer, batch: m.training.batchSize, local_epochs: m.training.localEpochs },
  };
}

/**
 * FedAvg with a server, run on the simulator's own peers and data (the RealRunner hook): returns each client's last local model
 * (trained from the last-but-one global model), so the report's `final` is FedAvg's "own models". The server's global model is the
 * sample-weighted mean of these, exactly what the fedavg baseline of the same run reports (same learners, same seed).
 */
export function fedAvgOwnModels(proximal: boolean): RealRunner {
  return async ({ learners, node }) => {
    let global = learners[0]!.getParameters();
    const weights = learners.map((l) => l.sampleCount);
    let locals: Float32Array[] = [];
    for (let r = 0; r < node.rounds; r++) {
      locals = [];
      for (const l of learners) {
        l.setParameters(global);
        if (proximal) l.setProximalAnchor?.(global);
        await l.train();
        locals.push(l.getParameters());
      }
      global = Float32Array.from(weightedMean(locals, weights));
    }
    // a server baseline has no averaging nodes: only the counters the report reads (an upload of one f32 model per round)
    const stats = { rejected: {}, bytesSent: 4 * global.length * node.rounds };
    return { nodes: learners.map(() => ({ stats })) as unknown as AveragingNode[], estimates: locals, sendFailures: 0 };
  };
}

function roundsTo(curve: readonly CurvePoint[], target: number): number | null {
  return curve.find((p) => p.metric >= target)?.round ?? null;
}

/** Median treating "never reached" as infinitely many rounds; null when at least half never reached it. */
function medianRounds(values: readonly (number | null)[]): number | null {
  const m = median(values.map((v) => v ?? Infinity));
  return Number.isFinite(m) ? m : null;
}

const r4 = (v: number): number => Math.round(v * 1e4) / 1e4;
/** An interval as JSON (null where undefined, e.g. the width of one seed). */
interface IntervalJson { readonly mean: number | null; readonly half: number | null; readonly lo: number | null; readonly hi: number | null; readonly n: number }
function iv(i: Interval): IntervalJson {
  const f = (v: number) => (Number.isFinite(v) ? r4(v) : null);
  return { mean: f(i.mean), half: f(i.half), lo: f(i.lo), hi: f(i.hi), n: i.n };
}

/** Mean and 95% band over seeds, per round, of several curves (one per seed). */
function bandOf(curves: readonly (readonly CurvePoint[])[]): { points: [number, number][]; band: [number, number, number][] } {
  const byRound = new Map<number, number[]>();
  for (const c of curves) for (const p of c) byRound.set(p.round, [...(byRound.get(p.round) ?? []), p.metric]);
  const rounds = [...byRound.keys()].sort((a, b) => a - b);
  const ivs = rounds.map((r) => [r, tInterval(byRound.get(r)!)] as const);
  return { points: ivs.map(([r, i]) => [r, i.mean]), band: ivs.filter(([, i]) => Number.isFinite(i.half)).map(([r, i]) => [r, i.lo, i.hi]) };
}

interface RuleRuns { readonly name: string; readonly reports: SimReport[] }

async function runTask(t: TaskSetup, say: (s: string) => void, resultsDir: string): Promise<{ summary: Record<string, unknown>; rows: Record<string, unknown>[]; plots: string[] }> {
  const fed: SimReport[] = [];
  const rules: RuleRuns[] = RULES.map((name) => ({ name, reports: [] }));
  for (const seed of t.seeds) {
    const sc = t.scenario(seed);
    const base: SimOverrides = { ...t.overrides, seed, rounds: t.rounds };
    const f = await runScenarioSim(sc, { ...base, runner: fedAvgOwnModels(sc.training.proximalMu > 0), baselines: true });
    fed.push(f);
    say(`${t.key} seed ${seed}: centralised ${f.baselines.centralised?.toFixed(4)} fedavg ${f.baselines.fedavg?.toFixed(4)} (own ${f.final.mean.toFixed(4)}) local ${f.baselines.local_only?.toFixed(4)} (${f.details.wall_ms} ms)`);
    for (const rr of rules) {
      const r = await runScenarioSim(sc, { ...base, algorithm: rr.name as AlgorithmName, baselines: false });
      rr.reports.push(r);
      say(`${t.key} seed ${seed} ${rr.name}: own ${r.final.mean.toFixed(4)} mean model ${r.details.mean_model_metric.toFixed(4)} (${r.details.wall_ms} ms)`);
    }
  }
  const metric = fed[0]!.final.metric;
  const centralised = fed.map((f) => f.baselines.centralised ?? Number.NaN);
  const targets = centralised.map((c) => c - t.point);
  const fedMean = fed.map((f) => f.baselines.fedavg ?? Number.NaN);
  const fedOwn = fed.map((f) => f.final.mean);
  const fedRounds = fed.map((f, i) => roundsTo(f.details.curves['fedavg'] ?? [], targets[i]!));
  const testSize = fed[0]!.per_site ? fed[0]!.per_site.reduce((a, s) => a + s.test, 0) : null;

  const ownOf = (rr: RuleRuns) => rr.reports.map((r) => r.final.mean);
  const meanOf = (rr: RuleRuns) => rr.reports.map((r) => r.details.mean_model_metric);
  // the best rule by the mean over seeds of its own models; every rule compared with it seed by seed
  const best = [...rules].sort((a, b) => tInterval(ownOf(b)).mean - tInterval(ownOf(a)).mean)[0]!;
  const ruleRows = rules.map((rr) => {
    const own = ownOf(rr);
    const mean = meanOf(rr);
    const reach = rr.reports.map((r, i) => roundsTo(r.details.curves[rr.name] ?? [], targets[i]!));
    const ratios = reach.map((x, i) => (x !== null && fedRounds[i] ? x / fedRounds[i]! : null));
    const gap = pairedInterval(centralised, own);
    const ratio = medianRounds(ratios);
    const vsBest = pairedInterval(own, ownOf(best));
    return {
      run: rr.name,
      mean_model: iv(tInterval(mean)),
      own_models: iv(tInterval(own)),
      own_models_min_peer: iv(tInterval(rr.reports.map((r) => r.final.min))),
      own_minus_fedavg_mean_model: iv(pairedInterval(own, fedMean)),
      mean_model_minus_fedavg_mean_model: iv(pairedInterval(mean, fedMean)),
      own_minus_best_rule_own: rr === best ? null : iv(vsBest),
      separable_from_best: rr === best ? null : vsBest.hi < 0,
      centralised_minus_own: iv(gap),
      rounds_to_target: { per_seed: reach, median: medianRounds(reach), reached: reach.filter((x) => x !== null).length, of: reach.length },
      rounds_vs_fedavg: ratio,
      within_one_point: gap.mean <= t.point,
      meets_design_target: gap.mean <= t.point && ratio !== null && ratio <= 1.2,
      bytes_per_peer: median(rr.reports.map((r) => r.bytes_sent_per_peer)),
      consensus_distance: median(rr.reports.map((r) => r.consensus_distance)),
      per_seed: { own_models: own.map(r4), mean_model: mean.map(r4) },
    };
  });
  const fedGap = pairedInterval(centralised, fedMean);
  const fedavg = {
    run: 'fedavg',
    mean_model: iv(tInterval(fedMean)),
    own_models: iv(tInterval(fedOwn)),
    own_models_min_peer: iv(tInterval(fed.map((f) => f.final.min))),
    centralised_minus_mean_model: iv(fedGap),
    rounds_to_target: { per_seed: fedRounds, median: medianRounds(fedRounds), reached: fedRounds.filter((x) => x !== null).length, of: fedRounds.length },
    within_one_point: fedGap.mean <= t.point,
    bytes_per_peer: median(fed.map((f) => f.bytes_sent_per_peer)),
    per_seed: { own_models: fedOwn.map(r4), mean_model: fedMean.map(r4) },
  };
  const baselines = {
    centralised: { ...iv(tInterval(centralised)), per_seed: centralised.map(r4) },
    local_only: { ...iv(tInterval(fed.map((f) => f.baselines.local_only ?? Number.NaN))), per_seed: fed.map((f) => r4(f.baselines.local_only ?? Number.NaN)) },
  };
  // one seed's accuracy on its own test set, as a proportion: how wide a single run's interval is (WDBC)
  const singleSeed = metric === 'accuracy' && testSize === null && t.testSize
    ? (() => {
      const n = t.testSize(t.seeds[0]!);
      const w = wilsonInterval(Math.round(fedMean[0]! * n), n);
      return { test_patients: n, one_patient_pts: r4(100 / n), fedavg_mean_model_first_seed_wilson95: { p: r4(w.p), lo: r4(w.lo), hi: r4(w.hi) } };
    })()
    : null;
  // per site (natural splits): mean over seeds of each site's own test metric, for each rule's model at that site and FedAvg's
  const perSite = fed[0]!.per_site?.map((s, k) => ({
    site: s.site, train: s.train, test: s.test,
    ...Object.fromEntries(rules.map((rr) => [rr.name, r4(tInterval(rr.reports.map((r) => r.per_site?.[k]?.metric ?? Number.NaN)).mean)])),
    fedavg_mean_model: r4(tInterval(fed.map((f) => f.per_site?.[k]?.fedavg ?? Number.NaN)).mean),
    fedavg_own_model: r4(tInterval(fed.map((f) => f.per_site?.[k]?.metric ?? Number.NaN)).mean),
    local_only: r4(tInterval(fed.map((f) => f.per_site?.[k]?.local_only ?? Number.NaN)).mean),
    centralised: r4(tInterval(fed.map((f) => f.per_site?.[k]?.centralised ?? Number.NaN)).mean),
  }));

  // plots: metric vs round (mean over seeds with its 95% band) and the final figures side by side
  mkdirSync(resultsDir, { recursive: true });
  const series: Series[] = [
    ...rules.map((rr) => ({ name: `${rr.name} (own)`, ...bandOf(rr.reports.map((r) => r.details.curves[rr.name] ?? [])) })),
    { name: 'FedAvg (global)', ...bandOf(fed.map((f) => f.details.curves['fedavg'] ?? [])) },
    { name: 'centralised', dashed: true, points: bandOf(fed.map((f) => f.details.curves['centralised'] ?? [])).points },
    { name: 'local-only', dashed: true, points: bandOf(fed.map((f) => f.details.curves['local_only'] ?? [])).points },
  ];
  const curvePath = join(resultsDir, `averaging-${t.key}-${metric}-vs-round.svg`);
  writeFileSync(curvePath, linePlot({ title: `${t.title}: mean over ${t.seeds.length} seeds, 95% band`, xLabel: 'round', yLabel: metric, series, width: 760, height: 440 }));
  const finalPath = join(resultsDir, `averaging-${t.key}-final.svg`);
  const cm = tInterval(centralised).mean;
  writeFileSync(finalPath, intervalPlot({
    title: `${t.title}: after ${t.rounds} rounds, mean ± 95% (t, ${t.seeds.length} seeds)`, yLabel: metric,
    categories: [...RULES, 'FedAvg'],
    groups: [
      { name: 'mean model', values: [...ruleRows.map((r) => r.mean_model), fedavg.mean_model].map(toValue) },
      { name: 'own models (mean)', values: [...ruleRows.map((r) => r.own_models), fedavg.own_models].map(toValue) },
    ],
    lines: [{ name: 'centralised', y: cm }, { name: `centralised − ${t.point}`, y: cm - t.point }, { name: 'local-only', y: tInterval(fed.map((f) => f.baselines.local_only ?? Number.NaN)).mean }],
  }));

  const winner = {
    best_rule_by_own_models: best.name,
    tied_with_best: ruleRows.filter((r) => r.separable_from_best === false).map((r) => r.run),
    best_rule_by_mean_model: [...ruleRows].sort((a, b) => (b.mean_model.mean ?? -Infinity) - (a.mean_model.mean ?? -Infinity))[0]!.run,
  };
  const summary = {
    task: t.key, title: t.title, metric, point: t.point, rounds: t.rounds, seeds: t.seeds, config: t.config,
    test_samples: testSize ?? singleSeed?.test_patients ?? null, single_seed: singleSeed,
    baselines, fedavg, rules: ruleRows, winner, ...(perSite ? { per_site: perSite } : {}),
  };
  const fmt = (i: IntervalJson) => (i.mean === null ? null : i.half === null ? `${i.mean}` : `${i.mean} ± ${i.half}`);
  const rows: Record<string, unknown>[] = [
    { task: t.key, run: 'centralised', mean_model: fmt(baselines.centralised), own_models: null, rounds_to_target: null, x_fedavg: null },
    { task: t.key, run: 'local-only', mean_model: null, own_models: fmt(baselines.local_only), rounds_to_target: null, x_fedavg: null },
    { task: t.key, run: 'fedavg', mean_model: fmt(fedavg.mean_model), own_models: fmt(fedavg.own_models), rounds_to_target: fedavg.rounds_to_target.median, x_fedavg: fedavg.rounds_to_target.median === null ? null : 1 },
    ...ruleRows.map((r) => ({ task: t.key, run: r.run, mean_model: fmt(r.mean_model), own_models: fmt(r.own_models), rounds_to_target: r.rounds_to_target.median, x_fedavg: r.rounds_vs_fedavg })),
  ];
  return { summary, rows, plots: [curvePath, finalPath] };
}

function toValue(i: IntervalJson): { mean: number; lo: number; hi: number } | null {
  return i.mean === null ? null : { mean: i.mean, lo: i.lo ?? Number.NaN, hi: i.hi ?? Number.NaN };
}

/** WDBC extras: compressed variants (same seeds as the wdbc task) and 100 peers of the MLP on this machine. */
async function extras(k: BenchKnobs, quick: boolean, say: (s: string) => void, resultsDir: string): Promise<{ compression: Record<string, unknown>[]; scale: Record<string, unknown>[]; plots: string[] }> {
  const t = taskSetup('wdbc', k);
  const sc = t.scenario(1);
  const compression: Record<string, unknown>[] = [];
  const curves: Record<string, CurvePoint[]> = {};
  const plain = (['dpsgd', 'epidemic', 'choco'] as AlgorithmName[]).map((algorithm) => ({ algorithm, codec: 'f32' as CodecName }));
  for (const v of [...plain, ...VARIANTS]) {
    const rs: SimReport[] = [];
    for (const seed of t.seeds) rs.push(await runScenarioSim(sc, { ...t.overrides, seed, rounds: t.rounds, algorithm: v.algorithm, codec: v.codec, baselines: false }));
    curves[`${v.algorithm}+${v.codec}`] = rs[0]!.details.curves[v.algorithm] ?? [];
    compression.push({
      run: `${v.algorithm}+${v.codec}`, own_models: iv(tInterval(rs.map((r) => r.final.mean))), mean_model: iv(tInterval(rs.map((r) => r.details.mean_model_metric))),
      bytes_per_peer: median(rs.map((r) => r.bytes_sent_per_peer)),
    });
    say(`wdbc ${v.algorithm}+${v.codec}: own ${tInterval(rs.map((r) => r.final.mean)).mean.toFixed(4)}`);
  }
  for (const row of compression) {
    const plain = compression.find((r) => r['run'] === `${String(row['run']).split('+')[0]}+f32`);
    row['bytes_vs_f32'] = plain ? r4(Number(row['bytes_per_peer']) / Number(plain['bytes_per_peer'])) : null;
  }
  const scale: Record<string, unknown>[] = [];
  for (const algorithm of ['dpsgd', 'epidemic'] as AlgorithmName[]) {
    const before = process.memoryUsage().rss;
    const t0 = performance.now();
    // 100 sites share WDBC's ~340 training rows (3-4 each): under the default small-count rule no site could share its input
    // statistics (NO_STATISTICS), so this scale run (wall time, memory) lets every site contribute to the consortium standardiser
    const tiny: SimScenario = { ...sc, data: { ...sc.data, preprocessing: { ...sc.data.preprocessing, minCount: 1 } } };
    const r = await runScenarioSim(tiny, { peers: 100, rounds: k.rounds ?? (quick ? 3 : 20), seed: 1, algorithm, baselines: false, partition: { kind: 'dirichlet', alpha: 0.5 } });
    const wall = performance.now() - t0;
    scale.push({
      run: `100 peers ${algorithm}`, peers: 100, rounds: r.rounds, own_models: r4(r.final.mean), own_models_min_peer: r4(r.final.min), wall_s: r4(wall / 1000),
      rss_mib: Math.round(process.memoryUsage().rss / 2 ** 20), rss_growth_mib: Math.round((process.memoryUsage().rss - before) / 2 ** 20), bytes_per_peer: r.bytes_sent_per_peer,
    });
    say(`100 peers ${algorithm}: ${(wall / 1000).toFixed(1)} s`);
  }
  return { compression, scale, plots: writeCurvePlots(curves, 'accuracy', resultsDir, 'averaging-compression') };
}

const suite: BenchSuite = {
  name: 'averaging',
  description: 'every averaging rule vs centralised / local-only / FedAvg on WDBC, Fed-TCGA-BRCA and synthetic PET/CT, 95% intervals over seeds',
  async run(opts) {
    const knobs = knobsFromEnv(process.env, opts.quick);
    const say = (s: string) => { if (opts.verbose) process.stderr.write(s + '\n'); };
    const loadBefore = loadavg();
    const t0 = performance.now();
    const tasks: Record<string, unknown>[] = [];
    const rows: Record<string, unknown>[] = [];
    const plots: string[] = [];
    for (const key of knobs.tasks) {
      const r = await runTask(taskSetup(key, knobs), say, opts.resultsDir);
      tasks.push(r.summary);
      rows.push(...r.rows);
      plots.push(...r.plots);
    }
    const ex = knobs.extras ? await extras(knobs, opts.quick, say, opts.resultsDir) : null;
    if (ex) plots.push(...ex.plots);
    return {
      suite: 'averaging',
      rows,
      tasks,
      ...(ex ? { compression: ex.compression, scale: ex.scale } : {}),
      setup: {
        rules: RULES, knobs, learner: 'engine (ONNX Trainer, cpu, 1 thread)', interval: '95% t interval over seeds (paired by seed for differences)',
        mean_model: "the average of the peers' final parameters (uniform), on the pooled test set; FedAvg: the server's global model",
        own_models: "each peer's own final model on the pooled test set, averaged over peers; FedAvg: each client's last local model before the final average",
        target: 'own models within 1 point (Dice 0.02) of centralised, in <= 1.2x FedAvg rounds (per seed, median)',
        machine: { cpus: cpus().length, loadavg_start: loadBefore.map(r4), loadavg_end: loadavg().map(r4), wall_s: Math.round((performance.now() - t0) / 1000) },
      },
      plots: plots.map((p) => relative(process.cwd(), p)),
      quick: opts.quick,
    };
  },
};

export default suite;
