/**
 * `cohort sim` in one function: a scenario manifest -> pooled data -> held-out test set -> partition over N peers -> one learner per
 * peer (the engine's Trainer, or the small TypeScript softmax learner) -> the averaging rule on the simulated network -> the
 * BASELINES (centralised, local-only, FedAvg) on the same data and budget -> one report (the exact JSON of `cohort sim --json`).
 * A natural split (data.split.by, e.g. a region column) replaces the held-out share and the partition: one peer per site, the
 * fixed train/test column or a per-site held-out share; the headline metric is on the pooled test set (as FLamby reports it), and
 * `per_site` gives each site's own test metric for the rule's model of that site and for the baselines' models.
 * Survival tasks (task.kind 'survival': task.time, task.event) stratify splits by the event indicator and report `c_index`.
 *
 *   runScenarioSim(manifest, overrides, hooks) -> SimReport
 */
import { centralisedBaseline, fedAvgBaseline, localOnlyBaseline, type BaselineResult } from '../averaging/baselines.ts';
import type { AlgorithmName } from '../averaging/node.ts';
import type { CodecName } from '../averaging/compression.ts';
import type { LocalLearner } from '../averaging/types.ts';
import { concatSamples, selectSamples, type SampleSet } from '../data/samples.ts';
import type { LossSpec, ModelSpec, OptimizerSpec } from '../engine/spec.ts';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import { Rng } from '../util/random.ts';
import { consortiumStandardiser, loadSimData, type DataSelector, type SiteSplit } from './datasets.ts';
import { imageIntensityScale, onScale, targetOnlyScale, withTarget } from './input-scale.ts';
import { agreeStandardiser, applyAgreed, combineStats, minCountOf, siteStats, standardizeMode, type StandardiserMeta } from '../data/standardiser-stats.ts';
import { SoftmaxLearner } from './learners.ts';
import type { Topology } from './network.ts';
import { partitionSamples, siteSplit, stratifiedSplit, type PartitionSpec } from './partition.ts';
import { churnSchedule, simulate, type LateCounters, type RoundProbe, type SimulateOptions } from './simulate.ts';
import { consensusDistance, weightedMean } from '../averaging/mixing.ts';
import type { AlgorithmSettings } from '../averaging/factory.ts';
import type { AveragingNode, NodeConfig } from '../averaging/node.ts';
import type { RejectReason } from '../averaging/types.ts';
import { SecureSession } from '../averaging/secure/session.ts';
import { checkSimPrivacy, peerDp, privacyReport, resolvePrivacy, type PrivacyReport } from './privacy.ts';
import { aggregatorConflict, type AggregatorName } from '../averaging/robust.ts';
import { poisonLabels } from './attacks/index.ts';
import { attackReport, simAdversary, type AttackReport, type SimAttack } from './attacks/sim.ts';

const log = logger('sim:run');

export type LearnerKind = 'engine' | 'softmax';

/**
 * What a simulation reads of a scenario: structurally the parsed manifest of src/scenario/manifest.ts (a SimScenario is one),
 * declared here so that sim/ does not depend on the scenario layer above it.
 */
