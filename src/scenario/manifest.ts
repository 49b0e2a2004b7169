/**
 * The scenario manifest (versioned, zod): everything a peer needs to take part in a training scenario.
 *   task · data (selector + preprocessing, interpreted by the data layer) · model (the engine's ModelSpec) · loss · optimizer ·
 *   training (local steps/epochs, batch, FedProx mu, seed) · averaging (rule + settings + topology) · compression ·
 *   rounds (max + stopping rule) · evaluation · simulation (defaults for `cohort sim` only; ignored by real peers)
 *
 *   parseManifest(raw, source?)  -> ScenarioManifest (defaults filled) | CohortError('BAD_MANIFEST')
 *   loadManifest(path)           -> reads a JSON file and parses it
 *   manifestShape / scenarioManifestSchema: extend them (signing, approval, lifecycle live in other files of src/scenario/).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { lossSpecSchema, modelSpecSchema, optimizerSpecSchema } from '../engine/spec.ts';
import { ALGORITHMS } from '../averaging/node.ts';
import { CODEC_NAMES } from '../averaging/compression.ts';
import { AGGREGATORS, aggregatorConflict, type AggregatorName } from '../averaging/robust.ts';
import { CohortError } from '../util/errors.ts';
import { checkIntensityStandardize, minCountOf, standardizeMode } from '../data/standardiser-stats.ts';

export const MANIFEST_VERSION = 1;

/** JSON-only values (no functions, no undefined): the data layer's preprocessing block stays opaque but serialisable. */
const jsonValue: z.ZodType<unknown> = z.lazy(() =>
  z.union([z.string().max(10_000), z.number(), z.boolean(), z.null(), z.array(jsonValue).max(10_000), z.record(z.string().max(200), jsonValue)]),
);

export const taskSchema = z.object({
  kind: z.enum(['classification', 'segmentation', 'regression', 'multitask', 'survival']),
  /**
   * The metric that decides convergence, reports and the stopping rule (higher is better, except loss). c_index: survival only;
   * r2 (coefficient of determination of the predicted value): regression only (the loss is then `mse`, the model has one output).
   */
  metric: z.enum(['accuracy', 'balancedAccuracy', 'auc', 'dice', 'iou', 'loss', 'c_index', 'r2']),
  classes: z.number().int().min(1).optional(),
  /** Survival: the follow-up time column and the event column (1 = event observed, 0 = censored); the loss is then `cox`. */
  time: z.string().min(1).max(200).optional(),
  event: z.string().min(1).max(200).optional(),
}).strict().superRefine((t, ctx) => {
  const survival = t.kind === 'survival';
  if (survival && (!t.time || !t.event)) ctx.addIssue({ code: 'custom', message: 'a survival task names its time and event columns (task.time, task.event)' });
  if (!survival && (t.time || t.event)) ctx.addIssue({ code: 'custom', message: 'task.time and task.event belong to survival tasks' });
  if (survival !== (t.metric === 'c_index') && t.metric !== 'loss') ctx.addIssue({ code: 'custom', message: `metric ${t.metric} does not fit a ${t.kind} task (survival: c_index or loss)` });
  const regression = t.kind === 'regression';
  if (regression !== (t.metric === 'r2') && t.metric !== 'loss' && !survival) ctx.addIssue({ code: 'custom', message: `metric ${t.metric} does not fit a ${t.kind} task (regression: r2 or loss)` });
});

export const dataSchema = z.object({
  /** Which local dataset a peer uses: matched against its registry (dataset name, kind, modality, tags). */
  selector: z.object({
    dataset: z.string().min(1).max(200).optional(),
    kind: z.enum(['tabular', 'image', 'volume', 'multimodal']).optional(),
    modality: z.string().max(50).optional(),
    tags: z.array(z.string().max(50)).max(50).optional(),
    /** Simulation only: a file path (CSV) or a generator name (synthetic:...). */
    source: z.string().max(1000).optional(),
    label: z.string().max(200).optional(),
    /** Columns never used as features (besides identifier-like ones, which the data layer drops by itself). Honoured by the
     *  simulator (`cohort sim`); real peers do not read it yet. */
    ignore: z.array(z.string().min(1).max(200)).max(1000).optional(),
    /** The label's classes in index order, the same at every site: a site that sees only some classes (label skew) still
     *  encodes class k as classNames[k]. */
    classNames: z.array(z.string().min(1).max(200)).min(2).max(1000).optional(),
  }).strict(),
  /** Interpreted by src/data (normalisation, resampling, radiomics, ...): validated here only as JSON. */
  preprocessing: z.record(z.string().max(200), jsonValue).default({}),
  /** Share of each peer's data held out for evaluation. */
  holdout: z.number().gt(0).lt(1).default(0.2),
  /**
   * A natural split instead of a random partition: one simulated peer per distinct value of the column `by`
   * (e.g. "region"); `train` names a fixed train/test column and the value that marks training rows (e.g. { "column": "split",
   * "value": "train" }: every other row is test). Without `train`, each site holds out `holdout` of its rows. Both columns are
   * left out of the features; `simulation.peers` and `simulation.partition` do not apply. Real peers hold one site each: they
   * ignore `by` (never a feature) and use the `train` column, when their table has it, as their own train/test split.
   *   "split": { "by": "region", "train": { "column": "split", "value": "train" } }
   */
  split: z.object({
    by: z.string().min(1).max(200),
    train: z.object({ column: z.string().min(1).max(200), value: z.string().max(200) }).strict().optional(),
  }).strict().optional(),
}).strict();

