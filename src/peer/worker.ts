/**
 * The training worker: one worker thread per running scenario, so that data loading, batching and the training loop never starve
 * libp2p, heartbeats or the admin API on the main thread. It owns the site's data (it never leaves this thread except as metrics)
 * and a Trainer; the main thread sends it parameter vectors and gets vectors back, as transferred ArrayBuffers (no copies).
 *
 * Requests (WorkerRequest) and replies (WorkerReply) are plain messages with a numeric `rid`; see runner.ts for the caller.
 */
import '../util/polyfills.ts';
import { getHeapStatistics } from 'node:v8';
import { MEMORY_EXIT_CODE } from './admission.ts';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { Trainer, type Evaluation, type Metrics, type TrainConfig } from '../engine/index.ts';
import type { GraphReport } from '../engine/trainer.ts';
import type { ProviderFallback } from '../engine/providers.ts';
import { selectSamples, type SampleSet } from '../data/samples.ts';
import { statSync } from 'node:fs';
import { readTable, stratifiedSplit } from '../data/tabular.ts';
import { scaleTarget, siteTable, targetQuintiles, targetScaleOf, withTargetInput, type TargetScale } from '../data/site-table.ts';
import { agreeStandardiser, applyAgreed, combineStats, minCountOf, siteStats, standardizeMode, type AgreedStandardiser, type SiteStats, type StandardiserMeta, type StandardizeMode } from '../data/standardiser-stats.ts';
import { CohortError } from '../util/errors.ts';
import { preprocessFolder, splitBySubject, type PreprocessConfig } from '../data/preprocess.ts';
import { agreedIntensity, applyAgreedIntensity, checkIntensityScope, consortiumModalities, intensityStats } from '../data/intensity-stats.ts';
import { Rng } from '../util/random.ts';
import type { ScenarioManifest } from '../scenario/manifest.ts';
import { exportStandardiser } from '../data/standardiser-stats.ts';
import type { Encoding } from '../data/tabular.ts';
import { parsePreprocessConfig } from '../data/preprocess.ts';
import { selfContainedImage, selfContainedTabular, type ExportProvenance, type ExportTask } from '../engine/export.ts';
import { logger } from '../util/log.ts';
import { planDp, spentOf, stepsLeft, type DpPlan } from '../privacy/dp-plan.ts';
import { stepsWithinBudget } from '../privacy/dp-resume.ts';
import type { DpPhase } from '../privacy/accountant.ts';

export interface WorkerInit {
  readonly manifest: ScenarioManifest;
  readonly dataPath: string;
  readonly dataOptions: Readonly<Record<string, unknown>>;
  readonly threads: number;
  readonly providers: ('cuda' | 'webgpu' | 'cpu')[];
  /** A listed provider that cannot run: 'cpu' (default) falls back, 'error' fails the worker's start with PROVIDER_UNAVAILABLE. */
  readonly providerFallback?: ProviderFallback;
  /** Set to 1 by the daemon to stop: training ends after the current step (never inside an onnxruntime run). */
  readonly cancel?: SharedArrayBuffer;
  /** This worker's JavaScript heap + ArrayBuffer budget (bytes): above it training stops and the worker exits with MEMORY_EXIT_CODE. */
  readonly memoryBudgetBytes?: number;
}

/** Local work longer than this many steps runs in chunks of it, so that batch index lists never cover more than one chunk. */
export const STEP_CHUNK = 4096;

export type WorkerRequest =
  | { rid: number; op: 'train'; params: Float32Array }
  /** `intervals`: also the held-out n and 95% intervals (a seeded bootstrap: asked for the final model, not every round). */
  | { rid: number; op: 'evaluate'; params: Float32Array; intervals?: boolean }
  | { rid: number; op: 'localOnly'; rounds: number; intervals?: boolean }
  /** `provenance`: the scenario, participants, rounds and metric written into the model's metadata (engine/export.ts). */
  | { rid: number; op: 'export'; params: Float32Array; provenance?: ExportProvenance }
  | { rid: number; op: 'checkpoint'; params: Float32Array }
  | { rid: number; op: 'restore'; bytes: Uint8Array }
  /** After a restart: the DP steps taken before it (the accountant continues from them). */
  | { rid: number; op: 'dpPrior'; phases: DpPhase[] }
  /** Consortium standardisation: z-score the training and held-out parts with the standardiser the participants agreed. */
  | { rid: number; op: 'standardise'; standardiser: AgreedStandardiser }
  /** Leave after the request in flight (the daemon stops a run this way: no onnxruntime call is cut off). */
  | { rid: number; op: 'exit' };

