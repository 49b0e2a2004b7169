/**
 * Metrics of an eval pass from the host-side probabilities (no ORT): classification (accuracy, balanced accuracy,
 * ROC AUC for two classes or a single logit), segmentation (mean per-sample Dice and IoU of the foreground) and,
 * for the multi-task U-Net, one AUC per marker (`auc_<marker>`, unknown statuses skipped) and their mean (`auc`); survival
 * (cox loss): Harrell's C-index of the risk score (`c_index`); regression (mse loss, one output): `r2`, `mae`, `rmse`.
 * computeIntervals gives the held-out n and a 95% interval per metric (Wilson for accuracy, a seeded percentile bootstrap over
 * samples for the others), from the same probabilities, at the site: only these aggregates leave it.
 */
import type { Prepared } from './batches.ts';
import type { Plan } from './graphs.ts';
import { findTarget, isSurvivalLoss } from './losses.ts';
import { accuracy, argmaxRows, balancedAccuracy, concordanceIndex, dice, iou, meanAbsoluteError, meanDice, r2, rocAuc, rootMeanSquaredError } from './metrics.ts';
import { bootstrapInterval, wilsonInterval, type BootstrapOptions, type ScoreInterval } from '../util/stats.ts';

export interface Metrics {
  loss: number;
  accuracy?: number;
  balancedAccuracy?: number;
  auc?: number;
  dice?: number;
  iou?: number;
  c_index?: number;
  r2?: number;
  mae?: number;
  rmse?: number;
  [k: string]: number | undefined;
}

export function computeMetrics(plan: Plan, p: Prepared, loss: number, prob: Float32Array, markers?: Float32Array): Metrics {
  const info = plan.model.info;
  const m: Metrics = { loss };
  if (isSurvivalLoss(plan.loss.spec)) {
    // prob is the risk score for survival models (Cox: the linear predictor; discrete-hazard: the cumulative hazard; graphs.ts)
    const c = concordanceIndex(prob, findTarget(p.source, 'time').data, findTarget(p.source, 'event').data);
    if (!Number.isNaN(c)) m.c_index = c;
    return m;
  }
  if (info.kind === 'classify') {
    if (plan.loss.spec.type === 'mse') return Object.assign(m, regressionMetrics(prob, findTarget(p.source, 'label').data));
    const label = findTarget(p.source, 'label').data;
    const C = info.classes;
    const pred = C === 1 ? prob.map((v) => (v > 0.5 ? 1 : 0)) : argmaxRows(prob, C);
    m.accuracy = accuracy(pred, label);
    m.balancedAccuracy = balancedAccuracy(pred, label);
    if (C <= 2) {
      const score = C === 1 ? prob : prob.filter((_, i) => i % 2 === 1);
      const auc = rocAuc(score, label);
      if (!Number.isNaN(auc)) m.auc = auc;
    }
    return m;
  }
  Object.assign(m, segmentation(info.classes, info.outputShape, prob, findTarget(p.source, 'mask').data));
  if (markers) {
    const mk = findTarget(p.source, 'markers').data;
    const K = info.markers.length;
    const aucs: number[] = [];
    info.markers.forEach((name, k) => {
      const a = rocAuc(markers.filter((_, i) => i % K === k), mk.filter((_, i) => i % K === k));
      if (!Number.isNaN(a)) { m[`auc_${name}`] = a; aucs.push(a); }
    });
    if (aucs.length) m.auc = aucs.reduce((a, b) => a + b, 0) / aucs.length;
  }
  return m;
}

/** Held-out samples and, per metric, its value with a 95% interval: what a site reports beside its point estimate. */
export interface Evaluation {
  readonly n: number;
  readonly scores: Readonly<Record<string, ScoreInterval>>;
}

