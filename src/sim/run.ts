/**
 * `cohort sim` in one function: a scenario manifest -> pooled data -> held-out test set -> partition over N peers -> one learner per
 * peer (the engine's Trainer, or the small TypeScript softmax learner) -> the averaging rule on the simulated network -> the
 * BASELINES (centralised, local-only, FedAvg) on the same data and budget -> one report (the exact JSON of `cohort sim --json`).
 *
 *   runScenarioSim(manifest, overrides, hooks) -> SimReport
 */
import { centralisedBaseline, fedAvgBaseline, localOnlyBaseline, type BaselineResult } from '../averaging/baselines.ts';
import type { AlgorithmName } from '../averaging/node.ts';
import type { CodecName } from '../averaging/compression.ts';
import type { LocalLearner } from '../averaging/types.ts';
import { concatSamples, type SampleSet } from '../data/samples.ts';
import type { LossSpec, ModelSpec, OptimizerSpec } from '../engine/spec.ts';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import { Rng } from '../util/random.ts';
import { loadSimData, standardiseSplit, type DataSelector } from './datasets.ts';
import { SoftmaxLearner } from './learners.ts';
import type { Topology } from './network.ts';
import { partitionSamples, stratifiedSplit, type PartitionSpec } from './partition.ts';
import { churnSchedule, simulate, type RoundProbe, type SimulateOptions } from './simulate.ts';
import { consensusDistance, weightedMean } from '../averaging/mixing.ts';
import type { AlgorithmSettings } from '../averaging/factory.ts';
import type { AveragingNode, NodeConfig } from '../averaging/node.ts';
import type { RejectReason } from '../averaging/types.ts';

const log = logger('sim:run');

export type LearnerKind = 'engine' | 'softmax';

/**
 * What a simulation reads of a scenario: structurally the parsed manifest of src/scenario/manifest.ts (a SimScenario is one),
 * declared here so that sim/ does not depend on the scenario layer above it.
 */
export interface SimScenario {
  readonly name: string;
  readonly task: { readonly kind: string; readonly metric: string };
  readonly data: { readonly selector: DataSelector; readonly preprocessing: Readonly<Record<string, unknown>>; readonly holdout: number };
  readonly model: ModelSpec;
  readonly loss?: LossSpec;
  readonly optimizer: OptimizerSpec;
  readonly training: { readonly batchSize: number; readonly localSteps?: number; readonly localEpochs: number; readonly proximalMu: number; readonly seed: number };
  readonly averaging: {
    readonly algorithm: AlgorithmName; readonly topology: Topology; readonly weighting: 'uniform' | 'samples';
    readonly fanout: number; readonly s: number; readonly gamma: number; readonly roundMs: number; readonly deadlineMs?: number;
  };
  readonly compression: { readonly codec: CodecName; readonly blockSize: number; readonly topkFraction: number };
  readonly rounds: {
    readonly max: number;
    readonly stopping: { readonly kind: 'max-rounds' } | { readonly kind: 'target'; readonly value: number } | { readonly kind: 'plateau'; readonly patience: number; readonly minDelta: number };
  };
  readonly evaluation: { readonly every: number; readonly compareLocalOnly: boolean };
  readonly simulation: {
    readonly peers: number; readonly partition: PartitionSpec; readonly latencyMs: number; readonly bandwidthMBps: number; readonly loss: number;
    readonly churn: number; readonly stragglers: { readonly fraction: number; readonly slowdown: number }; readonly stepMs: number;
  };
}

export interface SimOverrides {
  readonly peers?: number;
  readonly algorithm?: AlgorithmName;
  readonly alpha?: number;
  readonly partition?: PartitionSpec;
  readonly churn?: number;
  readonly seed?: number;
  readonly rounds?: number;
  readonly codec?: CodecName;
  readonly learner?: LearnerKind;
  readonly baselines?: boolean;
  readonly evalEvery?: number;
  /** Round length override (real-network runs use short wall-clock rounds). */
  readonly roundMs?: number;
  /** Run the rule somewhere else than the virtual network: the CLI passes runOnLoopback (real libp2p peers on 127.0.0.1). */
  readonly runner?: RealRunner;
}