export type WorkerReply =
  | { rid: 0; op: 'ready'; layoutHash: string; sampleCount: number; testCount: number; provider: string; params: Float32Array; inputScale: InputScale; dp?: DpPlan }
  | { rid: number; op: 'standardised'; hash: string }
  | { rid: number; op: 'trained'; params: Float32Array; loss: number; steps: number; memoryBytes?: number; epsilon?: number; dpPhases?: DpPhase[]; dpCapped?: boolean }
  | { rid: number; op: 'dpResumed'; epsilon: number }
  | { rid: number; op: 'metrics'; metrics: Metrics; evaluation?: Evaluation }
  | { rid: number; op: 'bytes'; bytes: Uint8Array }
  | { rid: number; op: 'restored'; params: Float32Array }
  | { rid: number; op: 'error'; message: string; code?: string; hint?: string }
  /** Unsolicited (rid 0), after 'ready' and whenever it changed: which provider runs each graph, refusals, CPU-fallback nodes. */
  | { rid: 0; op: 'graphs'; graphs: GraphReport[] };

interface Site { train: SampleSet; test: SampleSet; trainer: Trainer; cfg: TrainConfig }

/**
 * How this site's inputs are scaled (data.preprocessing.standardize): "consortium": the training part's sufficient statistics go
 * to the runner (null below the small-count rule) and the data stays raw until the agreed standardiser comes ('standardise');
 * "site": standardised here with this site's own standardiser (explicit per-site harmonisation); "none": raw.
 */
export interface InputScale {
  readonly mode: StandardizeMode;
  readonly stats?: SiteStats | null;
  readonly meta?: StandardiserMeta;
  /** "site": the standardiser applied here (its hash goes into the report). */
  readonly standardiser?: AgreedStandardiser;
}

/** This site's data, split into a training part and a held-out part; scaled per the manifest (InputScale). */
function loadSite(init: WorkerInit): { train: SampleSet; test: SampleSet; scale: InputScale } {
  const m = init.manifest;
  const mode = standardizeMode(m.data.preprocessing);
  const { set, split, names } = statSync(init.dataPath).isDirectory() ? imageSite(init) : tabularSite(init);
  if (names?.encoding) exportInput = { featureNames: names.featureNames, classNames: names.classNames, encoding: names.encoding };
  const train = selectSamples(set, split.train);
  const test = selectSamples(set, split.test);
  // images with a consortium intensity z-score: the voxel statistics go out, those channels stay raw until the agreed ones come
  if (intensityCfg) {
    checkIntensityScope(m.data.preprocessing, intensityCfg);
    return { train, test, scale: { mode: 'consortium', stats: intensityStats(train, intensityCfg, { minCount: minCountOf(m.data.preprocessing) }) } };
  }
  const meta: StandardiserMeta = { ...(names?.featureNames.length ? { featureNames: names.featureNames } : {}), ...(names?.classNames.length ? { classNames: names.classNames } : {}) };
  // per-class counts only with the manifest's class list: then class k is the same class at every site
  const classes = m.data.selector.classNames?.length;
  // regression: the target's statistics go with the features' (site-table.ts withTargetInput), so its scale is agreed too
  const regression = m.task.kind === 'regression';
  const forStats = regression ? withTargetInput(train) : train;
  if (mode === 'consortium') return { train, test, scale: { mode, stats: siteStats(forStats, { minCount: minCountOf(m.data.preprocessing), ...(classes ? { classes } : {}) }), meta } };
  // a site's own statistics never leave it here, so no small-count rule applies
  const own = agreeStandardiser(combineStats([siteStats(forStats, { minCount: 0 })!]), { ...meta, mode: 'site' });
  if (mode === 'none') {
    // raw inputs, but a regression target still needs one scale for the learning rate: the site's own (it does not leave the site)
    if (!regression) return { train, test, scale: { mode } };
    setTargetScale(targetScaleOf(own));
    return { train: scaleTarget(train, targetScale!), test: scaleTarget(test, targetScale!), scale: { mode } };
  }
  if (exportInput) exportInput = { ...exportInput, standardiser: own };
  return { ...applyScale({ train, test }, own), scale: { mode, standardiser: own } };
}

