/**
 * The production learner: the engine's Trainer (ONNX train-step graphs on onnxruntime) behind the averaging LocalLearner interface.
 * All Trainers of one model share one cached ORT session (parameters are graph inputs), so 100 simulated peers cost one session.
 */
import type { LocalLearner } from '../averaging/types.ts';
import type { SampleSet } from '../data/samples.ts';
import { Trainer, type Metrics, type TrainConfig } from '../engine/index.ts';
import { epsilonSpent, type DpPhase } from '../privacy/accountant.ts';

export interface LocalWork {
  /** Minibatch steps per train(); when absent, `epochs` passes (fractional: that share of one). */
  readonly steps?: number;
  readonly epochs: number;
}

/** Minibatch steps one train() takes on n samples (as train() below runs them). */
export function stepsPerTrain(n: number, batchSize: number, work: LocalWork): number {
  if (work.steps !== undefined) return work.steps;
  const perEpoch = Math.ceil(n / Math.min(batchSize, n));
  return Math.max(1, Math.round(work.epochs * perEpoch));
}

export class TrainerLearner implements LocalLearner {
  private constructor(private readonly trainer: Trainer, private readonly data: SampleSet, private readonly work: LocalWork, private readonly batchSize: number,
    private readonly maxDpSteps?: number) {}

  /** `maxDpSteps`: with DP-SGD, the steps the privacy budget was planned for; train() never takes more (it trains less, then not at all). */
  static async create(cfg: TrainConfig, data: SampleSet, work: LocalWork, maxDpSteps?: number): Promise<TrainerLearner> {
    return new TrainerLearner(await Trainer.create(cfg, data), data, work, cfg.batchSize, maxDpSteps);
  }

  /** DP-SGD steps taken (accountant phases); empty without DP. */
  get privacyPhases(): DpPhase[] { return this.trainer.privacyPhases; }
  get dpConfig() { return this.trainer.dpConfig; }
  /** Epsilon spent so far at `delta` (0 before any DP step). */
  epsilonSpent(delta: number): number { return epsilonSpent(this.trainer.privacyPhases, delta).epsilon; }

  get sampleCount(): number { return this.data.size; }
  get layoutHash(): string { return this.trainer.layout.hash; }
  get provider(): string { return this.trainer.provider; }
  getParameters(): Float32Array { return this.trainer.getParameters(); }
  setParameters(v: Float32Array): void { this.trainer.setParameters(v); }
  setProximalAnchor(v: Float32Array | null): void { this.trainer.setProximalAnchor(v); }

  async train(): Promise<{ loss: number; steps: number }> {
    if (this.trainer.dpConfig) {
      const done = this.trainer.privacyPhases.reduce((a, p) => a + p.steps, 0);
      const steps = Math.min(stepsPerTrain(this.data.size, this.batchSize, this.work), (this.maxDpSteps ?? Infinity) - done);
      return steps > 0 ? this.trainer.trainSteps(this.data, steps) : { loss: 0, steps: 0 };
    }
    if (this.work.steps !== undefined) return this.trainer.trainSteps(this.data, this.work.steps);
    if (this.work.epochs === 1) return this.trainer.trainEpoch(this.data);
    const perEpoch = Math.ceil(this.data.size / Math.min(this.batchSize, this.data.size));
    return this.trainer.trainSteps(this.data, Math.max(1, Math.round(this.work.epochs * perEpoch)));
  }

  /** Metrics of `params` (or the current parameters) on `test`. */
  async evaluate(test: SampleSet, params?: Float32Array): Promise<Metrics> {
    if (params) this.trainer.setParameters(params);
    return this.trainer.evaluate(test);
  }

  dispose(): Promise<void> { return this.trainer.dispose(); }
}
