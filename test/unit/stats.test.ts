import { describe, expect, it } from 'vitest';
import { bootstrapInterval, normalQuantile, pairedInterval, percentile, studentTCdf, studentTQuantile, tInterval, wilsonInterval } from '../../src/util/stats.ts';
import { rocAuc } from '../../src/engine/metrics.ts';

// reference values: scipy 1.17 (stats.t.ppf, stats.t.cdf, stats.norm.ppf) and the Wilson formula in float64
describe('student t', () => {
  it('matches scipy quantiles', () => {
    const ref: [number, number, number][] = [
      [1, 12.706204736174694, 63.656741162871526], [2, 4.302652729749462, 9.924843200918287], [4, 2.7764451051977934, 4.604094871349992],
      [9, 2.262157162798205, 3.249835541592126], [30, 2.0422724563012378, 2.7499956535672254], [100, 1.9839715185235518, 2.6258905214380173],
    ];
    for (const [df, q975, q995] of ref) {
      expect(studentTQuantile(0.975, df)).toBeCloseTo(q975, 7);
      expect(studentTQuantile(0.995, df)).toBeCloseTo(q995, 6);
      expect(studentTQuantile(0.025, df)).toBeCloseTo(-q975, 7);
    }
  });
  it('matches scipy CDF values and tends to the normal', () => {
    expect(studentTCdf(1.5, 1)).toBeCloseTo(0.8128329581890011, 10);
    expect(studentTCdf(1.5, 4)).toBeCloseTo(0.896, 10);
    expect(studentTCdf(1.5, 30)).toBeCloseTo(0.927967035435677, 10);
    expect(studentTCdf(-1.5, 9)).toBeCloseTo(1 - 0.9160746719714625, 10);
    expect(studentTCdf(0, 7)).toBe(0.5);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 8);
    expect(normalQuantile(0.995)).toBeCloseTo(2.5758293035489004, 8);
    expect(studentTQuantile(0.975, Infinity)).toBeCloseTo(1.959963984540054, 8);
  });
  it('refuses probabilities outside (0, 1) and non-positive degrees of freedom', () => {
    expect(() => studentTQuantile(1, 3)).toThrow(RangeError);
    expect(() => studentTCdf(1, 0)).toThrow(RangeError);
  });
});

describe('tInterval', () => {
  it('gives mean ± t sd/√n (scipy reference)', () => {
    const r = tInterval([0.9714, 0.9561, 0.9649, 0.9781, 0.9605]);
    expect(r.n).toBe(5);
    expect(r.mean).toBeCloseTo(0.9662, 12);
    expect(r.sd).toBeCloseTo(0.008729833904490975, 12);
    expect(r.half).toBeCloseTo(0.010839520469505039, 9);
    expect(r.lo).toBeCloseTo(0.9662 - 0.010839520469505039, 9);
    expect(r.hi).toBeCloseTo(0.9662 + 0.010839520469505039, 9);
  });
  it('drops non-finite values and has no width for fewer than two', () => {
    const r = tInterval([1, Number.NaN, 3]);
    expect(r.n).toBe(2);
    expect(r.mean).toBe(2);
    expect(r.half).toBeCloseTo(12.706204736174694, 7); // t(0.975, 1) · sd/√n with sd = √2, n = 2
    const one = tInterval([0.5]);
    expect(one.mean).toBe(0.5);
    expect(Number.isNaN(one.half)).toBe(true);
    expect(Number.isNaN(tInterval([]).mean)).toBe(true);
  });
  it('a constant sample has zero width', () => {
    const r = tInterval([0.97, 0.97, 0.97]);
    expect(r.half).toBeCloseTo(0, 12);
    expect(r.lo).toBeCloseTo(0.97, 15);
  });
});

describe('pairedInterval', () => {
  it('is the t interval of the differences, narrower than the unpaired one when the pairs move together', () => {
    const a = [0.90, 0.95, 0.85, 0.99, 0.92];
    const b = a.map((x, i) => x - 0.02 + (i % 2 ? 0.001 : -0.001));
    const d = pairedInterval(a, b);
    expect(d.mean).toBeCloseTo(0.0202, 12); // differences 0.021, 0.019, 0.021, 0.019, 0.021
    expect(d.lo).toBeGreaterThan(0);
    expect(tInterval(a).half).toBeGreaterThan(10 * d.half);
    expect(() => pairedInterval([1], [1, 2])).toThrow(RangeError);
  });
});