export const trainingSchema = z.object({
  batchSize: z.number().int().positive().default(32),
  /** Local work between exchanges: `localSteps` minibatch steps, or `localEpochs` passes over the local data. */
  localSteps: z.number().int().positive().optional(),
  localEpochs: z.number().positive().default(1),
  /** FedProx proximal term mu (0: off). */
  proximalMu: z.number().min(0).default(0),
  seed: z.number().int().min(0).default(1),
}).strict();

export const topologySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('complete') }).strict(),
  z.object({ kind: z.literal('ring') }).strict(),
  z.object({ kind: z.literal('random-regular'), degree: z.number().int().positive().default(4) }).strict(),
  z.object({ kind: z.literal('time-varying'), degree: z.number().int().positive().default(2) }).strict(),
  /** A random d-regular graph with d = round(2 ln n) (averaging/mixing.ts expanderDegree). */
  z.object({ kind: z.literal('expander') }).strict(),
  /** Two cliques joined by one edge (a stress test for robust aggregation). */
  z.object({ kind: z.literal('dumbbell') }).strict(),
]);

export const averagingSchema = z.object({
  algorithm: z.enum(ALGORITHMS as unknown as [string, ...string[]]).transform((a) => a as (typeof ALGORITHMS)[number]),
  topology: topologySchema.default({ kind: 'random-regular', degree: 4 }),
  weighting: z.enum(['uniform', 'samples']).default('samples'),
  /** Push-sum out-neighbours per push. */
  fanout: z.number().int().positive().default(1),
  /** Epidemic Learning: peers per push (s). */
  s: z.number().int().positive().default(3),
  /**
   * Epidemic Learning: each peer draws its s receivers at random ("random", the paper's rule), or every draw is public and
   * derived from the scenario id, round and sender ("public", src/averaging/secure/receivers.ts): needed for secure averaging.
   */
  receivers: z.enum(['random', 'public']).default('random'),
  /** CHOCO consensus step size gamma. */
  gamma: z.number().gt(0).max(1).default(0.5),
  /** Round length and the straggler deadline within it (ms). */
  roundMs: z.number().positive().default(10_000),
  deadlineMs: z.number().positive().optional(),
  /** Robust aggregation at the mix (averaging/robust.ts): mean (plain), clipped (ClippedGossip), trimmed-mean, median. */
  aggregator: z.enum(AGGREGATORS as unknown as [string, ...string[]], { error: `averaging.aggregator must be one of ${AGGREGATORS.join(', ')}` })
    .transform((a) => a as AggregatorName).default('mean'),
  /** Share of neighbours clipped (adaptive radius) or trimmed per side: [0, 0.5). */
  trim: z.number().min(0).lt(0.5, 'averaging.trim must be below 0.5').default(0.2),
  /** A fixed clipping radius (L2) instead of the adaptive one. */
  clipRadius: z.number().positive().optional(),
}).strict();

export const compressionSchema = z.object({
  codec: z.enum(CODEC_NAMES as unknown as [string, ...string[]]).transform((c) => c as (typeof CODEC_NAMES)[number]).default('f32'),
  blockSize: z.number().int().positive().default(256),
  topkFraction: z.number().gt(0).max(1).default(0.1),
}).strict();

export const roundsSchema = z.object({
  max: z.number().int().positive(),
  stopping: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('max-rounds') }).strict(),
    z.object({ kind: z.literal('target'), value: z.number() }).strict(),
    z.object({ kind: z.literal('plateau'), patience: z.number().int().positive(), minDelta: z.number().min(0).default(0.001) }).strict(),
  ]).default({ kind: 'max-rounds' }),
}).strict();