export interface SimScenario {
  readonly name: string;
  readonly task: { readonly kind: string; readonly metric: string; readonly time?: string; readonly event?: string };
  readonly data: {
    readonly selector: DataSelector; readonly preprocessing: Readonly<Record<string, unknown>>; readonly holdout: number;
    /** Natural split: one peer per value of a site column (see datasets.ts). */
    readonly split?: SiteSplit;
  };
  readonly model: ModelSpec;
  readonly loss?: LossSpec;
  readonly optimizer: OptimizerSpec;
  readonly training: { readonly batchSize: number; readonly localSteps?: number; readonly localEpochs: number; readonly proximalMu: number; readonly seed: number };
  readonly averaging: {
    readonly algorithm: AlgorithmName; readonly topology: Topology; readonly weighting: 'uniform' | 'samples';
    readonly fanout: number; readonly s: number; readonly gamma: number; readonly roundMs: number; readonly deadlineMs?: number;
    /** Robust aggregation (averaging/robust.ts); absent: mean. */
    readonly aggregator?: AggregatorName; readonly trim?: number; readonly clipRadius?: number;
    /** Epidemic Learning's receiver draw (averaging/secure/receivers.ts); absent: random. */
    readonly receivers?: 'random' | 'public';
  };
  readonly compression: { readonly codec: CodecName; readonly blockSize: number; readonly topkFraction: number };
  readonly rounds: {
    readonly max: number;
    readonly stopping: { readonly kind: 'max-rounds' } | { readonly kind: 'target'; readonly value: number } | { readonly kind: 'plateau'; readonly patience: number; readonly minDelta: number };
  };
  readonly evaluation: { readonly every: number; readonly compareLocalOnly: boolean };
  /** Privacy (src/scenario/manifest.ts privacySchema): masked averaging and DP-SGD to an (epsilon, delta) budget. */
  readonly privacy?: SimPrivacy;
  readonly simulation: {
    readonly peers: number; readonly partition: PartitionSpec; readonly latencyMs: number; readonly bandwidthMBps: number; readonly loss: number;
    readonly churn: number; readonly stragglers: { readonly fraction: number; readonly slowdown: number }; readonly stepMs: number;
  };
}

export interface SimPrivacy {
  readonly secure: boolean;
  readonly dp?: { readonly epsilon: number; readonly delta: number; readonly clip: number; readonly trainRounds?: number };
}

export interface SimOverrides {
  /** `cohort sim --dp-epsilon E`: DP-SGD to this epsilon (Infinity: off), with the manifest's delta and clip (defaults 1e-5, 1). */
  readonly dpEpsilon?: number;
  /** `cohort sim --secure`: masked averaging. */
  readonly secure?: boolean;
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
  /** Round length override (virtual network and real-network runs, which use short wall-clock rounds). */
  readonly roundMs?: number;
  /** Virtual network: one-way link latency (ms) instead of simulation.latencyMs. */
  readonly latencyMs?: number;
  /** Deadline within each round (ms) instead of averaging.deadlineMs (default: 0.8 x the round). */
  readonly deadlineMs?: number;
  /** Run the rule somewhere else than the virtual network: the CLI passes runOnLoopback (real libp2p peers on 127.0.0.1). */
  readonly runner?: RealRunner;
  /** Report `per_site` for a random partition too (each peer named peer-K, evaluated on the pooled test set). */
  readonly perSite?: boolean;
  /** `cohort sim --aggregator A`: robust aggregation instead of averaging.aggregator. */
  readonly aggregator?: AggregatorName;
  /** `cohort sim --attack NAME --byzantine F`: that share of the peers are Byzantine (src/sim/attacks); `final` is then over the honest peers. */
  readonly attack?: SimAttack;
  /**
   * `cohort sim --averaging-only`: no local training; every peer starts from its own random model (the scenario's initial model
   * plus seeded N(0, 1) noise) and the rule only averages, so `consensus_distance` shows how exactly the rule reaches the mean
   * under the network's timing (the JSON gains `consensus_start`).
   */
  readonly averagingOnly?: boolean;
}

/** A runner of one rule over real peers (src/net/averaging-transport.ts runOnLoopback has this shape). */
export type RealRunner = (o: {
  algorithm: AlgorithmName; learners: readonly LocalLearner[]; node: Omit<NodeConfig, 'seed'>; settings?: AlgorithmSettings; seed: number;
  /** Masked D-PSGD: each real peer runs its own key setup over the network (the simulator's in-process session is not used). */
  secure?: boolean;
}) => Promise<{ nodes: readonly AveragingNode[]; estimates: Float32Array[]; sendFailures: number; secureSetup?: { bytesPerPeer: number; refused: number; wallMs: number } }>;

