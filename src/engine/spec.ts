/**
 * Declarative specs (zod): models (the zoo), losses and optimizers. They sit inside scenario manifests, so they are
 * plain JSON and validated at the boundary. Parse user input with parseModelSpec / parseLossSpec / parseOptimizerSpec:
 * they turn zod issues into CohortError('BAD_MODEL_SPEC' | 'BAD_LOSS_SPEC' | 'BAD_OPTIMIZER_SPEC') with a hint.
 *
 * Model types: mlp, cnn2d, cnn3d, unet2d, unet3d, multitask-unet, multimodal, sequential (a list of layers).
 * Every model names the SampleSet input it reads (`input`, default: the set's only input; multimodal: `image` + `tabular`).
 */
import { z } from 'zod';
import { CohortError } from '../util/errors.ts';

const pos = z.number().int().positive();
const activation = z.enum(['relu', 'leakyRelu', 'tanh', 'sigmoid']);
/** batch: BatchNorm with running statistics (kept per peer, not averaged; FedBN-style); instance/group: no running state. */
const norm = z.enum(['none', 'instance', 'group', 'batch']);
const dropout = z.number().min(0).lt(1).default(0);

export const LAYER_TYPES = ['dense', 'conv', 'relu', 'leakyRelu', 'tanh', 'sigmoid', 'maxPool', 'avgPool', 'globalAvgPool',
  'flatten', 'instanceNorm', 'groupNorm', 'batchNorm', 'dropout', 'offsets'] as const;

export const layerSpecSchema = z.discriminatedUnion('type', [
  /** bias: false drops the layer's bias (e.g. the linear predictor before `offsets`, whose offsets already carry one). */
  z.object({ type: z.literal('dense'), units: pos, bias: z.boolean().default(true) }).strict(),
  z.object({ type: z.literal('conv'), channels: pos, kernel: pos.default(3), stride: pos.default(1), padding: z.number().int().min(0).optional() }).strict(),
  z.object({ type: z.literal('relu') }).strict(),
  z.object({ type: z.literal('leakyRelu'), alpha: z.number().default(0.01) }).strict(),
  z.object({ type: z.literal('tanh') }).strict(),
  z.object({ type: z.literal('sigmoid') }).strict(),
  z.object({ type: z.literal('maxPool'), size: pos.default(2) }).strict(),
  z.object({ type: z.literal('avgPool'), size: pos.default(2) }).strict(),
  z.object({ type: z.literal('globalAvgPool') }).strict(),
  z.object({ type: z.literal('flatten') }).strict(),
  z.object({ type: z.literal('instanceNorm') }).strict(),
  z.object({ type: z.literal('groupNorm'), groups: pos.default(4) }).strict(),
  z.object({ type: z.literal('batchNorm') }).strict(),
  z.object({ type: z.literal('dropout'), ratio: z.number().min(0).lt(1) }).strict(),
  /**
   * One value per sample [B, 1] -> [B, units]: z_k = x + init + b_k with a learnable offset b_k per unit (starting at 0,
   * so the offsets start at `init`: for a hazard head, a prior logit of the per-interval hazard fixed in the manifest).
   * With `dense {units: 1, bias: false}` before it, a proportional-hazards head for `discrete-hazard` (nnet-survival's
   * parametrisation: one shared linear predictor plus one baseline logit per interval).
   */
  z.object({ type: z.literal('offsets'), units: pos, init: z.number().finite().default(0) }).strict(),
]);
export type LayerSpec = z.infer<typeof layerSpecSchema>;

const input = z.string().min(1).optional();

const mlp = z.object({
  type: z.literal('mlp'), input,
  hidden: z.array(pos).default([64]),
  activation: activation.default('relu'),
  /** Dropout after each hidden layer (seeded; training only). */
  dropout,
  /** Output units: classes for classification (>= 2), 1 for regression or a single binary logit. */
  classes: pos,
}).strict();