/** A runner of one rule over real peers (src/net/averaging-transport.ts runOnLoopback has this shape). */
export type RealRunner = (o: {
  algorithm: AlgorithmName; learners: readonly LocalLearner[]; node: Omit<NodeConfig, 'seed'>; settings?: AlgorithmSettings; seed: number;
}) => Promise<{ nodes: readonly AveragingNode[]; estimates: Float32Array[]; sendFailures: number }>;

/** The outcome of one rule's run, virtual or real. */
interface RuleRun {
  readonly probes: RoundProbe[];
  readonly finalModels: Float32Array[];
  readonly finalMetrics: number[];
  readonly rejected: Record<RejectReason, number>;
  readonly bytesSentPerPeer: number;
  readonly messagesLost: number;
}

async function realRun(runner: RealRunner, so: SimulateOptions, evaluate: (x: Float32Array) => Promise<number>): Promise<RuleRun> {
  if (so.churn?.length) throw new CohortError('SIM_REAL_CHURN', 'churn is simulated on the virtual network only', 'drop --churn with --libp2p');
  const r = await runner({ algorithm: so.algorithm, learners: so.learners, node: so.node, settings: so.settings, seed: so.seed });
  const finalMetrics: number[] = [];
  for (const x of r.estimates) finalMetrics.push(await evaluate(x));
  const rejected = { ...r.nodes[0]!.stats.rejected };
  for (const k of Object.keys(rejected) as RejectReason[]) rejected[k] = r.nodes.reduce((a, n) => a + n.stats.rejected[k], 0);
  return {
    probes: [], finalModels: r.estimates, finalMetrics, rejected, messagesLost: r.sendFailures,
    bytesSentPerPeer: r.nodes.reduce((a, n) => a + n.stats.bytesSent, 0) / r.nodes.length,
  };
}

export interface SimHooks {
  readonly onRound?: (phase: string, round: number, total: number, metric: number) => void;
}

export interface CurvePoint { readonly round: number; readonly metric: number; readonly bytesPerPeer: number; readonly consensus?: number }

export interface SimReport {
  readonly algorithm: AlgorithmName;
  readonly peers: number;
  readonly rounds: number;
  readonly final: { readonly mean: number; readonly min: number; readonly max: number; readonly metric: string };
  readonly baselines: { readonly centralised: number | null; readonly local_only: number | null; readonly fedavg: number | null };
  readonly bytes_sent_per_peer: number;
  readonly consensus_distance: number;
  readonly details: {
    readonly scenario: string;
    readonly learner: LearnerKind;
    readonly codec: CodecName;
    readonly partition: PartitionSpec;
    readonly churn: number;
    readonly seed: number;
    readonly parameters: number;
    readonly samples_per_peer: number[];
    readonly online_at_end: number;
    /** The metric of the average of the peers' final models (what one more exact averaging step would give every peer). */
    readonly mean_model_metric: number;
    readonly rejected: Record<string, number>;
    readonly messages_lost: number;
    readonly wall_ms: number;
    readonly curves: Record<string, CurvePoint[]>;
  };
}

interface Task {
  readonly metric: string;
  readonly layoutHash: string;
  readonly parameters: number;
  makeLearner(data: SampleSet): Promise<LocalLearner>;
  evaluate(model: Float32Array): Promise<number>;
  dispose(): Promise<void>;
}