/** The regression target's mean and sd this worker trains with (undefined: not a regression): metrics and export go back to units. */
let targetScale: TargetScale | undefined;
function setTargetScale(s: TargetScale): void {
  targetScale = s;
  if (exportInput) exportInput = { ...exportInput, target: s };
}

/** Inputs z-scored with the standardiser; a regression target too, with the target statistics it carries. */
function applyScale(parts: { train: SampleSet; test: SampleSet }, s: AgreedStandardiser): { train: SampleSet; test: SampleSet } {
  if (intensityCfg) {
    intensityAgreed = agreedIntensity(s, intensityCfg);
    return { train: applyAgreedIntensity(parts.train, intensityCfg, s), test: applyAgreedIntensity(parts.test, intensityCfg, s) };
  }
  let train = applyAgreed(parts.train, s), test = applyAgreed(parts.test, s);
  if (workerRegression) {
    setTargetScale(targetScaleOf(s));
    train = scaleTarget(train, targetScale!); test = scaleTarget(test, targetScale!);
  }
  return { train, test };
}
let workerRegression = false;
/** An image site whose preprocessing has consortium-scope intensity z-scores (src/data/intensity-stats.ts), and their agreed values. */
let intensityCfg: PreprocessConfig | undefined;
let intensityAgreed: Record<string, { mean: number; std: number }> | undefined;

/** Regression metrics in the target's own units: the model predicts the z-scored target, so MAE and RMSE scale by its sd (R2 does not change). */
function inTargetUnits(metrics: Metrics): Metrics {
  if (!targetScale) return metrics;
  return { ...metrics, ...(metrics.mae !== undefined ? { mae: metrics.mae * targetScale.std } : {}), ...(metrics.rmse !== undefined ? { rmse: metrics.rmse * targetScale.std } : {}) };
}

/** A table site's input for the self-contained export: the reader's encoding and the standardiser its data was scaled with. */
interface ExportInput { featureNames: readonly string[]; classNames: readonly string[]; encoding: Encoding; standardiser?: AgreedStandardiser; target?: TargetScale }
let exportInput: ExportInput | undefined;

/**
 * The final model as a hospital gets it (src/engine/export.ts): a table model from raw columns (this site's standardiser, or the
 * consortium's, in-graph), an image model from raw intensities where its transform is exact in-graph; labels out; metadata. Should
 * wrapping fail, the plain export is kept (with a warning) rather than no final model at all.
 */
function portableModel(bytes: Uint8Array, init: WorkerInit, provenance: ExportProvenance | undefined): Uint8Array {
  const m = init.manifest;
  const task = exportTask(init);
  try {
    if (exportInput) {
      const F = exportInput.featureNames.length;
      const s = exportInput.standardiser ? exportStandardiser(exportInput.standardiser) : { mean: new Float32Array(F), std: new Float32Array(F).fill(1) };
      return selfContainedTabular(bytes, { input: { mean: s.mean, std: s.std, featureNames: exportInput.featureNames, classes: exportInput.classNames,
        encoding: exportInput.encoding }, task, provenance, ...(exportInput.target ? { target: exportInput.target } : {}) });
    }
    if (standardizeMode(m.data.preprocessing) !== 'none') return bytes; // a standardiser on image inputs is not (yet) carried in-graph
    const cfg = parsePreprocessConfig(m.data.preprocessing);
    return selfContainedImage(bytes, { intensity: cfg.modalities.map((mod) => cfg.intensity[mod] ?? { method: 'zscore' }), modalities: cfg.modalities, task,
      classes: task.kind === 'classification' ? [...(m.data.selector.classNames ?? [])] : [], preprocessing: m.data.preprocessing, provenance,
      ...(intensityAgreed ? { agreedIntensity: intensityAgreed } : {}) });
  } catch (e) {
    logger('peer:worker').warn({ err: (e as Error).message }, 'the self-contained export failed; keeping the plain model (standardised inputs)');
    return bytes;
  }
}

