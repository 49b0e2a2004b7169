/**
 * Rényi-DP accountant for DP-SGD: the Poisson-subsampled Gaussian mechanism (Mironov, Talwar, Zhang 2019,
 * "Rényi Differential Privacy of the Sampled Gaussian Mechanism", arXiv 1908.10530, Section 3.3), composed over steps
 * (RDP adds up), converted to (epsilon, delta) with Balle et al. 2020 (arXiv 1905.09982, Theorem 21):
 *     eps = min_alpha  rdp(alpha) + log((alpha - 1) / alpha) - (log delta + log alpha) / (alpha - 1).
 * The same analysis as Opacus (opacus/accountants/analysis/rdp.py) and TF Privacy / dp_accounting; checked against their
 * published test values in test/unit/privacy-accountant.test.ts.
 *
 * Units: q = sampling rate (expected batch / dataset size; each sample is drawn independently with probability q),
 * sigma = noise multiplier (noise std / clipping norm), steps = optimizer steps that touched the data set.
 * The guarantee is sample-level (add/remove one patient's row) and covers every model released during training.
 */
import { CohortError } from '../util/errors.ts';

/** Opacus's default orders: 1.1 .. 10.9 in steps of 0.1, then 12 .. 63. */
export const DEFAULT_ORDERS: readonly number[] = [
  ...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10),
  ...Array.from({ length: 52 }, (_, x) => 12 + x),
];

function logAdd(a: number, b: number): number {
  const lo = Math.min(a, b), hi = Math.max(a, b);
  if (lo === -Infinity) return hi;
  return Math.log1p(Math.exp(lo - hi)) + hi;
}

function logSub(a: number, b: number): number {
  if (a < b) throw new Error('logSub: negative result');
  if (b === -Infinity) return a;
  if (a === b) return -Infinity;
  const d = Math.expm1(a - b);
  return Number.isFinite(d) ? Math.log(d) + b : a;
}

/**
 * log(erfc(x)) for any real x, relative error of erfc below 1.2e-7 (Numerical Recipes' Chebyshev fit, kept in log
 * form so that it does not underflow for large x).
 */
export function logErfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const logPos = Math.log(t) - z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  return x >= 0 ? logPos : Math.log(2 - Math.exp(logPos));
}

/** log A_alpha for integer alpha (the binomial expansion of Section 3.3). */
function logAInt(q: number, sigma: number, alpha: number): number {
  let logA = -Infinity;
  let logBinom = 0; // log C(alpha, 0)
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logBinom += Math.log(alpha - i + 1) - Math.log(i);
    const s = logBinom + i * Math.log(q) + (alpha - i) * Math.log1p(-q) + (i * i - i) / (2 * sigma * sigma);
    logA = logAdd(logA, s);
  }
  return logA;
}

/** log A_alpha for fractional alpha (two integrals split at z0, series until the terms fall below e^-30). */
function logAFrac(q: number, sigma: number, alpha: number): number {
  let logA0 = -Infinity, logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  let coef = 1; // C(alpha, i), signed, by the recurrence C(a, i+1) = C(a, i) (a - i) / (i + 1)
  for (let i = 0; ; i++) {
    if (i > 0) coef *= (alpha - i + 1) / i;
    const logCoef = Math.log(Math.abs(coef));
    const j = alpha - i;
    const logT0 = logCoef + i * Math.log(q) + j * Math.log1p(-q);
    const logT1 = logCoef + j * Math.log(q) + i * Math.log1p(-q);
    const logE0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma));
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma));
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    if (coef > 0) { logA0 = logAdd(logA0, logS0); logA1 = logAdd(logA1, logS1); }
    else { logA0 = logSub(logA0, logS0); logA1 = logSub(logA1, logS1); }
    if (Math.max(logS0, logS1) < -30 || i > 10_000) break;
  }
  return logAdd(logA0, logA1);
}

/** RDP of one step of the sampled Gaussian mechanism at order alpha (> 1). */
export function rdpStep(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (!Number.isFinite(alpha)) return Infinity;
  const logA = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
  return logA / (alpha - 1);
}