const cnn = (t: 'cnn2d' | 'cnn3d') => z.object({
  type: z.literal(t), input,
  channels: z.array(pos).min(1).default([16, 32]),
  kernel: pos.default(3),
  norm: norm.default('none'),
  pool: z.enum(['max', 'avg']).default('max'),
  hidden: z.array(pos).default([]),
  /** Dropout on the pooled features and after each hidden layer (seeded; training only). */
  dropout,
  classes: pos,
}).strict();

const unetFields = {
  input,
  /** Channels of the first level; doubled at each level down. */
  base: pos.default(8),
  /** Number of down-sampling steps (spatial size must be divisible by 2^depth). */
  depth: pos.default(2),
  norm: norm.default('instance'),
  groups: pos.default(4),
};
const unet = (t: 'unet2d' | 'unet3d') => z.object({
  type: z.literal(t), ...unetFields,
  /** 1 = binary mask (sigmoid); >= 2 = classes per voxel (softmax). */
  classes: pos.default(1),
}).strict();

const multitask = z.object({
  type: z.literal('multitask-unet'), ...unetFields,
  dims: z.union([z.literal(2), z.literal(3)]).default(2),
  classes: pos.default(1),
  /** One binary head per marker, from the bottleneck (e.g. IDH, 1p/19q, MGMT, grade). */
  markers: z.array(z.string().min(1)).min(1).default(['idh', '1p19q', 'mgmt', 'grade']),
  markerHidden: pos.default(16),
}).strict();

const multimodal = z.object({
  type: z.literal('multimodal'),
  image: z.object({
    input: z.string().default('image'),
    dims: z.union([z.literal(2), z.literal(3)]).default(2),
    channels: z.array(pos).min(1).default([8, 16]),
    kernel: pos.default(3),
  }).strict().default({ input: 'image', dims: 2, channels: [8, 16], kernel: 3 }),
  tabular: z.object({
    input: z.string().default('tabular'),
    hidden: z.array(pos).default([16]),
  }).strict().default({ input: 'tabular', hidden: [16] }),
  hidden: z.array(pos).default([32]),
  classes: pos,
}).strict();

const sequential = z.object({ type: z.literal('sequential'), input, layers: z.array(z.unknown()).min(1) }).strict();

export const modelSpecSchema = z.discriminatedUnion('type', [
  mlp, cnn('cnn2d'), cnn('cnn3d'), unet('unet2d'), unet('unet3d'), multitask, multimodal, sequential,
]);
/** What a user writes (defaults optional). */
export type ModelSpec = z.input<typeof modelSpecSchema>;
/** After parsing: every default filled in. */
export type ResolvedModelSpec = z.infer<typeof modelSpecSchema>;
export const MODEL_TYPES = ['mlp', 'cnn2d', 'cnn3d', 'unet2d', 'unet3d', 'multitask-unet', 'multimodal', 'sequential'] as const;

export const lossSpecSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('cross-entropy'), classWeights: z.array(z.number().positive()).optional() }).strict(),
  z.object({ type: z.literal('bce') }).strict(),
  z.object({ type: z.literal('dice'), smooth: z.number().positive().default(1) }).strict(),
  z.object({ type: z.literal('dice-ce'), smooth: z.number().positive().default(1), ceWeight: z.number().min(0).default(1) }).strict(),
  z.object({ type: z.literal('mse') }).strict(),
  /** Multi-task U-Net: Dice + CE on the mask plus markerWeight x BCE on the marker heads (unknown markers masked). */
  z.object({ type: z.literal('multitask'), smooth: z.number().positive().default(1), markerWeight: z.number().min(0).default(1) }).strict(),
  /** Survival: negative Cox partial log-likelihood of a single-output model's risk score (Breslow ties), per minibatch; targets `time`, `event`. */
  z.object({ type: z.literal('cox') }).strict(),
  /**
   * Survival, discrete time (logistic hazard, nnet-survival): one logit per follow-up interval, the loss a sum of per-patient
   * terms (so DP-SGD can train it). `cuts`: the K interval ends in the time column's units, fixed here (never from the data);
   * the model has K outputs. Risk score: cumulative hazard at the last cut (src/engine/survival-discrete.ts).
   */
  z.object({ type: z.literal('discrete-hazard'), cuts: z.array(z.number().positive().finite()).min(1).max(200)
    .refine((c) => c.every((v, i) => i === 0 || v > c[i - 1]!), { message: 'interval ends (cuts) must increase' }) }).strict(),
]);
export type LossSpec = z.input<typeof lossSpecSchema>;
export type ResolvedLossSpec = z.infer<typeof lossSpecSchema>;

