/**
 * Losses as graph stages. Each LossStage declares the target tensors its graph reads (per sample), prepares them on the
 * host from a SampleSet (one-hot labels, NaN-masked markers) and builds a scalar loss from the model's outputs:
 *   cross-entropy (softmax, optional class weights: sum(w_y * nll) / sum(w_y), as PyTorch), bce (with logits; NaN targets
 *   masked out), dice (soft Dice), dice-ce (Dice + ceWeight x CE or BCE), mse, multitask (Dice + BCE on the mask plus
 *   markerWeight x masked BCE on the marker heads), cox (negative Cox partial log-likelihood of a risk score, Breslow ties),
 *   discrete-hazard (discrete-time survival, one logit per fixed interval, a sum of per-patient terms: survival-discrete.ts).
 * Targets follow src/data/samples.ts: `label` (class index), `mask` ([1, ...spatial], 0/1 or class index), `markers` ([K], 0/1/NaN),
 * `time` + `event` (survival: follow-up time, 1 = event observed / 0 = censored).
 */
import { CohortError } from '../util/errors.ts';
import type { SampleSet, SampleTensor } from '../data/samples.ts';
import type { GraphBuilder, Tensor } from './graph/index.ts';
import type { ModelInfo, ModelOutputs } from './zoo/index.ts';
import type { ResolvedLossSpec } from './spec.ts';
import { checkCuts, discreteHazardNll, hazardTargets } from './survival-discrete.ts';

export interface TargetDecl { readonly name: string; readonly shape: readonly number[] }

export interface LossStage {
  readonly spec: ResolvedLossSpec;
  /** Graph inputs for targets (graph name `t_<name>`), per-sample shapes. */
  readonly targets: readonly TargetDecl[];
  /** Host-side conversion of a SampleSet's targets into the arrays fed to the graph (per-sample rows). */
  prepare(set: SampleSet): Record<string, SampleTensor>;
  /** The scalar loss, averaged over the batch. */
  build(g: GraphBuilder, out: ModelOutputs, t: Record<string, Tensor>): Tensor;
}

/** Survival losses: their eval `prob` is a risk score (C-index), their export names it `risk`. */
export function isSurvivalLoss(spec: ResolvedLossSpec): boolean {
  return spec.type === 'cox' || spec.type === 'discrete-hazard';
}

export function defaultLoss(info: ModelInfo): ResolvedLossSpec {
  switch (info.kind) {
    case 'classify': return info.classes === 1 ? { type: 'bce' } : { type: 'cross-entropy' };
    case 'segment': return { type: 'dice-ce', smooth: 1, ceWeight: 1 };
    case 'multitask': return { type: 'multitask', smooth: 1, markerWeight: 1 };
  }
}

/** The target tensor a loss reads, by convention name, or the set's only target. */
export function findTarget(set: SampleSet, name: string): SampleTensor {
  const t = set.targets[name];
  if (t) return t;
  const names = Object.keys(set.targets);
  if (names.length === 1 && name !== 'markers') return set.targets[names[0]] as SampleTensor;
  throw new CohortError('MISSING_TARGET', `the data has no '${name}' target (it has: ${names.join(', ') || 'none'})`,
    `name the target '${name}' in the sample set, as src/data/samples.ts describes`);
}

function oneHot(labels: Float32Array, classes: number, perSample: number, what: string): Float32Array {
  // labels: n * perSample class indices -> n x classes x perSample (class axis right after the sample axis)
  const n = labels.length / perSample;
  const out = new Float32Array(n * classes * perSample);
  for (let i = 0; i < n; i++) {
    for (let v = 0; v < perSample; v++) {
      const c = labels[i * perSample + v];
      if (!Number.isInteger(c) || c < 0 || c >= classes) {
        throw new CohortError('BAD_LABEL', `${what}: value ${c} of sample ${i} is not a class index in 0..${classes - 1}`,
          'labels must be integer class indices below the model\'s class count');
      }
      out[(i * classes + c) * perSample + v] = 1;
    }
  }
  return out;
}

