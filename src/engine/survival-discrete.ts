/**
 * Discrete-time survival (logistic hazard; Gensheimer & Narasimhan 2019, "nnet-survival"): follow-up time is cut into K
 * fixed intervals [0, c_1), [c_1, c_2), ..., [c_{K-1}, c_K), the model outputs one logit z_k per interval and the
 * conditional hazard of interval k is h_k = sigmoid(z_k) (probability of the event in k, given survival to its start).
 *
 * The loss is a SUM OF PER-PATIENT TERMS (what lets DP-SGD's per-sample clipping bound one patient's influence, unlike the Cox
 * partial likelihood, whose terms hold other patients' risk sets; Nguyen & Hui 2017 build DP discrete-time survival on this):
 *   nll_i = -sum_k [ s_ik log(1 - h_k) + f_ik log h_k ] = sum_k m_ik (softplus(z_k) - f_ik z_k),   m_ik = s_ik + f_ik
 *   loss  = (1 / B) sum_i nll_i
 * with s_ik = 1 when patient i lived through interval k and f_ik = 1 in the interval of an observed event. As nnet-survival
 * encodes them: an event at t counts every interval that ends at or before t as survived and fails in the interval holding t;
 * a patient censored at t counts an interval as survived when t reaches at least its midpoint (half the interval's exposure);
 * an event or censoring at or beyond c_K survived all K intervals (censored at the horizon).
 *
 * The intervals are FIXED in the manifest (loss.cuts, in the time column's units), never derived from the data: quantiles of the
 * pooled event times would be a consortium statistic that leaks and that DP does not account for.
 *
 * Risk score (for the C-index and the exported `risk` output): the predicted cumulative hazard at the horizon c_K,
 *   H(c_K) = sum_k -log(1 - h_k) = sum_k softplus(z_k),
 * a strictly increasing function of 1 - S(c_K) = 1 - exp(-H(c_K)), so the ranking is that of the predicted probability of the
 * event within the horizon.
 *
 * Parametrisation. Any model with K outputs works. A linear model with K free outputs (mlp, hidden [], classes K: K (F + 1)
 * parameters) fits each interval's hazard on that interval's own risk set; on TCGA-BRCA the late intervals (<= 183 patients at
 * risk, 4-11 events each) get the largest weights and dominate H(c_K), which then ranks patients poorly even on the training
 * rows (docs/privacy.md, "Survival under DP"). nnet-survival's proportional-hazards form shares one linear predictor:
 *   z_ik = eta(x_i) + b_k   (sequential: dense {units: 1, bias: false} -> offsets {units: K}; F + K parameters)
 * and then H(c_K) = sum_k softplus(eta + b_k) is strictly increasing in eta: every horizon ranks patients alike, as Cox does.
 */
import { CohortError } from '../util/errors.ts';
import type { GraphBuilder, Tensor } from './graph/index.ts';

/** Host-side targets, n x K row-major: y (1 in the interval of an observed event) and m (1 where the interval counts). */
export interface HazardTargets { readonly y: Float32Array; readonly m: Float32Array }

/** The checked interval ends: strictly increasing, positive, finite. */
export function checkCuts(cuts: readonly number[]): readonly number[] {
  if (cuts.length === 0) throw badCuts('no interval ends given');
  for (let k = 0; k < cuts.length; k++) {
    const c = cuts[k]!;
    if (!Number.isFinite(c) || c <= 0) throw badCuts(`interval end ${c} is not a positive finite time`);
    if (k > 0 && c <= cuts[k - 1]!) throw badCuts(`interval ends must increase (${cuts[k - 1]} then ${c})`);
  }
  return cuts;
}

function badCuts(why: string): CohortError {
  return new CohortError('BAD_LOSS_SPEC', `loss 'discrete-hazard': ${why}`,
    'give loss.cuts as increasing follow-up times in the time column\'s units, e.g. yearly [365, 730, 1096] (days); fixed in the manifest, not taken from the data');
}

/** nnet-survival's encoding of one patient's (time, event) into the K intervals (see the module comment). */
export function hazardTargets(time: ArrayLike<number>, event: ArrayLike<number>, cuts: readonly number[]): HazardTargets {
  const K = cuts.length;
  const n = time.length;
  const y = new Float32Array(n * K);
  const m = new Float32Array(n * K);
  for (let i = 0; i < n; i++) {
    const t = time[i]!;
    for (let k = 0; k < K; k++) {
      const start = k === 0 ? 0 : cuts[k - 1]!;
      const end = cuts[k]!;
      const lived = event[i] === 1 ? t >= end : t >= (start + end) / 2;
      if (lived) m[i * K + k] = 1;
      else if (event[i] === 1 && t >= start) { m[i * K + k] = 1; y[i * K + k] = 1; }
    }
  }
  return { y, m };
}

/** (1 / B) sum_i sum_k m_ik (softplus(z_ik) - y_ik z_ik): logits z [B, K], targets y, m [B, K]. */
export function discreteHazardNll(g: GraphBuilder, z: Tensor, y: Tensor, m: Tensor): Tensor {
  const perInterval = g.mul(m, g.sub(g.softplus(z), g.mul(z, y)));
  return g.mul(g.reduceSum(perInterval), g.constant(1 / z.shape[0]!));
}

/** Risk score [B, 1]: the cumulative hazard at the last interval end, sum_k softplus(z_k). */
export function cumulativeHazard(g: GraphBuilder, z: Tensor): Tensor {
  return g.reduceSum(g.softplus(z), [1], true);
}