const schedule = z.object({
  warmupSteps: z.number().int().min(0).default(0),
  /** Cosine decay from lr to minLr over this many steps (after warm-up); omitted = constant. */
  cosineSteps: z.number().int().positive().optional(),
  minLr: z.number().min(0).default(0),
}).strict();

const common = {
  weightDecay: z.number().min(0).default(0),
  /** Clip the global gradient norm to this value. */
  clipNorm: z.number().positive().optional(),
  schedule: schedule.optional(),
};
export const optimizerSpecSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('sgd'), lr: z.number().positive().default(0.01), momentum: z.number().min(0).max(1).default(0),
    nesterov: z.boolean().default(false), ...common }).strict(),
  z.object({ type: z.literal('adam'), lr: z.number().positive().default(1e-3), beta1: z.number().min(0).max(1).default(0.9),
    beta2: z.number().min(0).max(1).default(0.999), eps: z.number().positive().default(1e-8), ...common }).strict(),
  z.object({ type: z.literal('adamw'), lr: z.number().positive().default(1e-3), beta1: z.number().min(0).max(1).default(0.9),
    beta2: z.number().min(0).max(1).default(0.999), eps: z.number().positive().default(1e-8), ...common,
    weightDecay: z.number().min(0).default(0.01) }).strict(),
]);
export type OptimizerSpec = z.input<typeof optimizerSpecSchema>;
export type ResolvedOptimizerSpec = z.infer<typeof optimizerSpecSchema>;

function describeIssues(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

export function parseModelSpec(raw: unknown): ResolvedModelSpec {
  const type = (raw as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !(MODEL_TYPES as readonly string[]).includes(type)) {
    throw new CohortError('BAD_MODEL_SPEC', `unknown model type ${JSON.stringify(type)}`, `use one of: ${MODEL_TYPES.join(', ')}`);
  }
  const r = modelSpecSchema.safeParse(raw);
  if (!r.success) throw new CohortError('BAD_MODEL_SPEC', `invalid ${type} model spec: ${describeIssues(r.error)}`, 'fix the model spec fields named above');
  if (r.data.type === 'sequential') parseLayers(r.data.layers);
  return r.data;
}

/** The layers of a sequential model, each validated; an unknown layer type names its position and the known types. */
export function parseLayers(raw: readonly unknown[]): LayerSpec[] {
  return raw.map((l, i) => {
    const type = (l as { type?: unknown } | null)?.type;
    if (typeof type !== 'string' || !(LAYER_TYPES as readonly string[]).includes(type)) {
      throw new CohortError('BAD_MODEL_SPEC', `unknown layer ${JSON.stringify(type)} at layers[${i}]`, `known layers: ${LAYER_TYPES.join(', ')}`);
    }
    const r = layerSpecSchema.safeParse(l);
    if (!r.success) throw new CohortError('BAD_MODEL_SPEC', `invalid ${type} layer at layers[${i}]: ${describeIssues(r.error)}`, 'fix the layer fields named above');
    return r.data;
  });
}

export function parseLossSpec(raw: unknown): ResolvedLossSpec {
  const r = lossSpecSchema.safeParse(raw);
  if (!r.success) throw new CohortError('BAD_LOSS_SPEC', `invalid loss spec: ${describeIssues(r.error)}`, 'loss types: cross-entropy, bce, dice, dice-ce, mse, multitask, cox');
  return r.data;
}

export function parseOptimizerSpec(raw: unknown): ResolvedOptimizerSpec {
  const r = optimizerSpecSchema.safeParse(raw);
  if (!r.success) throw new CohortError('BAD_OPTIMIZER_SPEC', `invalid optimizer spec: ${describeIssues(r.error)}`, 'optimizer types: sgd, adam, adamw');
  return r.data;
}