/** Binary targets with NaN replaced by 0, plus a 0/1 mask of the known entries. */
function maskedBinary(t: SampleTensor): { y: Float32Array; m: Float32Array } {
  const y = new Float32Array(t.data.length);
  const m = new Float32Array(t.data.length);
  for (let i = 0; i < y.length; i++) {
    if (!Number.isNaN(t.data[i])) { y[i] = t.data[i]; m[i] = 1; }
  }
  return { y, m };
}

// ---- graph pieces -------------------------------------------------------------------------------------------------

/** mean or masked mean of softplus(z) - z*y (BCE with logits, stable: ORT's Softplus). */
function bce(g: GraphBuilder, z: Tensor, y: Tensor, m?: Tensor): Tensor {
  const l = g.sub(g.softplus(z), g.mul(z, y));
  if (!m) return g.reduceMean(l);
  return g.div(g.reduceSum(g.mul(l, m)), g.max(g.reduceSum(m), g.constant(1)));
}

/** -sum(onehot * logSoftmax) / B (optionally class-weighted); class axis 1; mean over extra spatial axes too. */
function crossEntropy(g: GraphBuilder, z: Tensor, onehot: Tensor, classWeights?: readonly number[]): Tensor {
  const logp = g.logSoftmax(z, 1);
  if (classWeights) {
    const wshape = z.shape.map((d, i) => (i === 1 ? d : 1));
    const w = g.mul(onehot, g.reshape(g.constant(classWeights), wshape));
    return g.neg(g.div(g.reduceSum(g.mul(w, logp)), g.reduceSum(w)));
  }
  const count = z.shape.reduce((a, b) => a * b, 1) / z.shape[1];
  return g.mul(g.reduceSum(g.mul(onehot, logp)), g.constant(-1 / count));
}

/** 1 - mean over samples (and classes) of (2 sum(p*y) + s) / (sum(p) + sum(y) + s), sums over spatial axes. */
function softDice(g: GraphBuilder, p: Tensor, y: Tensor, smooth: number): Tensor {
  const axes = p.shape.map((_, i) => i).slice(2);
  const inter = g.reduceSum(g.mul(p, y), axes);
  const denom = g.add(g.reduceSum(p, axes), g.reduceSum(y, axes));
  const s = g.constant(smooth);
  const d = g.div(g.add(g.mul(inter, g.constant(2)), s), g.add(denom, s));
  return g.sub(g.constant(1), g.reduceMean(d));
}

/**
 * Cox partial likelihood with Breslow ties, over the samples of one minibatch (risk scores eta [B, 1], times t [B], events e [B]):
 *   loss = -sum_i e_i (eta_i - log sum_j R_ij exp(eta_j)) / max(1, sum_i e_i),   R_ij = [t_j >= t_i] (the risk set of i)
 * R is built in the graph from the time column (data, so no gradient flows through it). Ties: events at the same time all keep
 * the others in their risk set (t_j >= t_i), which is Breslow's approximation. Censoring: a censored sample contributes no
 * term of its own (e_i = 0) and stays in the risk set of every event at or before its time. The log-sum-exp of row i runs over
 * eta masked to the risk set (-1e30 elsewhere, so exp gives 0) minus the row's maximum, which is eta_i or larger: the sum is >= 1.
 */
export function coxPartialLikelihood(g: GraphBuilder, eta: Tensor, time: Tensor, event: Tensor): Tensor {
  const B = eta.shape[0];
  const atRisk = g.not(g.less(g.reshape(time, [1, B]), g.reshape(time, [B, 1]))); // [i, j]: t_j >= t_i
  const scores = g.where(atRisk, g.reshape(eta, [1, B]), g.constant(-1e30)); // eta_j inside the risk set of i
  const m = g.reduceMax(scores, [1], true); // [B, 1]
  const lse = g.add(m, g.log(g.reduceSum(g.exp(g.sub(scores, m)), [1], true)));
  const ll = g.mul(g.sub(g.reshape(eta, [B, 1]), lse), g.reshape(event, [B, 1]));
  return g.neg(g.div(g.reduceSum(ll), g.max(g.reduceSum(event), g.constant(1))));
}