describe('wilsonInterval', () => {
  it('matches the Wilson score formula', () => {
    const w = wilsonInterval(110, 113);
    expect(w.lo).toBeCloseTo(0.9248403062316028, 9);
    expect(w.hi).toBeCloseTo(0.9909305261422301, 9);
    const big = wilsonInterval(220, 228);
    expect(big.lo).toBeCloseTo(0.9323027388836017, 9);
    expect(big.hi).toBeCloseTo(0.9821152477801233, 9);
  });
  it('stays inside [0, 1] at the edges', () => {
    expect(wilsonInterval(0, 20).lo).toBe(0);
    expect(wilsonInterval(0, 20).hi).toBeCloseTo(0.16112515805281938, 9);
    expect(wilsonInterval(20, 20).hi).toBe(1);
    expect(wilsonInterval(20, 20).lo).toBeCloseTo(0.8388748419471806, 9);
    expect(() => wilsonInterval(3, 2)).toThrow(RangeError);
  });
});

describe('wilsonInterval on a small site (issue 13: "1.000 vs 0.941" is one patient of 17)', () => {
  // statsmodels.stats.proportion.proportion_confint(k, 17, method='wilson'): (0.81568, 1.0) and (0.73018, 0.98954);
  // the values below are that formula worked in float64 with z = 1.959963984540054
  it('17/17 and 16/17 overlap almost entirely', () => {
    const all = wilsonInterval(17, 17);
    expect(all.lo).toBeCloseTo(0.8156818649911483, 9);
    expect(all.hi).toBe(1);
    const one = wilsonInterval(16, 17);
    expect(one.lo).toBeCloseTo(0.7301796936242461, 9);
    expect(one.hi).toBeCloseTo(0.9895395990150025, 9);
    expect(one.hi).toBeGreaterThan(all.lo);
  });
});

describe('bootstrapInterval', () => {
  const values = Array.from({ length: 200 }, (_, i) => Math.sin(i * 12.9898) * 0.5 + (i % 7) / 7);
  const mean = (idx: Int32Array): number => { let s = 0; for (const i of idx) s += values[i]!; return s / idx.length; };
  it('for a mean, agrees with the t interval on 200 values (within a tenth of its width) and is reproducible by seed', () => {
    const t = tInterval(values);
    const b = bootstrapInterval(values.length, mean, { seed: 7, resamples: 2000 });
    expect(b.used).toBe(2000);
    expect(Math.abs(b.lo - t.lo)).toBeLessThan(0.1 * (t.hi - t.lo));
    expect(Math.abs(b.hi - t.hi)).toBeLessThan(0.1 * (t.hi - t.lo));
    expect(bootstrapInterval(values.length, mean, { seed: 7, resamples: 2000 })).toEqual(b);
    expect(bootstrapInterval(values.length, mean, { seed: 8, resamples: 2000 })).not.toEqual(b);
  });
  it('an AUC of perfectly separated classes stays [1, 1]; resamples with one class are skipped', () => {
    const label = Float32Array.from({ length: 20 }, (_, i) => (i < 3 ? 1 : 0));
    const score = Float32Array.from({ length: 20 }, (_, i) => (i < 3 ? 0.9 : 0.1));
    const pick = (a: Float32Array, idx: Int32Array): Float32Array => Float32Array.from(idx, (i) => a[i]!);
    const b = bootstrapInterval(20, (idx) => rocAuc(pick(score, idx), pick(label, idx)), { seed: 1 });
    expect(b).toMatchObject({ lo: 1, hi: 1 });
    // P(no positive in 20 draws) = (17/20)^20 = 3.9%: some resamples are skipped, most are used
    expect(b.used).toBeLessThan(1000);
    expect(b.used).toBeGreaterThan(900);
  });
  it('gives NaN when the statistic is mostly undefined, and percentile interpolates like numpy', () => {
    expect(bootstrapInterval(5, () => Number.NaN).lo).toBeNaN();
    expect(percentile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(percentile([1, 2, 3, 4], 0.025)).toBeCloseTo(1.075, 12);
  });
});