function exportTask(init: WorkerInit): ExportTask {
  const m = init.manifest;
  const task = m.task as { kind: string; time?: string; event?: string };
  if (task.kind === 'survival') return { kind: 'survival', ...(task.time ? { time: task.time } : {}), ...(task.event ? { event: task.event } : {}) };
  if (task.kind === 'segmentation' || task.kind === 'multitask') return { kind: 'segmentation' };
  if (task.kind === 'regression') return { kind: 'regression', label: labelColumn(init) };
  return { kind: 'classification', label: labelColumn(init) };
}

/**
 * The column to predict: the manifest's (a scenario means the same column at every site, as in the simulator), else the label the
 * site registered its dataset with (data.<name>.options.label), else "label".
 */
function labelColumn(init: WorkerInit): string {
  return init.manifest.data.selector.label ?? (init.dataOptions.label as string | undefined) ?? 'label';
}

interface SplitSite { set: SampleSet; split: { train: number[]; test: number[] }; names?: { featureNames: readonly string[]; classNames: readonly string[]; encoding?: Encoding } }

/** A CSV: one row is one patient, so a stratified split by row is a split by patient. */
function tabularSite(init: WorkerInit): SplitSite {
  const m = init.manifest;
  if (m.task.kind === 'survival') return survivalSite(init);
  const label = labelColumn(init);
  const regression = m.task.kind === 'regression';
  workerRegression = regression;
  // as the simulator reads it (src/data/site-table.ts): identifier-like and data.selector.ignore columns are not features; the
  // manifest's class list keeps class k the same class at every site, and lets a site with one class take part
  const classNames = m.data.selector.classNames;
  const t = siteTable(readTable(init.dataPath), { label, ignore: m.data.selector.ignore ?? [], ...(regression ? { regression } : {}), ...(classNames ? { classNames } : {}) }).samples;
  const set = t.set;
  // regression: stratified by the target's quintile, as the simulator splits (a number has no classes)
  const split = set.targets.label
    ? stratifiedSplit(regression ? targetQuintiles(set.targets.label.data) : set.targets.label.data, m.data.holdout, m.training.seed)
    : randomSplit(set.size, m.data.holdout, m.training.seed);
  return { set, split, names: { featureNames: t.featureNames, classNames: t.classNames, encoding: t.encoding } };
}

/**
 * A survival table (task.time / task.event): Cox models train on the follow-up time and the event. The manifest's fixed train/test
 * column, when it names one, splits the site's rows; otherwise a split stratified by the event. Site and split columns are not
 * features.
 */
function survivalSite(init: WorkerInit): SplitSite {
  const m = init.manifest;
  const task = m.task as { time?: string; event?: string };
  if (!task.time || !task.event) throw new CohortError('BAD_MANIFEST', 'a survival task needs task.time and task.event', 'name the follow-up time and event columns');
  const split = m.data.split;
  const siteColumns = split ? [...new Set([split.by, ...(split.train ? [split.train.column] : [])])] : [];
  const table = readTable(init.dataPath);
  const t = siteTable(table, { survival: { time: task.time, event: task.event }, siteColumns, ignore: m.data.selector.ignore ?? [] }).samples;
  if (split?.train) {
    const col = table.columns.find((c) => c.name === split.train!.column);
    if (!col) throw new CohortError('NO_SPLIT_COLUMN', `this site's table has no column "${split.train.column}" for the train/test split`, 'add the column, or remove data.split.train from the manifest');
    const train: number[] = [];
    const test: number[] = [];
    t.rowIndex.forEach((r, i) => (String(col.values[r]) === split.train!.value ? train : test).push(i));
    if (train.length && test.length) return { set: t.set, split: { train, test }, names: { featureNames: t.featureNames, classNames: [], encoding: t.encoding } };
  }
  return { set: t.set, split: stratifiedSplit(t.set.targets.event!.data, m.data.holdout, m.training.seed), names: { featureNames: t.featureNames, classNames: [], encoding: t.encoding } };
}