/** The outcome of one rule's run, virtual or real. */
interface RuleRun {
  readonly probes: RoundProbe[];
  readonly finalModels: Float32Array[];
  /** Peer index of each final model. */
  readonly finalPeers: number[];
  readonly finalMetrics: number[];
  readonly rejected: Record<RejectReason, number>;
  readonly bytesSentPerPeer: number;
  readonly messagesLost: number;
  /** Deadline bookkeeping (virtual network only). */
  readonly late?: LateCounters;
}

async function realRun(runner: RealRunner, so: SimulateOptions, evaluate: (x: Float32Array) => Promise<number>): Promise<RuleRun> {
  if (so.churn?.length) throw new CohortError('SIM_REAL_CHURN', 'churn is simulated on the virtual network only', 'drop --churn with --libp2p');
  // secure: the real peers set up their own keys (net-session.ts); the in-process SecureSession of the virtual network stays unused
  const { secure, ...settings } = so.settings ?? {};
  const r = await runner({ algorithm: so.algorithm, learners: so.learners, node: so.node, settings, seed: so.seed, secure: secure !== undefined });
  const finalMetrics: number[] = [];
  for (const x of r.estimates) finalMetrics.push(await evaluate(x));
  const rejected = { ...r.nodes[0]!.stats.rejected };
  for (const k of Object.keys(rejected) as RejectReason[]) rejected[k] = r.nodes.reduce((a, n) => a + n.stats.rejected[k], 0);
  return {
    probes: [], finalModels: r.estimates, finalPeers: r.estimates.map((_, i) => i), finalMetrics, rejected, messagesLost: r.sendFailures,
    bytesSentPerPeer: r.nodes.reduce((a, n) => a + n.stats.bytesSent, 0) / r.nodes.length,
  };
}

export interface SimHooks {
  readonly onRound?: (phase: string, round: number, total: number, metric: number) => void;
}

export interface CurvePoint { readonly round: number; readonly metric: number; readonly bytesPerPeer: number; readonly consensus?: number }

/**
 * One site of a natural split: its sample counts and the metric on its own test set of the rule's model at that site (`metric`)
 * and of the baselines' models (local_only: the site's own local model). null: not run, or no test pairs/samples at the site.
 */
export interface SiteResult {
  readonly site: string;
  readonly train: number;
  readonly test: number;
  readonly metric: number | null;
  readonly local_only: number | null;
  readonly fedavg: number | null;
  readonly centralised: number | null;
}

export interface SimReport {
  readonly algorithm: AlgorithmName;
  readonly peers: number;
  readonly rounds: number;
  readonly final: { readonly mean: number; readonly min: number; readonly max: number; readonly metric: string };
  readonly baselines: { readonly centralised: number | null; readonly local_only: number | null; readonly fedavg: number | null };
  /** Natural splits (and --data runs): one entry per site, in peer order. */
  readonly per_site?: SiteResult[];
  readonly bytes_sent_per_peer: number;
  readonly consensus_distance: number;
  /** `--averaging-only`: the consensus distance of the peers' different starting models. */
  readonly consensus_start?: number;
  /**
   * D-PSGD and CHOCO (the rules that apply late work), virtual network: models that missed their deadline, those applied late (once
   * each), those still in flight when the run ended (missed = applied + in flight, without loss or churn), and local updates that
   * finished after their round's deadline.
   */
  readonly late?: { readonly missed_at_deadline: number; readonly applied: number; readonly in_flight_at_end: number; readonly local_updates_late: number };
  /** Runs with privacy settings (manifest `privacy`, --secure, --dp-epsilon): masking on/off and the epsilon spent (src/sim/privacy.ts). */
  readonly privacy?: PrivacyReport;
  /** Runs with --attack: the adversaries, what the honest peers refused, and whom their neighbour scores name. */
  readonly attack?: AttackReport;
  /** data.preprocessing.standardize: the standardiser every simulated site used (one hash for "consortium"), as real peers agree it. */
  readonly standardiser?: SimStandardiser;
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
  /** The metric of `model` on another test set (NaN when the set is empty or the metric is undefined there). */
  evaluateOn(model: Float32Array, set: SampleSet): Promise<number>;
  dispose(): Promise<void>;
}