export const evaluationSchema = z.object({
  every: z.number().int().positive().default(1),
  metrics: z.array(z.string().max(50)).default([]),
  /** Report the local-only baseline next to the result (costs one local model per peer). */
  compareLocalOnly: z.boolean().default(true),
}).strict();

export const simulationSchema = z.object({
  peers: z.number().int().min(2).default(8),
  partition: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('iid') }).strict(),
    z.object({ kind: z.literal('dirichlet'), alpha: z.number().positive().default(0.5) }).strict(),
    z.object({ kind: z.literal('quantity'), alpha: z.number().positive().default(1) }).strict(),
    z.object({ kind: z.literal('feature-shift'), strength: z.number().min(0).default(0.5) }).strict(),
  ]).default({ kind: 'dirichlet', alpha: 0.5 }),
  latencyMs: z.number().min(0).default(20),
  bandwidthMBps: z.number().positive().default(10),
  loss: z.number().min(0).max(0.9).default(0),
  /** Fraction of peers that leave at 1/3 of the run and come back at 2/3. */
  churn: z.number().min(0).max(0.9).default(0),
  stragglers: z.object({ fraction: z.number().min(0).max(1).default(0), slowdown: z.number().min(1).default(4) }).strict().default({ fraction: 0, slowdown: 4 }),
  /** Virtual ms per local training step. */
  stepMs: z.number().min(0).default(20),
}).strict();

/**
 * Privacy (docs/privacy.md): `secure` masks every model a peer sends so that only the weighted sum its neighbour computes is
 * visible (pairwise masks, fixed point mod 2^32; D-PSGD); `dp` trains with DP-SGD to a sample-level (epsilon, delta) budget:
 * each patient's gradient clipped to `clip`, Gaussian noise whose multiplier each peer solves from its own data size and the
 * planned steps (RDP accountant, src/privacy/accountant.ts).
 */
export const privacySchema = z.object({
  secure: z.boolean().default(false),
  dp: z.object({
    epsilon: z.number({ error: 'privacy.dp.epsilon must be a number' }).refine((e) => e > 0 && Number.isFinite(e), 'epsilon must be a positive finite number (e.g. 1, 3 or 8)'),
    delta: z.number().gt(0, 'delta must be in (0, 1), e.g. 1e-5').lt(1, 'delta must be in (0, 1), e.g. 1e-5').default(1e-5),
    clip: z.number({ error: 'privacy.dp.clip is required: the L2 norm each patient\'s gradient is clipped to (e.g. 1)' }).positive('clip must be positive'),
    /** Rounds that train under DP (the budget is planned over them); later rounds only average: post-processing, no privacy cost. */
    trainRounds: z.number().int('privacy.dp.trainRounds must be a whole number of rounds').min(1, 'privacy.dp.trainRounds must be at least 1').optional(),
  }).strict().optional(),
}).strict();

/** Rules that can mask: the receiver computes a weighted sum of its neighbours' models, with weights both ends know. */
export const MASKABLE_ALGORITHMS = ['dpsgd', 'epidemic'] as const;

export const manifestShape = {
  version: z.literal(MANIFEST_VERSION),
  /** A short slug (the scenario's id on the network is the hash of the signed manifest, see signing.ts). */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes, at most 63 characters'),
  title: z.string().min(1).max(200),
  description: z.string().max(5000).optional(),
  task: taskSchema,
  data: dataSchema,
  model: modelSpecSchema,
  loss: lossSpecSchema.optional(),
  optimizer: optimizerSpecSchema,
  training: trainingSchema.default(() => trainingSchema.parse({})),
  averaging: averagingSchema,
  compression: compressionSchema.default(() => compressionSchema.parse({})),
  rounds: roundsSchema,
  evaluation: evaluationSchema.default(() => evaluationSchema.parse({})),
  simulation: simulationSchema.default(() => simulationSchema.parse({})),
  privacy: privacySchema.optional(),
};

export const scenarioManifestSchema = z.object(manifestShape).strict();

/** What an author writes (defaults optional). */
export type ScenarioManifestInput = z.input<typeof scenarioManifestSchema>;
/** After parsing: every default filled in. */
export type ScenarioManifest = z.infer<typeof scenarioManifestSchema>;