/** A medical folder (images, masks, clinical CSV) through the data layer's preprocessing (the manifest's data.preprocessing). */
function imageSite(init: WorkerInit): SplitSite {
  const result = preprocessFolder(init.dataPath, init.manifest.data.preprocessing, init.manifest.training.seed);
  const cfg = parsePreprocessConfig(init.manifest.data.preprocessing);
  if (consortiumModalities(cfg).length) intensityCfg = cfg;
  // patches and augmented copies of one patient stay on one side of the split, or the held-out metric would be optimistic
  const split = splitBySubject(result, init.manifest.data.holdout, init.manifest.training.seed);
  const set = result.set;
  const model = init.manifest.model as { type: string; markers?: string[] };
  // multi-task models predict per-subject markers; a site whose clinical label is the (single) marker provides it this way
  if (model.type === 'multitask-unet' && !set.targets.markers && set.targets.label && model.markers?.length === 1) {
    return { set: { ...set, targets: { ...set.targets, markers: { shape: [1], data: set.targets.label.data } } }, split };
  }
  return { set, split };
}

function randomSplit(n: number, holdout: number, seed: number): { train: number[]; test: number[] } {
  const idx = new Rng(seed).shuffle(Array.from({ length: n }, (_, i) => i));
  const k = Math.max(1, Math.round(n * holdout));
  return { test: idx.slice(0, k), train: idx.slice(k) };
}

function trainConfig(init: WorkerInit, dp: DpPlan | null): TrainConfig {
  const m = init.manifest;
  return { model: m.model, loss: m.loss, optimizer: m.optimizer, batchSize: m.training.batchSize, seed: m.training.seed,
    providers: init.providers, providerFallback: init.providerFallback ?? 'cpu', threads: init.threads, proximalMu: m.training.proximalMu,
    // with a GPU provider listed, each graph's first run is profiled: how many of its nodes ORT left on CPU (cohort status)
    measurePlacement: init.providers.some((p) => p !== 'cpu'),
    // DP-SGD noise from the OS CSPRNG (no noiseSeed: real patients)
    ...(dp ? { dp: { clip: dp.clip, noiseMultiplier: dp.noiseMultiplier } } : {}) };
}

/** Local steps of one round (as localWork runs them). */
function stepsPerRound(n: number, m: ScenarioManifest): number {
  return m.training.localSteps ?? Math.max(1, Math.round(m.training.localEpochs * Math.ceil(n / Math.min(m.training.batchSize, n))));
}

/** DP-SGD (manifest privacy.dp): sigma calibrated to this site's data size and planned steps, as the simulator does. */
function dpPlanOf(m: ScenarioManifest, n: number): DpPlan | null {
  const dp = m.privacy?.dp;
  return dp ? planDp(dp, n, m.training.batchSize, stepsPerRound(n, m), m.rounds.max) : null;
}
let dpPlan: DpPlan | null = null;

/** Steps taken before a restart (src/privacy/dp-resume.ts), composed with this worker's: empty on a first start. */
let dpPrior: DpPhase[] = [];

/**
 * A DP round: at most the steps the budget was planned for (after a restart: no more than keep the prior and this worker's steps
 * within epsilon); the epsilon spent so far and the phases behind it go back with the model. `dpCapped`: after a restart, a round
 * cut short because the steps counted (before and since the restart) used up the budget.
 */
async function dpWork(site: Site, m: ScenarioManifest, plan: DpPlan): Promise<{ loss: number; steps: number; epsilon: number; dpPhases: DpPhase[]; dpCapped: boolean }> {
  const wanted = stepsPerRound(site.train.size, m);
  const done = [...dpPrior, ...site.trainer.privacyPhases];
  const steps = dpPrior.length === 0 ? stepsLeft(plan, done, wanted) : stepsWithinBudget(plan, done, wanted, m.privacy!.dp!);
  const r = steps > 0 ? await site.trainer.trainSteps(site.train, steps, { onStep: guard }) : { loss: Number.NaN, steps: 0 };
  const all = [...dpPrior, ...site.trainer.privacyPhases];
  return { ...r, epsilon: spentOf(all, m.privacy!.dp!.delta), dpPhases: all, dpCapped: dpPrior.length > 0 && steps < wanted };
}

let cancelFlag: Int32Array | undefined;
/** The hash of the consortium standardiser applied to this worker's data (applied once). */
let standardisedWith: string | undefined;
let memoryBudget = Number.POSITIVE_INFINITY;
const cancelled = (): boolean => cancelFlag !== undefined && Atomics.load(cancelFlag, 0) === 1;