interface SimData {
  readonly parts: SampleSet[];
  readonly train: SampleSet;
  readonly test: SampleSet;
  readonly classes: number;
  /** Natural split: site names (peer order) and each site's own test set. */
  readonly sites?: { readonly names: string[]; readonly tests: SampleSet[] };
  /** data.preprocessing.standardize: the consortium standardiser's hash (or each site's, "site"), and sites left out of it. */
  readonly standardiser?: SimStandardiser;
}

export interface SimStandardiser { readonly mode: 'consortium' | 'site'; readonly hashes: string[]; readonly suppressed_sites: number }

/** Pooled data -> held-out test set and per-peer training parts (random partition, or one peer per site). */
function simData(m: SimScenario, o: SimOverrides, seed: number, partition: PartitionSpec): SimData {
  const survival = m.task.kind === 'survival';
  const regression = m.task.kind === 'regression';
  // regression: split and partition by the target's quintile (datasets.ts), a continuous value has no classes
  const key = survival ? 'event' : regression ? 'stratum' : 'label';
  if (survival && (!m.task.time || !m.task.event)) {
    throw new CohortError('SIM_SURVIVAL_COLUMNS', 'a survival task needs task.time and task.event', 'name the follow-up time column and the event (1/0) column');
  }
  const split = m.data.split;
  const data = loadSimData(m.data.selector, m.data.preprocessing, seed, { survival: survival ? { time: m.task.time!, event: m.task.event! } : undefined, split, regression });
  const mode = standardizeMode(m.data.preprocessing);
  const meta: StandardiserMeta = { ...(data.featureNames.length ? { featureNames: data.featureNames } : {}), ...(data.classNames.length ? { classNames: data.classNames } : {}) };
  const minCount = minCountOf(m.data.preprocessing);
  if (!split || !data.sites) {
    const s = stratifiedSplit(data.set, key, m.data.holdout, seed);
    const raw = partitionSamples(s.train, key, o.peers ?? m.simulation.peers, partition, seed);
    const images = imageIntensityScale(m.data.preprocessing, raw, [s.train, s.test], minCount);
    if (images) return { parts: images.parts, train: images.others[0]!, test: images.others[1]!, classes: data.classes, standardiser: images.standardiser! };
    if (mode === 'none' && regression) {
      // raw inputs, one target scale: the training parts' target statistics, as the peers' exchange would give it
      const t = targetOnlyScale(raw, [s.train, s.test], minCount);
      return { parts: t.parts, train: t.others[0]!, test: t.others[1]!, classes: data.classes };
    }
    if (mode === 'none') return { parts: raw, train: s.train, test: s.test, classes: data.classes };
    if (mode === 'site') {
      throw new CohortError('SIM_SITE_STANDARDISE', 'data.preprocessing.standardize "site" needs sites with their own test parts (data.split) in the simulator',
        'use "consortium", or a natural split by a site column (data.split.by)');
    }
    // the real peers' path: each site's statistics, added up, one standardiser for every site and the held-out part
    // (regression: the target's statistics travel with the features' as input `target`, src/data/site-table.ts)
    const { standardiser: agreed, suppressed } = consortiumStandardiser(raw.map((p) => withTarget(p, regression)), { minCount, meta });
    const scale = (p: SampleSet): SampleSet => onScale(p, agreed, regression);
    return { parts: raw.map(scale), train: scale(s.train), test: scale(s.test), classes: data.classes,
      standardiser: { mode, hashes: [agreed.hash], suppressed_sites: suppressed } };
  }
  const s = siteSplit(data.sites, data.set.targets[key]!.data, { inTrain: data.inTrain, holdout: m.data.holdout, seed });
  if (o.peers !== undefined && o.peers !== s.names.length) {
    throw new CohortError('SIM_PEERS_SITES', `the data is split by "${split.by}" into ${s.names.length} sites, one peer each: --peers ${o.peers} does not apply`,
      'drop --peers, or drop data.split (the site column) for a random partition over N peers');
  }
  if (o.partition || o.alpha !== undefined) {
    throw new CohortError('SIM_PEERS_SITES', `the data is split by "${split.by}": a partition (--alpha) does not apply`, 'drop --alpha, or drop data.split for a random partition');
  }
  const rawParts = s.train.map((idx) => selectSamples(data.set, idx));
  const rawTests = s.test.map((idx) => selectSamples(data.set, idx));
  const images = imageIntensityScale(m.data.preprocessing, rawParts, rawTests, minCount);
  const scaled = images ? { parts: images.parts, tests: images.others, standardiser: images.standardiser }
    : scaleSites(mode, rawParts, rawTests, { minCount, meta, regression });
  const test = concatSamples(scaled.tests);
  return { parts: scaled.parts, train: concatSamples(scaled.parts), test, classes: data.classes, sites: { names: s.names, tests: scaled.tests },
    ...(scaled.standardiser ? { standardiser: scaled.standardiser } : {}) };
}