/** Survival targets: times (finite) and events (0/1), checked. */
function survivalTargets(set: SampleSet): { time: Float32Array; event: Float32Array } {
  const time = findTarget(set, 'time').data;
  const event = findTarget(set, 'event').data;
  for (let i = 0; i < set.size; i++) {
    if (!Number.isFinite(time[i])) {
      throw new CohortError('BAD_TARGET', `sample ${i} has survival time ${time[i]}`, 'every sample needs a finite follow-up time (drop rows without one)');
    }
    if (event[i] !== 0 && event[i] !== 1) {
      throw new CohortError('BAD_TARGET', `sample ${i} has event value ${event[i]}`, 'the event column holds 1 (event observed) or 0 (censored)');
    }
  }
  return { time, event };
}

function segProbs(g: GraphBuilder, z: Tensor): Tensor {
  return z.shape[1] === 1 ? g.sigmoid(z) : g.softmax(z, 1);
}

// ---- stages --------------------------------------------------------------------------------------------------------

export function makeLoss(spec: ResolvedLossSpec, info: ModelInfo): LossStage {
  const bad = (why: string): CohortError => new CohortError('BAD_LOSS_SPEC', `loss '${spec.type}' ${why}`,
    `use the model's default loss or one that fits a ${info.kind} model`);
  const C = info.classes;
  switch (spec.type) {
    case 'cross-entropy': {
      if (info.kind !== 'classify' && info.kind !== 'segment') throw bad('needs a classifier or a segmentation model');
      if (C < 2) throw bad('needs at least 2 classes (use bce for one logit)');
      if (spec.classWeights && spec.classWeights.length !== C) throw bad(`has ${spec.classWeights.length} class weights for ${C} classes`);
      const spatial = info.outputShape.slice(1);
      return {
        spec, targets: [{ name: 'onehot', shape: info.outputShape }],
        prepare: (set) => {
          const t = findTarget(set, info.kind === 'segment' ? 'mask' : 'label');
          const per = spatial.reduce((a, b) => a * b, 1);
          return { onehot: { shape: info.outputShape, data: oneHot(t.data, C, per, 'label') } };
        },
        build: (g, out, t) => crossEntropy(g, primary(out), t.onehot, spec.classWeights),
      };
    }
    case 'bce': case 'mse': {
      if (info.kind === 'multitask') throw bad('does not fit a multi-task model (use multitask)');
      const shape = info.outputShape;
      return {
        spec, targets: spec.type === 'bce' ? [{ name: 'y', shape }, { name: 'm', shape }] : [{ name: 'y', shape }],
        prepare: (set): Record<string, SampleTensor> => {
          const t = findTarget(set, info.kind === 'segment' ? 'mask' : 'label');
          const n = shape.reduce((a, b) => a * b, 1);
          if (t.data.length !== set.size * n) {
            throw new CohortError('SHAPE_MISMATCH', `target has ${t.data.length / Math.max(set.size, 1)} values per sample, the model outputs ${n}`,
              'give the model as many outputs as the target has values');
          }
          if (spec.type === 'mse') return { y: { shape, data: t.data } };
          const { y, m } = maskedBinary(t);
          return { y: { shape, data: y }, m: { shape, data: m } };
        },
        build: (g, out, t) => spec.type === 'bce' ? bce(g, primary(out), t.y, t.m)
          : g.reduceMean(g.pow(g.sub(primary(out), t.y), 2)),
      };
    }
    case 'dice': case 'dice-ce': {
      if (info.kind !== 'segment') throw bad('needs a segmentation model');
      const shape = info.outputShape;
      return {
        spec, targets: [{ name: 'y', shape }],
        prepare: (set) => ({ y: { shape, data: segTarget(findTarget(set, 'mask'), C, shape) } }),
        build: (g, out, t) => {
          const z = primary(out);
          const d = softDice(g, segProbs(g, z), t.y, spec.smooth);
          if (spec.type === 'dice' || spec.ceWeight === 0) return d;
          const ce = C === 1 ? bce(g, z, t.y) : crossEntropy(g, z, t.y);
          return g.add(d, g.mul(ce, g.constant(spec.ceWeight)));
        },
      };
    }
    case 'cox': {
      if (info.kind !== 'classify' || C !== 1) throw bad('needs a model with one output (the risk score), e.g. mlp with classes 1');
      return {
        spec, targets: [{ name: 'time', shape: [] }, { name: 'event', shape: [] }],
        prepare: (set) => {
          const { time, event } = survivalTargets(set);
          return { time: { shape: [], data: time }, event: { shape: [], data: event } };
        },
        build: (g, out, t) => coxPartialLikelihood(g, primary(out), t.time, t.event),
      };
    }
    case 'discrete-hazard': {
      const cuts = checkCuts(spec.cuts);
      const K = cuts.length;
      if (info.kind !== 'classify' || C !== K) throw bad(`needs a model with one output per interval (${K} cuts: e.g. mlp with classes ${K}), not ${C}`);
      return {
        spec, targets: [{ name: 'y', shape: [K] }, { name: 'm', shape: [K] }],
        prepare: (set) => {
          const { time, event } = survivalTargets(set);
          const { y, m } = hazardTargets(time, event, cuts);
          return { y: { shape: [K], data: y }, m: { shape: [K], data: m } };
        },
        build: (g, out, t) => discreteHazardNll(g, primary(out), t.y, t.m),
      };
    }
    case 'multitask': {
      if (info.kind !== 'multitask') throw bad('needs a multitask-unet model');
      const shape = info.outputShape;
      const mshape = [info.markers.length];
      return {
        spec, targets: [{ name: 'y', shape }, { name: 'k', shape: mshape }, { name: 'km', shape: mshape }],
        prepare: (set) => {
          const mk = findTarget(set, 'markers');
          if (mk.shape.length !== 1 || mk.shape[0] !== info.markers.length) {
            throw new CohortError('SHAPE_MISMATCH', `markers target has shape [${mk.shape.join(',')}], the model has ${info.markers.length} marker heads (${info.markers.join(', ')})`,
              'list one marker per column of the markers target in the model spec');
          }
          const { y, m } = maskedBinary(mk);
          return { y: { shape, data: segTarget(findTarget(set, 'mask'), C, shape) }, k: { shape: mshape, data: y }, km: { shape: mshape, data: m } };
        },
        build: (g, out, t) => {
          const z = out.seg as Tensor;
          const seg = g.add(softDice(g, segProbs(g, z), t.y, spec.smooth), C === 1 ? bce(g, z, t.y) : crossEntropy(g, z, t.y));
          const mk = bce(g, out.markers as Tensor, t.k, t.km);
          return g.add(seg, g.mul(mk, g.constant(spec.markerWeight)));
        },
      };
    }
  }
}

function primary(out: ModelOutputs): Tensor {
  return (out.logits ?? out.seg) as Tensor;
}

/** Binary mask as is (checked 0/1), or class indices as one-hot over the class axis. */
function segTarget(t: SampleTensor, classes: number, outShape: readonly number[]): Float32Array {
  const per = outShape.slice(1).reduce((a, b) => a * b, 1);
  const n = t.data.length / per;
  if (!Number.isInteger(n) || (t.shape.length > 0 && t.shape.reduce((a, b) => a * b, 1) !== per)) {
    throw new CohortError('SHAPE_MISMATCH', `mask shape [${t.shape.join(',')}] does not match the model's output [${outShape.join(',')}]`,
      'the mask must have shape [1, ...spatial] with the same spatial size as the image');
  }
  return classes === 1 ? t.data : oneHot(t.data, classes, per, 'mask');
}
