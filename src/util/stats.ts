/**
 * Small interval statistics for benchmarks (no dependencies):
 *   tInterval(values, level?)           mean ± t_{(1+level)/2, n-1} · sd/√n over independent repetitions (e.g. seeds)
 *   pairedInterval(a, b, level?)        the t interval of the paired differences a_i − b_i (same seed, same split)
 *   wilsonInterval(successes, n, level?) Wilson score interval of a proportion (e.g. accuracy on n test samples)
 *   bootstrapInterval(n, statistic, opts) seeded percentile bootstrap over n units (AUC, Dice, C-index of a held-out set)
 *   studentTCdf, studentTQuantile, normalQuantile
 * The t CDF goes through the regularised incomplete beta function (Lentz continued fraction, as in Numerical Recipes §6.4);
 * quantiles by bisection. Checked against scipy in test/unit/stats.test.ts.
 */

import { Rng } from './random.ts';

export interface Interval {
  /** Number of finite values used. */
  readonly n: number;
  readonly mean: number;
  /** Sample standard deviation (n − 1); NaN for n < 2. */
  readonly sd: number;
  /** Half-width of the interval; NaN for n < 2 (one value says nothing about its spread). */
  readonly half: number;
  readonly lo: number;
  readonly hi: number;
  readonly level: number;
}

function logGamma(x: number): number {
  // Lanczos (g = 7, n = 9), relative error < 1e-13 for x > 0
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let a = c[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d; if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c; if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d; h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d; if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c; if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** Regularised incomplete beta I_x(a, b). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaContinuedFraction(a, b, x)) / a : 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** P(T ≤ t) for Student's t with `df` degrees of freedom (df = Infinity: the standard normal). */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0)) throw new RangeError(`degrees of freedom must be positive, got ${df}`);
  if (!Number.isFinite(df)) return normalCdf(t);
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

function normalCdf(z: number): number {
  // Φ(z) = ½ erfc(−z/√2); erfc by its Taylor series below 3, by its continued fraction above
  return 0.5 * erfc(-z / Math.SQRT2);
}

function erfc(x: number): number {
  if (x < 0) return 2 - erfc(-x);
  if (x < 3) {
    // series erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
    let sum = 0;
    let term = x;
    for (let n = 0; n < 200; n++) {
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
      term *= (-x * x) / (n + 1);
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  // continued fraction (Lentz) for large x
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 300; n++) {
    const an = n / 2;
    d = x + an * d; if (Math.abs(d) < tiny) d = tiny;
    c = x + an / c; if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = c * d;
    f *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / (f * Math.sqrt(Math.PI));
}

function bisect(cdf: (x: number) => number, p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`a probability strictly between 0 and 1 is needed, got ${p}`);
  let lo = -1;
  let hi = 1;
  while (cdf(lo) > p) lo *= 2;
  while (cdf(hi) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * Math.max(1, Math.abs(lo)); i++) {
    const mid = (lo + hi) / 2;
    if (cdf(mid) < p) lo = mid; else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The p-quantile of Student's t with `df` degrees of freedom. */
export function studentTQuantile(p: number, df: number): number {
  return bisect((t) => studentTCdf(t, df), p);
}

/** The p-quantile of the standard normal distribution. */
export function normalQuantile(p: number): number {
  return bisect(normalCdf, p);
}

/** Mean and t interval of the finite values (independent repetitions, e.g. one value per seed). */
export function tInterval(values: readonly number[], level = 0.95): Interval {
  const v = values.filter(Number.isFinite);
  const n = v.length;
  const mean = n ? v.reduce((a, b) => a + b, 0) / n : Number.NaN;
  if (n < 2) return { n, mean, sd: Number.NaN, half: Number.NaN, lo: Number.NaN, hi: Number.NaN, level };
  const sd = Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  const half = studentTQuantile((1 + level) / 2, n - 1) * (sd / Math.sqrt(n));
  return { n, mean, sd, half, lo: mean - half, hi: mean + half, level };
}

/** The t interval of the paired differences a_i − b_i (pairs with a non-finite side are dropped). */
export function pairedInterval(a: readonly number[], b: readonly number[], level = 0.95): Interval {
  if (a.length !== b.length) throw new RangeError(`paired values need equal lengths, got ${a.length} and ${b.length}`);
  return tInterval(a.map((x, i) => x - b[i]!).filter(Number.isFinite), level);
}

/** Wilson score interval of successes / n. */
export function wilsonInterval(successes: number, n: number, level = 0.95): { p: number; lo: number; hi: number; level: number } {
  if (!(n > 0) || successes < 0 || successes > n) throw new RangeError(`need 0 <= successes <= n and n > 0, got ${successes} of ${n}`);
  const z = normalQuantile((1 + level) / 2);
  const p = successes / n;
  const d = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / d;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return { p, lo: Math.max(0, centre - half), hi: Math.min(1, centre + half), level };
}

/** A statistic with its interval, as a site reports it: the method says how the interval was found. */
export interface ScoreInterval {
  readonly value: number;
  readonly lo: number;
  readonly hi: number;
  readonly method: 'wilson' | 'bootstrap';
}

export interface BootstrapOptions {
  /** Resamples drawn (default 1000). */
  readonly resamples?: number;
  /** Seed of the resampling (default 1): the same data and seed give the same interval at every site and rerun. */
  readonly seed?: number;
  readonly level?: number;
}

/**
 * Percentile bootstrap interval of `statistic` over `n` independent units (patients): each resample draws n indices with
 * replacement. Resamples where the statistic is undefined (NaN, e.g. an AUC drawn with one class only) are skipped; with fewer
 * than half the resamples usable the interval is NaN (the data cannot support one).
 */
export function bootstrapInterval(n: number, statistic: (idx: Int32Array) => number, opts: BootstrapOptions = {}): { lo: number; hi: number; used: number } {
  const resamples = opts.resamples ?? 1000;
  const level = opts.level ?? 0.95;
  const rng = new Rng(opts.seed ?? 1);
  const values: number[] = [];
  const idx = new Int32Array(n);
  for (let b = 0; b < resamples && n > 0; b++) {
    for (let i = 0; i < n; i++) idx[i] = rng.int(n);
    const v = statistic(idx);
    if (Number.isFinite(v)) values.push(v);
  }
  if (values.length < resamples / 2) return { lo: Number.NaN, hi: Number.NaN, used: values.length };
  values.sort((a, b) => a - b);
  return { lo: percentile(values, (1 - level) / 2), hi: percentile(values, (1 + level) / 2), used: values.length };
}

/** The q-quantile of sorted values, linear between order statistics (numpy's default). */
export function percentile(sorted: readonly number[], q: number): number {
  const pos = q * (sorted.length - 1);
  const below = Math.floor(pos);
  const above = Math.min(sorted.length - 1, below + 1);
  return sorted[below]! + (pos - below) * (sorted[above]! - sorted[below]!);
}