/** Natural split: "consortium": one standardiser from all sites' training parts; "site": each site its own (harmonisation). */
function scaleSites(mode: 'consortium' | 'site' | 'none', parts: SampleSet[], tests: SampleSet[], o: { minCount: number; meta: StandardiserMeta; regression: boolean }): { parts: SampleSet[]; tests: SampleSet[]; standardiser?: SimStandardiser } {
  if (mode === 'none' && o.regression) {
    const t = targetOnlyScale(parts, tests, o.minCount);
    return { parts: t.parts, tests: t.others };
  }
  if (mode === 'none') return { parts, tests };
  // regression: the target's statistics travel with the features' (input `target`), as on real peers (src/peer/worker.ts)
  const shared = parts.map((p) => withTarget(p, o.regression));
  if (mode === 'consortium') {
    const { standardiser: agreed, suppressed } = consortiumStandardiser(shared, o);
    return { parts: parts.map((p) => onScale(p, agreed, o.regression)), tests: tests.map((t) => onScale(t, agreed, o.regression)), standardiser: { mode, hashes: [agreed.hash], suppressed_sites: suppressed } };
  }
  const own = shared.map((p) => agreeStandardiser(combineStats([siteStats(p, { minCount: 0 })!]), { ...o.meta, mode: 'site' }));
  return { parts: parts.map((p, k) => onScale(p, own[k]!, o.regression)), tests: tests.map((t, k) => onScale(t, own[k]!, o.regression)), standardiser: { mode, hashes: own.map((x) => x.hash), suppressed_sites: 0 } };
}