/** Intervals of the metrics computeMetrics reports (same inputs); bootstrap resamples whole samples (patients, or patches of one). */
export function computeIntervals(plan: Plan, p: Prepared, prob: Float32Array, markers?: Float32Array, opts: BootstrapOptions = {}): Evaluation {
  const info = plan.model.info;
  const n = p.size;
  const scores: Record<string, ScoreInterval> = {};
  const boot = (name: string, value: number, stat: (idx: Int32Array) => number): void => {
    if (!Number.isFinite(value)) return;
    const b = bootstrapInterval(n, stat, opts);
    if (Number.isFinite(b.lo)) scores[name] = { value, lo: b.lo, hi: b.hi, method: 'bootstrap' };
  };
  if (isSurvivalLoss(plan.loss.spec)) {
    const time = findTarget(p.source, 'time').data;
    const event = findTarget(p.source, 'event').data;
    boot('c_index', concordanceIndex(prob, time, event), (i) => concordanceIndex(pick(prob, i), pick(time, i), pick(event, i)));
    return { n, scores };
  }
  if (info.kind === 'classify') {
    if (n === 0) return { n, scores };
    if (plan.loss.spec.type === 'mse') {
      // regression: R2 and MAE resampled by sample, in the units of the target given (a caller that scaled it scales MAE back)
      const y = findTarget(p.source, 'label').data;
      if (prob.length !== y.length) return { n, scores };
      boot('r2', r2(prob, y), (i) => r2(pick(prob, i), pick(y, i)));
      boot('mae', meanAbsoluteError(prob, y), (i) => meanAbsoluteError(pick(prob, i), pick(y, i)));
      return { n, scores };
    }
    const label = findTarget(p.source, 'label').data;
    const C = info.classes;
    const pred = C === 1 ? prob.map((v) => (v > 0.5 ? 1 : 0)) : argmaxRows(prob, C);
    const hits = pred.reduce((h, v, i) => h + (v === label[i] ? 1 : 0), 0);
    const w = wilsonInterval(hits, n, opts.level);
    scores.accuracy = { value: hits / n, lo: w.lo, hi: w.hi, method: 'wilson' };
    boot('balancedAccuracy', balancedAccuracy(pred, label), (i) => balancedAccuracy(pick(pred, i), pick(label, i)));
    if (C <= 2) {
      const score = C === 1 ? prob : prob.filter((_, i) => i % 2 === 1);
      boot('auc', rocAuc(score, label), (i) => rocAuc(pick(score, i), pick(label, i)));
    }
    return { n, scores };
  }
  const fg = foreground(info.classes, info.outputShape, prob, findTarget(p.source, 'mask').data);
  const perSample = Float64Array.from({ length: fg.n }, (_, i) => dice(fg.prob.subarray(i * fg.per, (i + 1) * fg.per), fg.target.subarray(i * fg.per, (i + 1) * fg.per)));
  const mean = (i: ArrayLike<number>): number => { let s = 0; for (let k = 0; k < i.length; k++) s += perSample[i[k]!]!; return s / i.length; };
  boot('dice', mean(Array.from({ length: fg.n }, (_, i) => i)), mean);
  if (markers && info.markers.length) {
    const mk = findTarget(p.source, 'markers').data;
    const K = info.markers.length;
    const meanAuc = (rows: ArrayLike<number>): number => {
      const aucs: number[] = [];
      for (let k = 0; k < K; k++) {
        const a = rocAuc(Float32Array.from(rows, (r) => markers[r * K + k]!), Float32Array.from(rows, (r) => mk[r * K + k]!));
        if (!Number.isNaN(a)) aucs.push(a);
      }
      return aucs.length ? aucs.reduce((a, b) => a + b, 0) / aucs.length : Number.NaN;
    };
    boot('auc', meanAuc(Array.from({ length: n }, (_, i) => i)), meanAuc);
  }
  return { n, scores };
}

/** The values at `idx` (a bootstrap resample). */
function pick(a: ArrayLike<number>, idx: Int32Array): Float32Array {
  const out = new Float32Array(idx.length);
  for (let k = 0; k < idx.length; k++) out[k] = a[idx[k]!]!;
  return out;
}

/**
 * Regression (mse loss on a classify model: `prob` is the output itself): R2, MAE and RMSE in the units of the target given to
 * the trainer (a caller that standardised the target scales MAE and RMSE back; R2 does not change under that scaling).
 */
function regressionMetrics(pred: Float32Array, target: Float32Array): Pick<Metrics, 'r2' | 'mae' | 'rmse'> {
  if (pred.length !== target.length) return {}; // several outputs per sample: no single value to compare
  return { r2: r2(pred, target), mae: meanAbsoluteError(pred, target), rmse: rootMeanSquaredError(pred, target) };
}

/** Foreground probability per voxel (binary: sigmoid; multi-class: 1 - P(background)) against mask > 0. */
function segmentation(C: number, outShape: readonly number[], prob: Float32Array, mask: Float32Array): { dice: number; iou: number } {
  const { prob: fg, target, per, n } = foreground(C, outShape, prob, mask);
  let iouSum = 0;
  for (let i = 0; i < n; i++) iouSum += iou(fg.subarray(i * per, (i + 1) * per), target.subarray(i * per, (i + 1) * per));
  return { dice: meanDice(fg, target, per), iou: iouSum / n };
}

/** Binary foreground per voxel (multi-class: the argmax is not background) and the binary target, `per` voxels per sample. */
function foreground(C: number, outShape: readonly number[], prob: Float32Array, mask: Float32Array): { prob: Float32Array; target: Float32Array; per: number; n: number } {
  const per = outShape.slice(1).reduce((a, b) => a * b, 1);
  const n = mask.length / per;
  let fg = prob;
  if (C > 1) {
    fg = new Float32Array(n * per);
    for (let i = 0; i < n; i++) {
      for (let v = 0; v < per; v++) {
        let best = 0;
        for (let c = 1; c < C; c++) if (prob[(i * C + c) * per + v] > prob[(i * C + best) * per + v]) best = c;
        fg[i * per + v] = best > 0 ? 1 : 0;
      }
    }
  }
  const target = C > 1 ? mask.map((v) => (v > 0 ? 1 : 0)) : mask;
  return { prob: fg, target, per, n };
}
