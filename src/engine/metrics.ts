/**
 * Evaluation metrics computed on the host from model outputs (plain arrays, no ORT):
 *   accuracy, balancedAccuracy (mean per-class recall), rocAuc (binary, rank-based with ties), dice and iou (binary masks),
 *   concordanceIndex (Harrell's C for survival risk scores); regression: r2 (coefficient of determination), meanAbsoluteError,
 *   rootMeanSquaredError (in the units of the values given).
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

/**
 * Harrell's concordance index of risk scores (higher = earlier event) against right-censored times, with the pair rules of
 * lifelines' concordance_index (Harrell et al. 1996): a pair (i, j) is comparable when i had the event and t_i < t_j, or when
 * t_i = t_j and only i had the event (the censored one is taken to outlive the event); two events at the same time are not
 * comparable. C = (concordant + ties in risk / 2) / comparable, where concordant means risk_i > risk_j. NaN without comparable
 * pairs. O(n log n): times in descending order, a Fenwick tree over risk ranks of the samples seen so far.
 */
export function concordanceIndex(risk: ArrayLike<number>, time: ArrayLike<number>, event: ArrayLike<number>): number {
  const n = time.length;
  const ranks = [...new Set(Array.from({ length: n }, (_, i) => risk[i]))].sort((a, b) => a - b);
  const rankOf = new Map(ranks.map((v, k) => [v, k + 1]));
  const tree = new Float64Array(ranks.length + 1);
  const add = (r: number): void => { for (let k = r; k < tree.length; k += k & -k) tree[k]++; };
  const below = (r: number): number => { let s = 0; for (let k = r; k > 0; k -= k & -k) s += tree[k]; return s; };
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => time[b] - time[a]);
  let concordant = 0, tied = 0, pairs = 0, seen = 0;
  for (let a = 0; a < n; ) {
    let b = a;
    while (b + 1 < n && time[order[b + 1]] === time[order[a]]) b++;
    const group = order.slice(a, b + 1);
    // censored at this time outlive the events at this time: in the pool first; events join after their own queries
    for (const i of group) if (event[i] !== 1) { add(rankOf.get(risk[i])!); seen++; }
    for (const i of group) {
      if (event[i] !== 1) continue;
      const r = rankOf.get(risk[i])!;
      const lower = below(r - 1);
      concordant += lower;
      tied += below(r) - lower;
      pairs += seen;
    }
    for (const i of group) if (event[i] === 1) { add(rankOf.get(risk[i])!); seen++; }
    a = b + 1;
  }
  return pairs === 0 ? Number.NaN : (concordant + tied / 2) / pairs;
}

/** Coefficient of determination 1 - SS_res / SS_tot (can be negative: worse than predicting the mean); NaN for a constant target. */
export function r2(pred: ArrayLike<number>, target: ArrayLike<number>): number {
  const n = target.length;
  if (n === 0) return Number.NaN;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += target[i]!;
  mean /= n;
  let res = 0, tot = 0;
  for (let i = 0; i < n; i++) { res += (target[i]! - pred[i]!) ** 2; tot += (target[i]! - mean) ** 2; }
  return tot === 0 ? Number.NaN : 1 - res / tot;
}

export function meanAbsoluteError(pred: ArrayLike<number>, target: ArrayLike<number>): number {
  if (target.length === 0) return Number.NaN;
  let s = 0;
  for (let i = 0; i < target.length; i++) s += Math.abs(target[i]! - pred[i]!);
  return s / target.length;
}

export function rootMeanSquaredError(pred: ArrayLike<number>, target: ArrayLike<number>): number {
  if (target.length === 0) return Number.NaN;
  let s = 0;
  for (let i = 0; i < target.length; i++) s += (target[i]! - pred[i]!) ** 2;
  return Math.sqrt(s / target.length);
}
