import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeSynthSite } from '../../src/data/synth.ts';
import { normaliseIntensity, parsePreprocessConfig, preprocessFolder, resample, samplePatches, splitBySubject } from '../../src/data/preprocess.ts';
import { makeVolume } from '../../src/data/volume.ts';
import { Rng } from '../../src/util/random.ts';
import { CohortError } from '../../src/util/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'cohort-pre-'));
const config = {
  modalities: ['CT', 'PT'], spacing: [3, 3, 3], size: [16, 16, 8],
  intensity: { CT: { method: 'window', level: 40, width: 400 }, PT: { method: 'suv', max: 10 } },
  augment: { flip: true, rotate90: true, jitter: 0.05, copies: 2 }, label: 'outcome', tabular: { columns: ['age', 'smoker', 'sex'] },
};

beforeAll(() => { writeSynthSite(dir, { site: 0, cases: 4, fovMm: [48, 48, 32] }); });

describe('preprocessing and harmonisation', () => {
  it('produces image, mask, label and clinical tensors with the configured shapes', () => {
    const { set, stats, sampleCase, subjects } = preprocessFolder(dir, config, 5);
    expect(set.size).toBe(8);
    expect(Array.from(sampleCase)).toEqual([0, 0, 1, 1, 2, 2, 3, 3]); // two augmented copies per subject
    expect(subjects).toEqual(['s0-0000', 's0-0001', 's0-0002', 's0-0003']);
    const split = splitBySubject({ set, sampleCase, subjects }, 0.5, 1);
    const side = (i: number) => (split.test.includes(i) ? 'test' : 'train');
    for (let i = 0; i < 8; i += 2) expect(side(i)).toBe(side(i + 1)); // both copies of a subject on one side
    expect(split.test.length).toBeGreaterThan(0);
    expect(split.train.length).toBeGreaterThan(0);
    expect(set.inputs.image.shape).toEqual([2, 8, 16, 16]);
    expect(set.targets.mask.shape).toEqual([1, 8, 16, 16]);
    expect(set.targets.label.shape).toEqual([]);
    expect(set.inputs.clinical.shape).toEqual([4]); // age, smoker, sex=F, sex=M
    expect(set.targets.mask.data.some((v) => v === 1)).toBe(true); // cropped around the lesion
    expect(stats.cases).toBe(4);
    expect(Object.keys(stats.intensity)).toEqual(['CT', 'PT']);
    expect(JSON.stringify(stats)).not.toContain(dir); // statistics only, no paths
  });

  it('is deterministic for a seed and changes with it', () => {
    const a = preprocessFolder(dir, config, 5), b = preprocessFolder(dir, config, 5), c = preprocessFolder(dir, config, 6);
    expect(Array.from(a.set.inputs.image.data)).toEqual(Array.from(b.set.inputs.image.data));
    expect(Array.from(a.set.inputs.image.data)).not.toEqual(Array.from(c.set.inputs.image.data));
  });

  it('2D slices with lesion-aware patches', () => {
    const { set } = preprocessFolder(dir, { modalities: ['PT'], size: [12, 12], patches: { count: 3, lesionFraction: 1 } }, 1);
    expect(set.size).toBe(12);
    expect(set.inputs.image.shape).toEqual([1, 12, 12]);
    for (let s = 0; s < set.size; s++) expect(set.targets.mask.data.subarray(s * 144, (s + 1) * 144).some((v) => v === 1)).toBe(true);
  });

  it('resamples, windows, clips and samples patches as specified', () => {
    const v = makeVolume([4, 4, 2], [1, 1, 2], Float32Array.from({ length: 32 }, (_, i) => i));
    const r = resample(v, [2, 2, 1], 'linear');
    expect(r.dims).toEqual([2, 2, 4]);
    expect(r.spacing).toEqual([2, 2, 1]);
    const d = Float32Array.from([-1000, -160, 40, 240, 3000]);
    normaliseIntensity(d, { method: 'window', level: 40, width: 400 });
    expect(Array.from(d)).toEqual([0, 0, 0.5, 1, 1]);
    const z = Float32Array.from([1, 2, 3, 4]);
    normaliseIntensity(z, { method: 'zscore' });
    expect(z.reduce((a, b) => a + b, 0)).toBeCloseTo(0, 5);
    const mask = makeVolume([10, 10, 10], [1, 1, 1]);
    mask.data[555] = 1;
    const centres = samplePatches(mask.dims, mask, 20, 1, new Rng(1));
    expect(centres.every((c) => c[0] === 5.5 && c[1] === 5.5 && c[2] === 5.5)).toBe(true);
  });

  it('rejects a bad config and a missing clinical row with clear errors', () => {
    expect(() => parsePreprocessConfig({ size: [16], modalities: ['CT'] })).toThrow(CohortError);
    expect(() => parsePreprocessConfig({ size: [8, 8], intensity: { CT: { method: 'window', level: 0 } } })).toThrow(/intensity/);
    const d2 = mkdtempSync(join(tmpdir(), 'cohort-pre2-'));
    writeSynthSite(d2, { site: 1, cases: 2, fovMm: [32, 32, 24] });
    writeFileSync(join(d2, 'clinical.csv'), 'subject,outcome\ns1-0000,1\n');
    expect(() => preprocessFolder(d2, { modalities: ['PT'], size: [8, 8], label: 'outcome' }, 1)).toThrow(/s1-0001/);
  });
});