export async function runScenarioSim(m: SimScenario, o: SimOverrides = {}, hooks: SimHooks = {}): Promise<SimReport> {
  const started = Date.now();
  const peers = o.peers ?? m.simulation.peers;
  const algorithm = o.algorithm ?? m.averaging.algorithm;
  const seed = o.seed ?? m.training.seed;
  const rounds = o.rounds ?? m.rounds.max;
  const codec = o.codec ?? m.compression.codec;
  const churn = o.churn ?? m.simulation.churn;
  const partition: PartitionSpec = o.partition ?? (o.alpha !== undefined ? { kind: 'dirichlet', alpha: o.alpha } : m.simulation.partition);
  const evalEvery = o.evalEvery ?? m.evaluation.every;

  const data = loadSimData(m.data.selector, m.data.preprocessing, seed);
  const split = stratifiedSplit(data.set, 'label', m.data.holdout, seed);
  const { train, test } = m.data.preprocessing['standardize'] === true ? standardiseSplit(split.train, split.test) : split;
  const parts = partitionSamples(train, 'label', peers, partition, seed);
  const learnerKind = o.learner ?? 'engine';
  const task = learnerKind === 'engine' ? await engineTask(m, test, parts[0]!, seed) : softmaxTask(m, test, data.classes, seed, train);

  try {
    const learners: LocalLearner[] = [];
    for (const p of parts) learners.push(await task.makeLearner(p));
    const meanSamples = parts.reduce((a, p) => a + p.size, 0) / peers;
    const stragglers = new Rng(seed ^ 0x57a6).sample(Array.from({ length: peers }, (_, i) => i), Math.round(peers * m.simulation.stragglers.fraction));
    const slowdown = Array.from({ length: peers }, (_, i) => (stragglers.includes(i) ? m.simulation.stragglers.slowdown : 1));
    const higherBetter = m.task.metric !== 'loss';
    const stop = stoppingRule(m, higherBetter);
    const curve: CurvePoint[] = [];
    const simOpts: SimulateOptions = {
      algorithm, seed, learners,
      settings: { fanout: m.averaging.fanout, s: m.averaging.s, gamma: m.averaging.gamma },
      network: {
        topology: m.averaging.topology,
        link: { latencyMs: m.simulation.latencyMs, bandwidthBytesPerMs: m.simulation.bandwidthMBps * 1e3, loss: m.simulation.loss },
        stepMs: m.simulation.stepMs, slowdown,
      },
      node: {
        scenario: m.name, layoutHash: task.layoutHash, rounds, roundMs: o.roundMs ?? m.averaging.roundMs,
        deadlineMs: o.roundMs !== undefined ? 0.8 * o.roundMs : (m.averaging.deadlineMs ?? 0.8 * m.averaging.roundMs), codec: algorithm === 'pushsum' && codec === 'f32' ? 'f64' : codec,
        codecOptions: { blockSize: m.compression.blockSize, topkFraction: m.compression.topkFraction },
        weighting: m.averaging.weighting, train: true, proximal: m.training.proximalMu > 0, meanSamples,
      },
      churn: churnSchedule(peers, churn, rounds, seed),
      evaluate: (x) => task.evaluate(x),
      evalEvery,
      stopWhen: stop,
      onRound: (p: RoundProbe) => {
        if (!Number.isNaN(p.mean)) curve.push({ round: p.round + 1, metric: p.mean, bytesPerPeer: p.bytesPerPeer, consensus: p.consensus });
        hooks.onRound?.(algorithm, p.round + 1, rounds, p.mean);
      },
    };
    const res = o.runner ? await realRun(o.runner, simOpts, task.evaluate) : await simulate(simOpts);
    const curves: Record<string, CurvePoint[]> = { [algorithm]: curve };
    const roundsRun = res.probes.length || rounds;
    const baselines = o.baselines === false
      ? { centralised: null, local_only: null, fedavg: null }
      : await runBaselines(task, parts, { rounds: roundsRun, evalEvery, proximal: m.training.proximalMu > 0, localOnly: m.evaluation.compareLocalOnly }, curves, hooks);
    const fm = res.finalMetrics;
    const meanModelMetric = await task.evaluate(Float32Array.from(weightedMean(res.finalModels)));
    return {
      algorithm,
      peers,
      rounds: roundsRun,
      final: { mean: fm.reduce((a, b) => a + b, 0) / fm.length, min: Math.min(...fm), max: Math.max(...fm), metric: task.metric },
      baselines,
      bytes_sent_per_peer: Math.round(res.bytesSentPerPeer),
      consensus_distance: res.probes.at(-1)?.consensus ?? consensusDistance(res.finalModels),
      details: {
        scenario: m.name, learner: learnerKind, codec, partition, churn, seed, parameters: task.parameters,
        samples_per_peer: parts.map((p) => p.size), online_at_end: res.finalModels.length, mean_model_metric: meanModelMetric, rejected: res.rejected,
        messages_lost: res.messagesLost, wall_ms: Date.now() - started, curves,
      },
    };
  } finally {
    await task.dispose();
  }
}