/** Between two steps (never during an onnxruntime run): stop when the daemon cancels or the memory budget is exceeded. */
function guard(step: number): void {
  if (cancelled()) throw new CohortError('CANCELLED', 'training stopped by the daemon');
  const h = getHeapStatistics();
  const used = h.used_heap_size + h.external_memory;
  if (used > memoryBudget) {
    throw new CohortError('WORKER_MEMORY_LIMIT', `the training worker uses ${(used / 1024 ** 2).toFixed(0)} MiB at step ${step}, above its budget of ${(memoryBudget / 1024 ** 2).toFixed(0)} MiB`);
  }
}

async function localWork(site: Site, m: ScenarioManifest, trainer = site.trainer): Promise<{ loss: number; steps: number }> {
  const opts = { onStep: guard };
  if (m.training.localSteps === undefined && m.training.localEpochs === 1) return trainer.trainEpoch(site.train, opts);
  const perEpoch = Math.ceil(site.train.size / Math.min(m.training.batchSize, site.train.size));
  const steps = m.training.localSteps ?? Math.max(1, Math.round(m.training.localEpochs * perEpoch));
  if (steps <= STEP_CHUNK) return trainer.trainSteps(site.train, steps, opts);
  // streamed: one chunk's batches at a time (a whole run of local epochs would list every batch up front)
  let lossSum = 0;
  for (let done = 0; done < steps;) {
    const r = await trainer.trainSteps(site.train, Math.min(STEP_CHUNK, steps - done), opts);
    lossSum += r.loss * r.steps;
    done += r.steps;
  }
  return { loss: lossSum / steps, steps };
}

/** The metrics of `trainer` on the held-out part; with `intervals`, its n and 95% intervals too (seeded by the manifest). */
async function evaluateOn(trainer: Trainer, test: SampleSet, m: ScenarioManifest, intervals?: boolean): Promise<{ metrics: Metrics; evaluation?: Evaluation }> {
  if (!intervals) return { metrics: inTargetUnits(await trainer.evaluate(test)) };
  const r = await trainer.evaluateWithIntervals(test, { seed: m.training.seed, resamples: 1000 });
  const mae = r.evaluation?.scores['mae'];
  const evaluation = r.evaluation && mae && targetScale
    ? { ...r.evaluation, scores: { ...r.evaluation.scores, mae: { ...mae, value: mae.value * targetScale.std, lo: mae.lo * targetScale.std, hi: mae.hi * targetScale.std } } }
    : r.evaluation;
  return { ...r, metrics: inTargetUnits(r.metrics), ...(evaluation ? { evaluation } : {}) };
}

async function handle(site: Site, init: WorkerInit, req: WorkerRequest): Promise<WorkerReply> {
  const t = site.trainer;
  switch (req.op) {
    case 'train': {
      t.setParameters(req.params);
      if (init.manifest.training.proximalMu > 0) t.setProximalAnchor(req.params);
      const r: { loss: number; steps: number; epsilon?: number; dpPhases?: DpPhase[]; dpCapped?: boolean } = dpPlan ? await dpWork(site, init.manifest, dpPlan) : await localWork(site, init.manifest);
      const h = getHeapStatistics();
      return { rid: req.rid, op: 'trained', params: t.getParameters(), loss: r.loss, steps: r.steps, memoryBytes: h.used_heap_size + h.external_memory,
        ...(r.epsilon !== undefined ? { epsilon: r.epsilon, dpPhases: r.dpPhases, dpCapped: r.dpCapped } : {}) };
    }
    case 'dpPrior': {
      if (!dpPlan) throw new CohortError('DP_RESUME', 'DP steps before a restart were handed to a worker whose scenario has no privacy.dp');
      if (t.privacyPhases.length > 0) throw new CohortError('DP_RESUME', 'the DP steps before a restart must reach the worker before it trains');
      dpPrior = req.phases.map((p) => ({ ...p }));
      return { rid: req.rid, op: 'dpResumed', epsilon: spentOf(dpPrior, init.manifest.privacy!.dp!.delta) };
    }
    case 'evaluate':
      t.setParameters(req.params);
      return { rid: req.rid, op: 'metrics', ...(await evaluateOn(t, site.test, init.manifest, req.intervals)) };
    case 'localOnly': {
      // the baseline a hospital would get alone: same model, same local work per round, no averaging
      const alone = await Trainer.create(site.cfg, site.train);
      for (let r = 0; r < req.rounds; r++) await localWork(site, init.manifest, alone);
      const result = await evaluateOn(alone, site.test, init.manifest, req.intervals);
      await alone.dispose();
      return { rid: req.rid, op: 'metrics', ...result };
    }
    case 'export':
      t.setParameters(req.params);
      return { rid: req.rid, op: 'bytes', bytes: portableModel(t.exportOnnx(), init, req.provenance) };
    case 'checkpoint':
      t.setParameters(req.params);
      return { rid: req.rid, op: 'bytes', bytes: t.checkpoint() };
    case 'restore':
      t.restore(req.bytes);
      return { rid: req.rid, op: 'restored', params: t.getParameters() };
    case 'standardise':
      // once, on the raw parts: the runner sends the agreed standardiser before the first round (a restart makes a new worker)
      if (standardisedWith && standardisedWith !== req.standardiser.hash) throw new CohortError('STANDARDISER_TWICE', 'this worker\'s data is already standardised with another standardiser');
      if (!standardisedWith) {
        ({ train: site.train, test: site.test } = applyScale(site, req.standardiser));
        standardisedWith = req.standardiser.hash;
        if (exportInput) exportInput = { ...exportInput, standardiser: req.standardiser };
      }
      return { rid: req.rid, op: 'standardised', hash: req.standardiser.hash };
    case 'exit':
      process.exit(0);
  }
}

