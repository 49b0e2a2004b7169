/**
 * The engine: graph builder + autodiff (./graph, ./autodiff), and the training layer built on them:
 * model zoo from JSON specs, losses, optimizers, graph variants, ORT session cache with provider fallback, Trainer.
 */
export * from './graph/index.ts';
export { gradients } from './autodiff/index.ts';
export { Trainer, type TrainConfig, type StepOptions } from './trainer.ts';
export { trainLocal, type LocalTrainOptions, type LocalTrainResult } from './local.ts';
export type { Metrics, Evaluation } from './evaluate.ts';
export { modelSpecSchema, lossSpecSchema, optimizerSpecSchema, parseModelSpec, parseLossSpec, parseOptimizerSpec,
  type ModelSpec, type LossSpec, type OptimizerSpec, type ResolvedModelSpec, type ResolvedLossSpec, type ResolvedOptimizerSpec } from './spec.ts';
export type { ParamLayout, LayoutEntry } from './layout.ts';
export { makeLayout } from './layout.ts';
export { type ExecutionProviderName, DEFAULT_PROVIDERS } from './providers.ts';
export { releaseSessions, sessionCacheSize } from './sessions.ts';
export { scheduledLr } from './optimizers.ts';
export * as metrics from './metrics.ts';
export { buildModel, type ModelInfo } from './zoo/index.ts';
