/**
 * Local learners the simulator can give its peers.
 *   VectorLearner     holds a vector and does not train (pure averaging: consensus tests and benchmarks of the rules alone)
 *   QuadraticLearner  f_i(x) = 0.5 ||x - c_i||^2, gradient steps: the optimum of sum_i f_i is mean(c_i) (a closed-form test problem)
 *   SoftmaxLearner    multinomial logistic regression on flattened inputs in plain TypeScript (minibatch SGD, optional FedProx):
 *                     a real, small model for fast simulations on 2 cores when no ONNX engine is wanted
 *   TrainerLearner    (trainer-learner.ts) the engine's Trainer: the production path
 */
import type { LocalLearner } from '../averaging/types.ts';
import type { SampleSet } from '../data/samples.ts';
import { CohortError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';

export class VectorLearner implements LocalLearner {
  private v: Float32Array;
  constructor(initial: Float32Array, readonly sampleCount = 1) {
    this.v = initial.slice();
  }
  getParameters(): Float32Array { return this.v.slice(); }
  setParameters(v: Float32Array): void { this.v = v.slice(); }
  async train(): Promise<{ loss: number; steps: number }> { return { loss: 0, steps: 0 }; }
}

export class QuadraticLearner implements LocalLearner {
  private v: Float32Array;
  constructor(initial: Float32Array, private readonly target: Float32Array, private readonly lr: number, private readonly steps: number, readonly sampleCount = 1) {
    this.v = initial.slice();
  }
  getParameters(): Float32Array { return this.v.slice(); }
  setParameters(v: Float32Array): void { this.v = v.slice(); }
  async train(): Promise<{ loss: number; steps: number }> {
    let loss = 0;
    for (let s = 0; s < this.steps; s++) {
      loss = 0;
      for (let i = 0; i < this.v.length; i++) {
        const g = this.v[i]! - this.target[i]!;
        loss += 0.5 * g * g;
        this.v[i] = this.v[i]! - this.lr * g;
      }
    }
    return { loss, steps: this.steps };
  }
}

export interface SoftmaxConfig {
  readonly classes: number;
  readonly lr: number;
  readonly batchSize: number;
  /** Local epochs per train() call (fractional: that share of an epoch). */
  readonly epochs: number;
  readonly seed: number;
  /** FedProx mu (0: off). */
  readonly proximalMu?: number;
}

/** Parameters: W [classes x features] then b [classes], row-major. */
export class SoftmaxLearner implements LocalLearner {
  readonly sampleCount: number;
  private readonly features: number;
  private v: Float32Array;
  private anchor: Float32Array | null = null;
  private readonly rng: Rng;
  private readonly x: Float32Array;
  private readonly y: Float32Array;

  constructor(data: SampleSet, private readonly cfg: SoftmaxConfig, initial?: Float32Array) {
    const [x, y] = singleInputAndLabel(data);
    this.x = x.data;
    this.y = y.data;
    this.features = x.shape.reduce((a, b) => a * b, 1);
    this.sampleCount = data.size;
    this.v = initial ? initial.slice() : SoftmaxLearner.init(this.features, cfg.classes, cfg.seed);
    this.rng = new Rng(cfg.seed);
  }

  static parameterCount(features: number, classes: number): number {
    return classes * features + classes;
  }

  static init(features: number, classes: number, seed: number): Float32Array {
    const rng = new Rng(seed);
    const v = new Float32Array(SoftmaxLearner.parameterCount(features, classes));
    const scale = Math.sqrt(1 / features);
    for (let i = 0; i < classes * features; i++) v[i] = rng.normal() * scale;
    return v;
  }

  getParameters(): Float32Array { return this.v.slice(); }
  setParameters(v: Float32Array): void {
    if (v.length !== this.v.length) throw new CohortError('PARAM_LENGTH', `expected ${this.v.length} parameters, got ${v.length}`, 'the model layouts differ');
    this.v = v.slice();
  }
  setProximalAnchor(v: Float32Array | null): void { this.anchor = v ? v.slice() : null; }

  async train(): Promise<{ loss: number; steps: number }> {
    const n = this.sampleCount;
    const steps = Math.max(1, Math.round((this.cfg.epochs * n) / this.cfg.batchSize));
    let order = this.rng.permutation(n);
    let pos = 0;
    let loss = 0;
    for (let s = 0; s < steps; s++) {
      if (pos + this.cfg.batchSize > n) { order = this.rng.permutation(n); pos = 0; }
      const batch = order.slice(pos, pos + this.cfg.batchSize);
      pos += batch.length;
      loss = this.step(batch);
    }
    return { loss, steps };
  }

  private step(batch: readonly number[]): number {
    const { classes, lr } = this.cfg;
    const f = this.features;
    const grad = new Float64Array(this.v.length);
    const logits = new Float64Array(classes);
    let loss = 0;
    for (const k of batch) {
      this.logits(k, logits);
      const label = this.y[k]!;
      for (let c = 0; c < classes; c++) {
        const d = logits[c]! - (c === label ? 1 : 0);
        for (let j = 0; j < f; j++) grad[c * f + j] = grad[c * f + j]! + d * this.x[k * f + j]!;
        grad[classes * f + c] = grad[classes * f + c]! + d;
      }
      loss -= Math.log(Math.max(logits[label]!, 1e-12));
    }
    const mu = this.cfg.proximalMu ?? 0;
    for (let i = 0; i < this.v.length; i++) {
      const prox = this.anchor && mu > 0 ? mu * (this.v[i]! - this.anchor[i]!) : 0;
      this.v[i] = this.v[i]! - lr * (grad[i]! / batch.length + prox);
    }
    return loss / batch.length;
  }

  /** Softmax probabilities of sample k into `out`. */
  private logits(k: number, out: Float64Array, x = this.x, v = this.v): void {
    const { classes } = this.cfg;
    const f = this.features;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) {
      let z = v[classes * f + c]!;
      for (let j = 0; j < f; j++) z += v[c * f + j]! * x[k * f + j]!;
      out[c] = z;
      max = Math.max(max, z);
    }
    let sum = 0;
    for (let c = 0; c < classes; c++) { out[c] = Math.exp(out[c]! - max); sum += out[c]!; }
    for (let c = 0; c < classes; c++) out[c] = out[c]! / sum;
  }

  /** Accuracy and balanced accuracy of `params` on a test set. */
  static evaluate(params: Float32Array, test: SampleSet, classes: number): { accuracy: number; balancedAccuracy: number; loss: number } {
    const [x, y] = singleInputAndLabel(test);
    const f = x.shape.reduce((a, b) => a * b, 1);
    const probe = new SoftmaxLearner(test, { classes, lr: 0, batchSize: 1, epochs: 0, seed: 0 }, params);
    const p = new Float64Array(classes);
    const hit = new Array<number>(classes).fill(0);
    const count = new Array<number>(classes).fill(0);
    let correct = 0;
    let loss = 0;
    for (let k = 0; k < test.size; k++) {
      probe.logits(k, p, x.data, params);
      let best = 0;
      for (let c = 1; c < classes; c++) if (p[c]! > p[best]!) best = c;
      const label = y.data[k]!;
      count[label]!++;
      if (best === label) { correct++; hit[label]!++; }
      loss -= Math.log(Math.max(p[label]!, 1e-12));
    }
    void f;
    const present = count.map((c, i) => (c ? hit[i]! / c : Number.NaN)).filter((v) => !Number.isNaN(v));
    return { accuracy: correct / test.size, balancedAccuracy: present.reduce((a, b) => a + b, 0) / present.length, loss: loss / test.size };
  }
}

function singleInputAndLabel(data: SampleSet): [{ shape: readonly number[]; data: Float32Array }, { shape: readonly number[]; data: Float32Array }] {
  const inputs = Object.values(data.inputs);
  const label = data.targets['label'];
  if (inputs.length !== 1 || !label) {
    throw new CohortError('SIM_TASK_SHAPE', 'the softmax learner needs one input tensor and a `label` target',
      'use the engine learner (model spec) for multi-input or segmentation tasks');
  }
  return [inputs[0]!, label];
}