export function parseManifest(raw: unknown, source = 'manifest'): ScenarioManifest {
  if (raw && typeof raw === 'object' && 'version' in raw && (raw as { version: unknown }).version !== MANIFEST_VERSION) {
    throw new CohortError('MANIFEST_VERSION', `${source}: manifest version ${String((raw as { version: unknown }).version)} is not supported`,
      `this Cohort reads version ${MANIFEST_VERSION}; upgrade Cohort or rewrite the manifest`);
  }
  const r = scenarioManifestSchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
    throw new CohortError('BAD_MANIFEST', `${source} is not a valid scenario manifest: ${issues}`, 'see scenarios/*.json and docs/averaging.md for the fields');
  }
  const m = r.data;
  if (m.averaging.deadlineMs !== undefined && m.averaging.deadlineMs > m.averaging.roundMs) {
    throw new CohortError('BAD_MANIFEST', `${source}: averaging.deadlineMs (${m.averaging.deadlineMs}) exceeds roundMs (${m.averaging.roundMs})`, 'the deadline falls inside a round');
  }
  if (m.compression.codec === 'topk' && m.averaging.algorithm !== 'choco') {
    throw new CohortError('BAD_MANIFEST', `${source}: top-k compression needs averaging.algorithm "choco"`, 'use int8 or fp16 with the other rules');
  }
  const robust = aggregatorConflict(m.averaging.algorithm, m.averaging.aggregator, { secure: (m as { privacy?: { secure?: boolean } }).privacy?.secure === true });
  if (robust) throw new CohortError('BAD_MANIFEST', `${source}: ${robust.message}`, robust.hint);
  const why = privacyConflict(m);
  if (why) throw new CohortError('BAD_MANIFEST', `${source}: inconsistent privacy settings: ${why.message}`, why.hint);
  // the input scale: refused here, at launch and validate, rather than in every peer's worker
  standardizeMode(m.data.preprocessing);
  minCountOf(m.data.preprocessing);
  checkIntensityStandardize(m.data.preprocessing);
  return m;
}

/** Why a manifest's privacy block cannot be honoured with its other settings (also checked for `cohort sim` overrides). */
export function privacyConflict(m: Pick<ScenarioManifest, 'privacy' | 'averaging' | 'compression' | 'task' | 'loss'>): { message: string; hint: string } | null {
  const p = m.privacy;
  if (!p) return null;
  if (p.secure) {
    const a = m.averaging.algorithm;
    if (!(MASKABLE_ALGORITHMS as readonly string[]).includes(a)) {
      const why = a === 'gossip' ? 'gossip learning sends one model to one peer, so no sum hides it'
        : a === 'pushsum' ? 'push-sum shares change weights every push, so pairwise masks cannot cancel in a fixed weighted sum'
          : 'CHOCO sends compressed differences against public copies that every neighbour must read in the clear';
      return { message: `secure averaging with algorithm "${a}": ${why}`, hint: `use averaging.algorithm ${MASKABLE_ALGORITHMS.map((x) => `"${x}"`).join(' or ')}, or set privacy.secure to false` };
    }
    if (a === 'epidemic' && m.averaging.receivers !== 'public') {
      return { message: 'secure averaging with Epidemic Learning and private random receivers: a receiver must know its senders in advance for their masks to cancel',
        hint: 'set averaging.receivers to "public" (each round\'s receivers derived from the scenario id: who sends to whom becomes predictable; docs/privacy.md)' };
    }
    if (m.compression.codec !== 'f32') {
      return { message: `secure averaging with codec "${m.compression.codec}": masks cancel only in exact fixed-point arithmetic`, hint: 'use compression.codec "f32" (the masked model is 4 bytes per value)' };
    }
    const t = m.averaging.topology;
    if ((t.kind === 'random-regular' || t.kind === 'time-varying') && t.degree < 2) {
      return { message: `secure averaging on a degree-${t.degree} graph: a neighbour with a single sender would see that sender's model`, hint: 'use a topology of degree 2 or more (ring, complete, random-regular degree >= 2)' };
    }
  }
  if (p.dp && (m.loss?.type === 'cox' || (m.task.kind === 'survival' && m.loss?.type !== 'discrete-hazard'))) {
    return { message: 'DP-SGD with the Cox loss: the partial likelihood is not a sum of per-patient terms, so per-patient clipping bounds nothing',
      hint: 'use loss {"type": "discrete-hazard", "cuts": [...]} (discrete-time survival, one term per patient; model with one output per interval), or drop privacy.dp' };
  }
  return null;
}

export function loadManifest(path: string): ScenarioManifest {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CohortError('MANIFEST_NOT_FOUND', `cannot read scenario manifest ${path}: ${(e as Error).message}`, 'pass a path such as scenarios/wdbc-radiomics.json');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CohortError('BAD_MANIFEST', `${path} is not JSON: ${(e as Error).message}`, 'fix the JSON syntax');
  }
  return parseManifest(raw, path);
}
