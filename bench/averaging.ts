/**
 * `cohort bench averaging`: decentralised averaging on WDBC, 8 simulated peers, Dirichlet(0.5) label skew, the engine's Trainer.
 * Side by side in one run, medians over seeds: each rule's final accuracy (mean over peers) against the BASELINES (centralised,
 * local-only, FedAvg with a server); rounds to reach centralised - 1 point and their ratio to FedAvg's; bytes sent per peer; the same
 * with int8 / fp16 / top-k compression; and 100 peers of the MLP on this machine (wall time, memory).
 * Targets (DESIGN.md): within 1 point of centralised in no more than 1.2x FedAvg's rounds; 100 peers fit.
 * Writes bench/results/averaging.json and SVG curves bench/results/averaging-*.svg.
 */
import { median, type BenchSuite } from './suite.ts';
import { loadManifest } from '../src/scenario/manifest.ts';
import { runScenarioSim, type CurvePoint, type SimOverrides, type SimReport } from '../src/sim/run.ts';
import { writeCurvePlots } from '../src/sim/plots.ts';
import type { AlgorithmName } from '../src/averaging/node.ts';
import type { CodecName } from '../src/averaging/compression.ts';

const SCENARIO = 'scenarios/wdbc-radiomics.json';
const RULES: AlgorithmName[] = ['dpsgd', 'pushsum', 'epidemic', 'gossip', 'choco'];
const VARIANTS: { algorithm: AlgorithmName; codec: CodecName }[] = [
  { algorithm: 'dpsgd', codec: 'int8' }, { algorithm: 'epidemic', codec: 'int8' }, { algorithm: 'dpsgd', codec: 'fp16' },
  { algorithm: 'choco', codec: 'topk' }, { algorithm: 'choco', codec: 'int8' },
];

function roundsTo(curve: readonly CurvePoint[], target: number): number | null {
  return curve.find((p) => p.metric >= target)?.round ?? null;
}

/** Median treating "never reached" as infinitely many rounds; null when most seeds never reached it. */
function medianRounds(values: readonly (number | null)[]): number | null {
  const m = median(values.map((v) => v ?? Infinity));
  return Number.isFinite(m) ? m : null;
}