function transferList(r: WorkerReply): ArrayBuffer[] {
  if ('params' in r) return [r.params.buffer as ArrayBuffer];
  if ('bytes' in r) return [r.bytes.buffer as ArrayBuffer];
  return [];
}

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('worker.ts runs as a worker thread');
  const init = workerData as WorkerInit;
  if (init.cancel) cancelFlag = new Int32Array(init.cancel);
  if (init.memoryBudgetBytes) memoryBudget = init.memoryBudgetBytes;
  let site: Site;
  let inputScale: InputScale;
  try {
    const loaded = loadSite(init);
    const { train, test } = loaded;
    inputScale = loaded.scale;
    dpPlan = dpPlanOf(init.manifest, train.size);
    const cfg = trainConfig(init, dpPlan);
    site = { train, test, cfg, trainer: await Trainer.create(cfg, train) };
  } catch (e) {
    port.postMessage({ rid: 0, op: 'error', message: (e as Error).message, code: (e as { code?: string }).code, hint: (e as { hint?: string }).hint });
    return;
  }
  const ready: WorkerReply = { rid: 0, op: 'ready', layoutHash: site.trainer.layout.hash, sampleCount: site.train.size, testCount: site.test.size, provider: site.trainer.provider, params: site.trainer.getParameters(), inputScale, ...(dpPlan ? { dp: dpPlan } : {}) };
  port.postMessage(ready, transferList(ready));
  const reportGraphs = graphReporter(site.trainer, port);
  reportGraphs();
  // one request at a time: the Trainer is not re-entrant
  let chain = Promise.resolve();
  port.on('message', (req: WorkerRequest) => {
    chain = chain.then(async () => {
      let reply: WorkerReply;
      try {
        reply = await handle(site, init, req);
      } catch (e) {
        reply = { rid: req.rid, op: 'error', message: (e as Error).message, code: (e as { code?: string }).code };
      }
      port.postMessage(reply, transferList(reply));
      reportGraphs();   // a request may have built a new graph (the fused loop, eval): the runner keeps the latest list
      // over budget: leave, so that the memory goes back at once; the daemon reports this peer's run as failed
      if (reply.op === 'error' && reply.code === 'WORKER_MEMORY_LIMIT') process.exit(MEMORY_EXIT_CODE);
    });
  });
}

/** Posts the trainer's graph reports when they differ from the last ones posted (the daemon shows them in `cohort status`). */
function graphReporter(trainer: Trainer, port: MessagePort): () => void {
  let last = '';
  return () => {
    const graphs = trainer.graphReports;
    const key = JSON.stringify(graphs);
    if (key === last) return;
    last = key;
    port.postMessage({ rid: 0, op: 'graphs', graphs } satisfies WorkerReply);
  };
}

void main();
