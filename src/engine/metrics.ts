/**
 * Evaluation metrics computed on the host from model outputs (plain arrays, no ORT):
 *   accuracy, balancedAccuracy (mean per-class recall), rocAuc (binary, rank-based with ties), dice and iou (binary masks).
 * Inputs are flat Float32Arrays; class predictions and labels are class indices stored as floats.
 */

/** Index of the largest value in each row of a [n, classes] matrix. */
export function argmaxRows(scores: Float32Array, classes: number): Float32Array {
  const n = scores.length / classes;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (scores[i * classes + c] > scores[i * classes + best]) best = c;
    out[i] = best;
  }
  return out;
}

export function accuracy(pred: Float32Array, label: Float32Array): number {
  if (label.length === 0) return Number.NaN;
  let hit = 0;
  for (let i = 0; i < label.length; i++) if (pred[i] === label[i]) hit++;
  return hit / label.length;
}

/** Mean recall over the classes present in `label` (robust to class imbalance). */
export function balancedAccuracy(pred: Float32Array, label: Float32Array): number {
  const total = new Map<number, number>();
  const hit = new Map<number, number>();
  for (let i = 0; i < label.length; i++) {
    total.set(label[i], (total.get(label[i]) ?? 0) + 1);
    if (pred[i] === label[i]) hit.set(label[i], (hit.get(label[i]) ?? 0) + 1);
  }
  if (total.size === 0) return Number.NaN;
  let sum = 0;
  for (const [c, n] of total) sum += (hit.get(c) ?? 0) / n;
  return sum / total.size;
}

/**
 * Area under the ROC curve for a binary problem: the probability that a random positive scores above a random
 * negative (Mann–Whitney U), ties counted as one half. NaN when one class is absent. Labels: 1 positive, 0 negative,
 * NaN skipped (unknown marker status).
 */
export function rocAuc(score: Float32Array, label: Float32Array): number {
  const idx: number[] = [];
  for (let i = 0; i < label.length; i++) if (!Number.isNaN(label[i])) idx.push(i);
  idx.sort((a, b) => score[a] - score[b]);
  let pos = 0;
  let rankSumPos = 0;
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && score[idx[j + 1]] === score[idx[i]]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (label[idx[k]] === 1) { pos++; rankSumPos += avgRank; }
    i = j + 1;
  }
  const neg = idx.length - pos;
  if (pos === 0 || neg === 0) return Number.NaN;
  return (rankSumPos - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** Overlap counts of a binary prediction (prob > threshold) against a binary target. */
function overlap(prob: Float32Array, target: Float32Array, threshold: number): { tp: number; fp: number; fn: number } {
  let tp = 0, fp = 0, fn = 0;
  for (let i = 0; i < target.length; i++) {
    const p = prob[i] > threshold;
    const t = target[i] > 0.5;
    if (p && t) tp++; else if (p) fp++; else if (t) fn++;
  }
  return { tp, fp, fn };
}

/** Dice = 2|P∩T| / (|P|+|T|) over all voxels given (1 when both are empty). */
export function dice(prob: Float32Array, target: Float32Array, threshold = 0.5): number {
  const { tp, fp, fn } = overlap(prob, target, threshold);
  return tp + fp + fn === 0 ? 1 : (2 * tp) / (2 * tp + fp + fn);
}

/** Intersection over union (Jaccard) over all voxels given (1 when both are empty). */
export function iou(prob: Float32Array, target: Float32Array, threshold = 0.5): number {
  const { tp, fp, fn } = overlap(prob, target, threshold);
  return tp + fp + fn === 0 ? 1 : tp / (tp + fp + fn);
}

/** Mean of per-sample Dice (the usual segmentation report), `per` voxels per sample. */
export function meanDice(prob: Float32Array, target: Float32Array, per: number, threshold = 0.5): number {
  const n = target.length / per;
  let s = 0;
  for (let i = 0; i < n; i++) s += dice(prob.subarray(i * per, (i + 1) * per), target.subarray(i * per, (i + 1) * per), threshold);
  return n === 0 ? Number.NaN : s / n;
}
