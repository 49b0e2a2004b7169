/**
 * Metrics of an eval pass from the host-side probabilities (no ORT): classification (accuracy, balanced accuracy,
 * ROC AUC for two classes or a single logit), segmentation (mean per-sample Dice and IoU of the foreground) and,
 * for the multi-task U-Net, one AUC per marker (`auc_<marker>`, unknown statuses skipped) and their mean (`auc`); survival
 * (cox loss): Harrell's C-index of the risk score (`c_index`).
 */
import type { Prepared } from './batches.ts';
import type { Plan } from './graphs.ts';
import { findTarget } from './losses.ts';
import { accuracy, argmaxRows, balancedAccuracy, concordanceIndex, iou, meanDice, rocAuc } from './metrics.ts';

export interface Metrics {
  loss: number;
  accuracy?: number;
  balancedAccuracy?: number;
  auc?: number;
  dice?: number;
  iou?: number;
  c_index?: number;
  [k: string]: number | undefined;
}

export function computeMetrics(plan: Plan, p: Prepared, loss: number, prob: Float32Array, markers?: Float32Array): Metrics {
  const info = plan.model.info;
  const m: Metrics = { loss };
  if (plan.loss.spec.type === 'cox') {
    // prob is the risk score itself for Cox models (see graphs.ts)
    const c = concordanceIndex(prob, findTarget(p.source, 'time').data, findTarget(p.source, 'event').data);
    if (!Number.isNaN(c)) m.c_index = c;
    return m;
  }
  if (info.kind === 'classify') {
    if (plan.loss.spec.type === 'mse') return m;
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

/** Foreground probability per voxel (binary: sigmoid; multi-class: 1 - P(background)) against mask > 0. */
function segmentation(C: number, outShape: readonly number[], prob: Float32Array, mask: Float32Array): { dice: number; iou: number } {
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
  let iouSum = 0;
  for (let i = 0; i < n; i++) iouSum += iou(fg.subarray(i * per, (i + 1) * per), target.subarray(i * per, (i + 1) * per));
  return { dice: meanDice(fg, target, per), iou: iouSum / n };
}