export async function runScenarioSim(m: SimScenario, o: SimOverrides = {}, hooks: SimHooks = {}): Promise<SimReport> {
  const started = Date.now();
  const algorithm = o.algorithm ?? m.averaging.algorithm;
  const seed = o.seed ?? m.training.seed;
  const rounds = o.rounds ?? m.rounds.max;
  const codec = o.codec ?? m.compression.codec;
  const churn = o.churn ?? m.simulation.churn;
  const partition: PartitionSpec = o.partition ?? (o.alpha !== undefined ? { kind: 'dirichlet', alpha: o.alpha } : m.simulation.partition);
  const evalEvery = o.evalEvery ?? m.evaluation.every;
  const privacy = resolvePrivacy(m.privacy, o);
  if (privacy) checkSimPrivacy(privacy, algorithm, codec, m.task.kind, o.learner ?? 'engine', m.averaging.topology.kind, o.runner !== undefined, m.averaging.receivers ?? 'random', m.loss?.type);
  const aggregator = o.aggregator ?? m.averaging.aggregator ?? 'mean';
  const conflict = aggregatorConflict(algorithm, aggregator, { secure: privacy?.secure === true });
  if (conflict) throw new CohortError('BAD_FLAG', conflict.message, conflict.hint);
  if (o.attack && o.runner) throw new CohortError('BAD_FLAG', '--attack runs on the virtual network (an omniscient simulated adversary)', 'drop --libp2p; over real peers the adversary is a test-only peer (test/e2e)');

  const data = simData(m, o, seed, partition);
  const { parts, test, train } = data;
  const peers = parts.length;
  const learnerKind = o.learner ?? 'engine';
  const task = learnerKind === 'engine' ? await engineTask(m, test, parts[0]!, seed, privacy, rounds) : softmaxTask(m, test, data.classes, seed, train);

  try {
    const learners: LocalLearner[] = [];
    const adversary = o.attack ? simAdversary(o.attack, peers, seed, task.parameters, { blockSize: m.compression.blockSize, topkFraction: m.compression.topkFraction }) : null;
    const byzantine = new Set(adversary?.byzantine ?? []);
    // label flipping: the Byzantine peers train honestly on poisoned labels
    for (const [k, p] of parts.entries()) learners.push(await task.makeLearner(byzantine.has(k) && o.attack?.name === 'label-flip' ? poisonLabels(p, data.classes) : p));
    const consensusStart = o.averagingOnly ? spreadModels(learners, seed) : undefined;
    const meanSamples = parts.reduce((a, p) => a + p.size, 0) / peers;
    const stragglers = new Rng(seed ^ 0x57a6).sample(Array.from({ length: peers }, (_, i) => i), Math.round(peers * m.simulation.stragglers.fraction));
    const slowdown = Array.from({ length: peers }, (_, i) => (stragglers.includes(i) ? m.simulation.stragglers.slowdown : 1));
    const higherBetter = m.task.metric !== 'loss';
    const stop = stoppingRule(m, higherBetter);
    const curve: CurvePoint[] = [];
    const roundMs = o.roundMs ?? m.averaging.roundMs;
    const deadlineMs = o.deadlineMs ?? (o.roundMs !== undefined ? 0.8 * o.roundMs : (m.averaging.deadlineMs ?? 0.8 * m.averaging.roundMs));
    if (deadlineMs > roundMs) {
      throw new CohortError('SIM_DEADLINE', `the deadline (${deadlineMs} ms) falls after the end of the round (${roundMs} ms)`, 'give a --deadline-ms at most the round length (--round-ms)');
    }
    const simOpts: SimulateOptions = {
      algorithm, seed, learners,
      settings: { fanout: m.averaging.fanout, s: m.averaging.s, gamma: m.averaging.gamma, receivers: m.averaging.receivers, ...(privacy?.secure ? { secure: new SecureSession(m.name, seed) } : {}) },
      network: {
        topology: m.averaging.topology,
        link: { latencyMs: o.latencyMs ?? m.simulation.latencyMs, bandwidthBytesPerMs: m.simulation.bandwidthMBps * 1e3, loss: m.simulation.loss },
        stepMs: m.simulation.stepMs, slowdown,
      },
      node: {
        scenario: m.name, layoutHash: task.layoutHash, rounds, roundMs,
        deadlineMs, codec: algorithm === 'pushsum' && codec === 'f32' ? 'f64' : codec,
        codecOptions: { blockSize: m.compression.blockSize, topkFraction: m.compression.topkFraction },
        weighting: m.averaging.weighting, train: !o.averagingOnly, proximal: m.training.proximalMu > 0, meanSamples,
        robust: { aggregator, trim: m.averaging.trim, radius: m.averaging.clipRadius },
      },
      churn: churnSchedule(peers, churn, rounds, seed),
      ...(adversary ? { transportFor: adversary.transportFor, unprobed: byzantine } : {}),
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
    const b = o.baselines === false || o.averagingOnly
      ? { values: { centralised: null, local_only: null, fedavg: null }, models: {} }
      : await runBaselines(task, parts, { rounds: roundsRun, evalEvery, proximal: m.training.proximalMu > 0, localOnly: m.evaluation.compareLocalOnly }, curves, hooks);
    const baselines = b.values;
    const sites = data.sites ?? (o.perSite ? { names: parts.map((_, k) => `peer-${k + 1}`), tests: parts.map(() => test) } : undefined);
    const perSite = sites ? await siteResults(task, sites, parts, res, b.models) : undefined;
    // with an attack, the headline is over the honest peers only (the Byzantine peers' own models are not anyone's result)
    const honestAt = res.finalPeers.map((k) => !byzantine.has(k));
    const fm = res.finalMetrics.filter((_, i) => honestAt[i]);
    const meanModelMetric = await task.evaluate(Float32Array.from(weightedMean(res.finalModels.filter((_, i) => honestAt[i]))));
    return {
      algorithm,
      peers,
      rounds: roundsRun,
      final: { mean: fm.reduce((a, b) => a + b, 0) / fm.length, min: Math.min(...fm), max: Math.max(...fm), metric: task.metric },
      baselines,
      ...(perSite ? { per_site: perSite } : {}),
      bytes_sent_per_peer: Math.round(res.bytesSentPerPeer),
      consensus_distance: res.probes.at(-1)?.consensus ?? consensusDistance(res.finalModels),
      ...(consensusStart !== undefined ? { consensus_start: consensusStart } : {}),
      ...(res.late && (algorithm === 'dpsgd' || algorithm === 'choco') ? { late: {
        missed_at_deadline: res.late.missedAtDeadline, applied: res.late.applied, in_flight_at_end: res.late.inFlightAtEnd,
        local_updates_late: res.late.localUpdatesLate,
      } } : {}),
      ...(privacy ? { privacy: privacyReport(privacy, learners) } : {}),
      ...(data.standardiser ? { standardiser: data.standardiser } : {}),
      ...(adversary && 'nodes' in res ? { attack: attackReport(adversary, (res as { nodes: readonly AveragingNode[] }).nodes, aggregator) } : {}),
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

/** Averaging only: each peer starts from its own model (initial model + seeded N(0, 1) noise); returns their consensus distance. */
function spreadModels(learners: readonly LocalLearner[], seed: number): number {
  const rng = new Rng(seed ^ 0xa11a);
  for (const l of learners) {
    const x = l.getParameters();
    for (let i = 0; i < x.length; i++) x[i] = x[i]! + rng.normal();
    l.setParameters(x);
  }
  return consensusDistance(learners.map((l) => l.getParameters()));
}

type BaselineModels = Partial<Record<BaselineResult['name'], Float32Array[]>>;

/** Each site's own test metric for the rule's model at that site and for the baselines' models (null when undefined there). */
async function siteResults(task: Task, sites: NonNullable<SimData['sites']>, parts: readonly SampleSet[],
  res: Pick<RuleRun, 'finalModels' | 'finalPeers'>, models: BaselineModels): Promise<SiteResult[]> {
  const at = async (x: Float32Array | undefined, set: SampleSet): Promise<number | null> => {
    if (!x) return null;
    const v = await task.evaluateOn(x, set);
    return Number.isFinite(v) ? v : null;
  };
  const out: SiteResult[] = [];
  for (const [k, site] of sites.names.entries()) {
    const set = sites.tests[k]!;
    const own = res.finalPeers.indexOf(k);
    out.push({
      site, train: parts[k]!.size, test: set.size,
      metric: await at(own >= 0 ? res.finalModels[own] : undefined, set),
      local_only: await at(models.local_only?.[k], set),
      fedavg: await at(models.fedavg?.[0], set),
      centralised: await at(models.centralised?.[0], set),
    });
  }
  return out;
}

/** The BASELINES on the same partitions and round budget; their curves go into `curves`. */
async function runBaselines(
  task: Task, parts: readonly SampleSet[], o: { rounds: number; evalEvery: number; proximal: boolean; localOnly: boolean },
  curves: Record<string, CurvePoint[]>, hooks: SimHooks,
): Promise<{ values: SimReport['baselines']; models: BaselineModels }> {
  const out: { centralised: number | null; local_only: number | null; fedavg: number | null } = { centralised: null, local_only: null, fedavg: null };
  const models: BaselineModels = {};
  const opts = (name: string) => ({ rounds: o.rounds, evalEvery: o.evalEvery, onRound: (r: number, v: number) => hooks.onRound?.(name, r + 1, o.rounds, v) });
  const record = (b: BaselineResult) => {
    out[b.name] = b.final;
    models[b.name] = b.models;
    curves[b.name] = b.curve.map((v, r) => ({ round: r + 1, metric: v, bytesPerPeer: b.bytesPerPeerPerRound * (r + 1) }))
      .filter((p) => p.round % o.evalEvery === 0 || p.round === o.rounds);
  };
  const fresh = async () => { const ls: LocalLearner[] = []; for (const p of parts) ls.push(await task.makeLearner(p)); return ls; };
  record(await centralisedBaseline(await task.makeLearner(concatSamples(parts)), task.evaluate, opts('centralised')));
  record(await fedAvgBaseline(await fresh(), task.evaluate, { ...opts('fedavg'), proximal: o.proximal }));
  if (o.localOnly) record(await localOnlyBaseline(await fresh(), task.evaluate, opts('local_only')));
  return { values: out, models };
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

async function engineTask(m: SimScenario, test: SampleSet, example: SampleSet, seed: number, privacy?: SimPrivacy, rounds = m.rounds.max): Promise<Task> {
  const { TrainerLearner } = await import('./trainer-learner.ts');
  const { providersFromEnv } = await import('../engine/providers.ts');
  const cfg = { model: m.model, loss: m.loss, optimizer: m.optimizer, batchSize: m.training.batchSize, seed, proximalMu: m.training.proximalMu, threads: 1,
    // cpu unless COHORT_SIM_PROVIDERS names others (npm run gpu-check: 16 simulated peers on one GPU)
    ...providersFromEnv('COHORT_SIM_PROVIDERS', ['cpu']) };
  const work = { steps: m.training.localSteps, epochs: m.training.localEpochs };
  const evaluator = await TrainerLearner.create(cfg, example, work);
  const metric = m.task.metric;
  const created: { dispose(): Promise<void> }[] = [evaluator];
  return {
    metric,
    layoutHash: evaluator.layoutHash,
    parameters: evaluator.getParameters().length,
    async makeLearner(data) {
      const dp = peerDp(privacy, data.size, cfg.batchSize, work, rounds, (seed * 7919 + created.length) >>> 0);
      const l = dp ? await TrainerLearner.create({ ...cfg, dp: { clip: dp.clip, noiseMultiplier: dp.noiseMultiplier, noiseSeed: dp.noiseSeed } }, data, work, dp.maxSteps)
        : await TrainerLearner.create(cfg, data, work);
      created.push(l);
      return l;
    },
    async evaluate(x) {
      const r = await evaluator.evaluate(test, x);
      const v = r[metric];
      if (v === undefined) throw new CohortError('SIM_METRIC', `the engine reports no "${metric}" for this model`, `metrics: ${Object.keys(r).join(', ')}`);
      return v;
    },
    async evaluateOn(x, set) {
      if (set.size === 0) return Number.NaN;
      return (await evaluator.evaluate(set, x))[metric] ?? Number.NaN;
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
    async evaluateOn(x, set) { return set.size === 0 ? Number.NaN : SoftmaxLearner.evaluate(x, set, classes)[metric]; },
    async dispose() {},
  };
}