/** The BASELINES on the same partitions and round budget; their curves go into `curves`. */
async function runBaselines(
  task: Task, parts: readonly SampleSet[], o: { rounds: number; evalEvery: number; proximal: boolean; localOnly: boolean },
  curves: Record<string, CurvePoint[]>, hooks: SimHooks,
): Promise<SimReport['baselines']> {
  const out: { centralised: number | null; local_only: number | null; fedavg: number | null } = { centralised: null, local_only: null, fedavg: null };
  const opts = (name: string) => ({ rounds: o.rounds, evalEvery: o.evalEvery, onRound: (r: number, v: number) => hooks.onRound?.(name, r + 1, o.rounds, v) });
  const record = (b: BaselineResult) => {
    out[b.name] = b.final;
    curves[b.name] = b.curve.map((v, r) => ({ round: r + 1, metric: v, bytesPerPeer: b.bytesPerPeerPerRound * (r + 1) }))
      .filter((p) => p.round % o.evalEvery === 0 || p.round === o.rounds);
  };
  const fresh = async () => { const ls: LocalLearner[] = []; for (const p of parts) ls.push(await task.makeLearner(p)); return ls; };
  record(await centralisedBaseline(await task.makeLearner(concatSamples(parts)), task.evaluate, opts('centralised')));
  record(await fedAvgBaseline(await fresh(), task.evaluate, { ...opts('fedavg'), proximal: o.proximal }));
  if (o.localOnly) record(await localOnlyBaseline(await fresh(), task.evaluate, opts('local_only')));
  return out;
}

function stoppingRule(m: SimScenario, higherBetter: boolean): ((p: RoundProbe) => boolean) | undefined {
  const s = m.rounds.stopping;
  if (s.kind === 'target') return (p) => (higherBetter ? p.mean >= s.value : p.mean <= s.value);
  if (s.kind === 'plateau') {
    let best = higherBetter ? -Infinity : Infinity;
    let since = 0;
    return (p) => {
      const better = higherBetter ? p.mean > best + s.minDelta : p.mean < best - s.minDelta;
      if (better) { best = p.mean; since = 0; } else since++;
      return since >= s.patience;
    };
  }
  return undefined;
}

async function engineTask(m: SimScenario, test: SampleSet, example: SampleSet, seed: number): Promise<Task> {
  const { TrainerLearner } = await import('./trainer-learner.ts');
  const cfg = { model: m.model, loss: m.loss, optimizer: m.optimizer, batchSize: m.training.batchSize, seed, proximalMu: m.training.proximalMu, threads: 1, providers: ['cpu' as const] };
  const work = { steps: m.training.localSteps, epochs: m.training.localEpochs };
  const evaluator = await TrainerLearner.create(cfg, example, work);
  const metric = m.task.metric;
  const created: { dispose(): Promise<void> }[] = [evaluator];
  return {
    metric,
    layoutHash: evaluator.layoutHash,
    parameters: evaluator.getParameters().length,
    async makeLearner(data) {
      const l = await TrainerLearner.create(cfg, data, work);
      created.push(l);
      return l;
    },
    async evaluate(x) {
      const r = await evaluator.evaluate(test, x);
      const v = r[metric];
      if (v === undefined) throw new CohortError('SIM_METRIC', `the engine reports no "${metric}" for this model`, `metrics: ${Object.keys(r).join(', ')}`);
      return v;
    },
    async dispose() { for (const c of created) await c.dispose(); },
  };
}

function softmaxTask(m: SimScenario, test: SampleSet, classes: number, seed: number, example: SampleSet): Task {
  if (m.task.kind !== 'classification') {
    throw new CohortError('SIM_LEARNER', 'the softmax learner only does classification', 'use --learner engine for this scenario');
  }
  const lr = 'lr' in m.optimizer && typeof m.optimizer.lr === 'number' ? m.optimizer.lr : 0.05;
  const features = Object.values(example.inputs)[0]!.shape.reduce((a, b) => a * b, 1);
  const init = SoftmaxLearner.init(features, classes, seed);
  const metric = m.task.metric === 'balancedAccuracy' ? 'balancedAccuracy' : 'accuracy';
  if (metric !== m.task.metric) log.warn({ metric: m.task.metric }, 'softmax learner reports accuracy instead');
  let made = 0;
  return {
    metric,
    layoutHash: `softmax:${features}x${classes}`,
    parameters: init.length,
    async makeLearner(data) {
      // same initial model everywhere, a different minibatch order per peer
      const peerSeed = (seed * 7919 + made++) >>> 0;
      return new SoftmaxLearner(data, { classes, lr, batchSize: m.training.batchSize, epochs: m.training.localEpochs, seed: peerSeed, proximalMu: m.training.proximalMu }, init);
    },
    async evaluate(x) { return SoftmaxLearner.evaluate(x, test, classes)[metric]; },
    async dispose() {},
  };
}