/** RDP of `steps` compositions at each order. */
export function computeRdp(q: number, sigma: number, steps: number, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  checkArgs(q, sigma, steps);
  return orders.map((a) => rdpStep(q, sigma, a) * steps);
}

/** (eps, optimal order) for a delta from RDP values (Balle et al. 2020, Theorem 21; as Opacus's get_privacy_spent). */
export function epsilonFromRdp(orders: readonly number[], rdp: readonly number[], delta: number): { epsilon: number; order: number } {
  if (!(delta > 0 && delta < 1)) throw new CohortError('BAD_PRIVACY', `delta must be in (0, 1), got ${delta}`, 'use e.g. delta = 1e-5 (below 1 / number of patients)');
  let best = Infinity, order = NaN;
  orders.forEach((a, k) => {
    const e = rdp[k] - (Math.log(delta) + Math.log(a)) / (a - 1) + Math.log((a - 1) / a);
    if (e < best) { best = e; order = a; }
  });
  return { epsilon: Math.max(best, 0), order };
}

/** A sequence of DP-SGD phases (each: sampling rate, noise multiplier, steps), composed. */
export interface DpPhase { q: number; sigma: number; steps: number }

export function epsilonSpent(phases: readonly DpPhase[], delta: number, orders: readonly number[] = DEFAULT_ORDERS): { epsilon: number; order: number } {
  const rdp = orders.map(() => 0);
  for (const p of phases) {
    if (p.steps === 0) continue;
    computeRdp(p.q, p.sigma, p.steps, orders).forEach((v, k) => { rdp[k] += v; });
  }
  if (phases.every((p) => p.steps === 0)) return { epsilon: 0, order: NaN };
  return epsilonFromRdp(orders, rdp, delta);
}

export function epsilonFor(q: number, sigma: number, steps: number, delta: number, orders: readonly number[] = DEFAULT_ORDERS): number {
  return epsilonSpent([{ q, sigma, steps }], delta, orders).epsilon;
}

/**
 * The smallest noise multiplier (to within `tolerance` relative) whose epsilon after `steps` steps at rate q is at most
 * `epsilon` (bisection, as Opacus's get_noise_multiplier; the returned sigma always satisfies the target).
 */
export function noiseMultiplierFor(epsilon: number, delta: number, q: number, steps: number, tolerance = 1e-3): number {
  if (!(epsilon > 0) || !Number.isFinite(epsilon)) {
    throw new CohortError('BAD_PRIVACY', `target epsilon must be a positive finite number, got ${epsilon}`, 'use e.g. epsilon 1, 3 or 8');
  }
  checkArgs(q, 1, steps);
  let hi = 1;
  while (epsilonFor(q, hi, steps, delta) > epsilon) {
    hi *= 2;
    if (hi > 1e6) throw new CohortError('BAD_PRIVACY', `no noise multiplier reaches epsilon ${epsilon} in ${steps} steps`, 'raise epsilon or delta, or train fewer steps');
  }
  let lo = 0;
  while (hi - lo > tolerance * hi) {
    const mid = (lo + hi) / 2;
    if (epsilonFor(q, mid, steps, delta) > epsilon) lo = mid; else hi = mid;
  }
  return hi;
}

function checkArgs(q: number, sigma: number, steps: number): void {
  if (!(q >= 0 && q <= 1)) throw new CohortError('BAD_PRIVACY', `sampling rate must be in [0, 1], got ${q}`, 'q = expected batch size / number of training samples');
  if (!(sigma >= 0) || !Number.isFinite(sigma)) throw new CohortError('BAD_PRIVACY', `noise multiplier must be >= 0, got ${sigma}`, 'sigma = noise std / clipping norm');
  if (!Number.isInteger(steps) || steps < 0) throw new CohortError('BAD_PRIVACY', `steps must be a non-negative integer, got ${steps}`, 'count the optimizer steps');
}