const suite: BenchSuite = {
  name: 'averaging',
  description: 'WDBC over 8 peers (Dirichlet 0.5): each averaging rule vs centralised / local-only / FedAvg; compression; 100 peers',
  async run(opts) {
    const m = loadManifest(SCENARIO);
    const seeds = opts.quick ? [1] : [1, 2, 3];
    const rounds = opts.quick ? 12 : 40;
    const say = (s: string) => { if (opts.verbose) process.stderr.write(s + '\n'); };
    const base: SimOverrides = { peers: 8, partition: { kind: 'dirichlet', alpha: 0.5 }, rounds };
    const runs = new Map<string, SimReport[]>();
    const add = (key: string, r: SimReport) => runs.set(key, [...(runs.get(key) ?? []), r]);
    const baselineCurves: Record<string, CurvePoint[]>[] = [];
    for (const seed of seeds) {
      for (const [k, algorithm] of RULES.entries()) {
        const r = await runScenarioSim(m, { ...base, seed, algorithm, codec: 'f32', baselines: k === 0 });
        if (k === 0) baselineCurves.push(r.details.curves);
        add(algorithm, k === 0 ? r : { ...r, baselines: runs.get(RULES[0]!)!.at(-1)!.baselines });
        say(`seed ${seed} ${algorithm}: ${r.final.mean.toFixed(4)} (${r.details.wall_ms} ms)`);
      }
      for (const v of VARIANTS) {
        const r = await runScenarioSim(m, { ...base, seed, algorithm: v.algorithm, codec: v.codec, baselines: false });
        add(`${v.algorithm}+${v.codec}`, r);
        say(`seed ${seed} ${v.algorithm}+${v.codec}: ${r.final.mean.toFixed(4)}`);
      }
    }
    // per seed: the centralised ceiling, its target (minus one point), FedAvg's rounds to it
    const first = runs.get(RULES[0]!)!;
    const ceilings = first.map((r) => r.baselines.centralised!);
    const targets = ceilings.map((c) => c - 0.01);
    const fedavgRounds = baselineCurves.map((c, i) => roundsTo(c['fedavg'] ?? [], targets[i]!));
    const rows: Record<string, unknown>[] = [];
    for (const name of ['centralised', 'fedavg', 'local_only'] as const) {
      rows.push({
        run: `baseline: ${name}`, accuracy: median(first.map((r) => r.baselines[name] ?? Number.NaN)),
        rounds_to_target: name === 'centralised' ? null : medianRounds(baselineCurves.map((c, i) => roundsTo(c[name] ?? [], targets[i]!))),
        bytes_per_peer: name === 'fedavg' ? median(first.map((r) => (r.details.parameters * 4 + 0) * r.rounds)) : 0,
      });
    }
    for (const [key, rs] of runs) {
      const reach = rs.map((r, i) => roundsTo(r.details.curves[r.algorithm] ?? [], targets[i]!));
      const ratios = reach.map((x, i) => (x !== null && fedavgRounds[i] ? x / fedavgRounds[i]! : null));
      const bytes = median(rs.map((r) => r.bytes_sent_per_peer));
      const plain = runs.get(rs[0]!.algorithm)!;
      rows.push({
        run: key,
        accuracy: median(rs.map((r) => r.final.mean)),
        accuracy_min_peer: median(rs.map((r) => r.final.min)),
        accuracy_of_mean_model: median(rs.map((r) => r.details.mean_model_metric)),
        gap_to_centralised_pts: 100 * (median(ceilings) - median(rs.map((r) => r.final.mean))),
        rounds_to_target: medianRounds(reach),
        rounds_vs_fedavg: medianRounds(ratios),
        bytes_per_peer: bytes,
        bytes_vs_f32: key.includes('+') ? bytes / median(plain.map((r) => r.bytes_sent_per_peer)) : 1,
        consensus_distance: median(rs.map((r) => r.consensus_distance)),
        meets_target: medianRounds(ratios) !== null && medianRounds(ratios)! <= 1.2,
      });
    }
    // 100 peers of the MLP on this machine
    const scale: Record<string, unknown>[] = [];
    for (const algorithm of ['dpsgd', 'epidemic'] as AlgorithmName[]) {
      const before = process.memoryUsage().rss;
      const t0 = performance.now();
      const r = await runScenarioSim(m, { peers: 100, rounds: opts.quick ? 5 : 20, seed: 1, algorithm, baselines: false, partition: { kind: 'dirichlet', alpha: 0.5 } });
      const wall = performance.now() - t0;
      const row = {
        run: `100 peers ${algorithm}`, peers: 100, rounds: r.rounds, accuracy: r.final.mean, accuracy_min_peer: r.final.min, wall_s: wall / 1000,
        wall_ms_per_round: wall / r.rounds, rss_mib: process.memoryUsage().rss / 2 ** 20, rss_growth_mib: (process.memoryUsage().rss - before) / 2 ** 20,
        bytes_per_peer: r.bytes_sent_per_peer,
      };
      scale.push(row);
      rows.push(row);
      say(`100 peers ${algorithm}: ${(wall / 1000).toFixed(1)} s, rss ${row.rss_mib.toFixed(0)} MiB`);
    }
    // curves of the first seed
    const curves: Record<string, CurvePoint[]> = { ...baselineCurves[0] };
    for (const a of RULES) Object.assign(curves, { [a]: runs.get(a)![0]!.details.curves[a] });
    const compression: Record<string, CurvePoint[]> = {};
    for (const key of runs.keys()) if (key.includes('+') || key === 'dpsgd' || key === 'choco' || key === 'epidemic') compression[key] = runs.get(key)![0]!.details.curves[runs.get(key)![0]!.algorithm]!;
    const plots = [...writeCurvePlots(curves, 'accuracy', opts.resultsDir, 'averaging'), ...writeCurvePlots(compression, 'accuracy', opts.resultsDir, 'averaging-compression')];
    return {
      suite: 'averaging',
      rows,
      setup: { scenario: SCENARIO, peers: 8, partition: 'dirichlet 0.5', rounds, seeds, learner: 'engine (ONNX Trainer, cpu)', centralised: ceilings, targets, fedavg_rounds_to_target: fedavgRounds },
      scale,
      plots,
      quick: opts.quick,
    };
  },
};

export default suite;
