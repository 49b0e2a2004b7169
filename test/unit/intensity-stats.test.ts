// Consortium-wide intensity z-score (issue 13.1, images): per-modality voxel statistics [n, sum, sumsq] of each site's raw training
// crops, added up, give exactly the pooled mean and sd; every site then applies the same transform.
import { describe, expect, it } from 'vitest';
import { parsePreprocessConfig, preprocessCases, type PreprocessCase } from '../../src/data/preprocess.ts';
import { synthCase } from '../../src/data/synth.ts';
import { agreeStandardiser, combineStats } from '../../src/data/standardiser-stats.ts';
import { agreedIntensity, applyAgreedIntensity, checkIntensityScope, intensityStats, INTENSITY_PREFIX } from '../../src/data/intensity-stats.ts';
import type { SampleSet } from '../../src/data/samples.ts';

const config = { modalities: ['PT', 'CT'], size: [24, 24], crop: 'mask' as const,
  intensity: { PT: { method: 'zscore' as const, scope: 'consortium' as const }, CT: { method: 'window' as const, level: 40, width: 400 } } };
const cfg = parsePreprocessConfig(config);

function site(s: number, n: number): SampleSet {
  const cases: PreprocessCase[] = Array.from({ length: n }, (_, k) => {
    const c = synthCase(s, k, { twoD: true, seed: 3 });
    return { subject: c.subject, images: { PT: c.pet, CT: c.ct }, mask: c.mask };
  });
  return preprocessCases(cases, config, 7).set;
}

/** One channel of every sample, as float64 values. */
function channel(set: SampleSet, c: number): number[] {
  const img = set.inputs.image!;
  const C = img.shape[0]!, per = img.data.length / set.size / C;
  const out: number[] = [];
  for (let i = 0; i < set.size; i++) out.push(...img.data.subarray((i * C + c) * per, (i * C + c + 1) * per));
  return out;
}

describe('consortium intensity statistics', () => {
  const a = site(0, 12), b = site(2, 15);

  it('a consortium-scope channel stays raw in preprocessing; the others are normalised per image as before', () => {
    const raw = preprocessCases([0, 1].map((k) => { const c = synthCase(0, k, { twoD: true, seed: 3 }); return { subject: c.subject, images: { PT: c.pet, CT: c.ct }, mask: c.mask }; }),
      { ...config, intensity: { PT: { method: 'none' }, CT: config.intensity.CT } }, 7).set;
    expect(channel(a, 0).slice(0, raw.inputs.image!.data.length / 4)).toEqual(channel(raw, 0).slice(0, raw.inputs.image!.data.length / 4));
    expect(Math.max(...channel(a, 1))).toBeLessThanOrEqual(1);   // CT windowed to [0, 1]
    expect(Math.max(...channel(a, 0))).toBeGreaterThan(1);       // PT raw (uptake values)
  });

  it('exact: the sites\' sums give the pooled mean and sd of all training voxels (any order: same bits, same hash)', () => {
    const sa = intensityStats(a, cfg, { minCount: 10 })!, sb = intensityStats(b, cfg, { minCount: 10 })!;
    expect(Object.keys(sa.inputs)).toEqual([`${INTENSITY_PREFIX}PT`]);   // only the consortium modality leaves the site
    const ab = agreeStandardiser(combineStats([sa, sb])), ba = agreeStandardiser(combineStats([sb, sa]));
    expect(ab.hash).toBe(ba.hash);
    const pooled = [...channel(a, 0), ...channel(b, 0)];
    const mean = pooled.reduce((x, y) => x + y, 0) / pooled.length;
    const sd = Math.sqrt(pooled.reduce((x, y) => x + (y - mean) ** 2, 0) / (pooled.length - 1));
    const got = agreedIntensity(ab, cfg).PT!;
    expect(ab.inputs[`${INTENSITY_PREFIX}PT`]!.mean).toHaveLength(1);
    expect(Math.abs(got.mean - mean) / Math.abs(mean)).toBeLessThan(1e-9);
    expect(Math.abs(got.std - sd) / sd).toBeLessThan(1e-9);
    // not what either site alone gives: the sites' scanners differ (PET calibration)
    const alone = agreedIntensity(agreeStandardiser(combineStats([sa])), cfg).PT!;
    expect(Math.abs(alone.mean - got.mean) / got.mean).toBeGreaterThan(1e-3);
  });

  it('applied: every site\'s PT channel on one scale (pooled mean 0, sd 1), CT untouched', () => {
    const agreed = agreeStandardiser(combineStats([intensityStats(a, cfg)!, intensityStats(b, cfg)!]));
    const za = applyAgreedIntensity(a, cfg, agreed), zb = applyAgreedIntensity(b, cfg, agreed);
    const z = [...channel(za, 0), ...channel(zb, 0)];
    const m = z.reduce((x, y) => x + y, 0) / z.length;
    const v = z.reduce((x, y) => x + (y - m) ** 2, 0) / (z.length - 1);
    expect(Math.abs(m)).toBeLessThan(1e-5);
    expect(Math.abs(v - 1)).toBeLessThan(1e-4);
    expect(channel(za, 1)).toEqual(channel(a, 1));
    const { mean, std } = agreedIntensity(agreed, cfg).PT!;
    expect(za.inputs.image!.data[0]).toBeCloseTo((a.inputs.image!.data[0]! - mean) / std, 5);
  });

  it('small sites share nothing; a missing modality and standardize on top are refused with a clear error', () => {
    expect(intensityStats(site(1, 3), cfg, { minCount: 10 })).toBeNull();
    const tableOnly = agreeStandardiser(combineStats([{ rows: 20, sites: 1, inputs: { features: { n: [20], sum: [1], sumsq: [2] } } }]));
    expect(() => agreedIntensity(tableOnly, cfg)).toThrow(/no intensity statistics for PT/);
    expect(() => checkIntensityScope({ ...config, standardize: 'consortium' }, cfg)).toThrow(/standardize/);
    expect(() => checkIntensityScope(config, cfg)).not.toThrow();
    expect(() => parsePreprocessConfig({ ...config, intensity: { PT: { method: 'zscore', scope: 'global' } } })).toThrow(/intensity\.PT\.scope/);
  });
});
