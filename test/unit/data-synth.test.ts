import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { siteProfile, synthCase, writeSynthSite } from '../../src/data/synth.ts';
import { readNifti } from '../../src/data/nifti.ts';
import { computeRadiomics } from '../../src/data/radiomics.ts';
import { readDicomSeries } from '../../src/data/dicom.ts';
import { preprocessFolder } from '../../src/data/preprocess.ts';

function auc(scores: number[], labels: number[]): number {
  let s = 0, n = 0;
  scores.forEach((a, i) => scores.forEach((b, j) => { if (labels[i] === 1 && labels[j] === 0) { s += a > b ? 1 : a === b ? 0.5 : 0; n++; } }));
  return s / n;
}

describe('synthetic PET/CT-like sites', () => {
  it('is reproducible by seed and differs with it', () => {
    const a = synthCase(1, 4, { twoD: true }), b = synthCase(1, 4, { twoD: true }), c = synthCase(1, 4, { twoD: true, seed: 2 });
    expect(Array.from(a.pet.data)).toEqual(Array.from(b.pet.data));
    expect(a.clinical).toEqual(b.clinical);
    expect(Array.from(a.mask.data)).not.toEqual(Array.from(c.mask.data));
  });

  it('sites differ measurably in intensity statistics (scanner effects) and spacing', () => {
    const stats = [0, 1, 2].map((site) => {
      let pet = 0, n = 0, ct = 0, ct2 = 0;
      for (let i = 0; i < 8; i++) {
        const c = synthCase(site, i, { twoD: true });
        for (let k = 0; k < c.pet.data.length; k++) {
          if (c.mask.data[k] || c.ct.data[k] < -500) continue;
          pet += c.pet.data[k]; ct += c.ct.data[k]; ct2 += c.ct.data[k] ** 2; n++;
        }
      }
      return { pet: pet / n, ctSd: Math.sqrt(ct2 / n - (ct / n) ** 2), spacing: siteProfile(site).spacing[0] };
    });
    expect(stats[1].pet / stats[0].pet).toBeGreaterThan(1.3); // PET calibration 1.21 vs 0.77
    expect(stats[1].ctSd / stats[0].ctSd).toBeGreaterThan(1.3); // CT noise 35 vs 23 HU
    expect(new Set(stats.map((s) => s.spacing)).size).toBe(3);
  });

  it('lesions stay learnable: exact masks cover high-uptake voxels and lesion size predicts the outcome', () => {
    const sizes: number[] = [], outcomes: number[] = [];
    for (const site of [0, 1, 2]) for (let i = 0; i < 50; i++) {
      const c = synthCase(site, i, { twoD: true });
      let inside = 0, lesionPet = 0, bodyPet = 0, body = 0;
      for (let k = 0; k < c.mask.data.length; k++) {
        if (c.mask.data[k]) { inside++; lesionPet += c.pet.data[k]; } else if (c.ct.data[k] > -500) { bodyPet += c.pet.data[k]; body++; }
      }
      expect(inside).toBeGreaterThan(0);
      expect(lesionPet / inside).toBeGreaterThan(1.5 * (bodyPet / body));
      sizes.push(inside * c.mask.spacing[0] * c.mask.spacing[1]);
      outcomes.push(c.clinical.outcome);
    }
    const balance = outcomes.reduce((a, b) => a + b, 0) / outcomes.length;
    expect(balance).toBeGreaterThan(0.3);
    expect(balance).toBeLessThan(0.8);
    expect(auc(sizes, outcomes)).toBeGreaterThan(0.6);
  });

  it('writes the medical-folder layout, labelled synthetic, readable and with masks on the image grid', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-synth-'));
    const r = writeSynthSite(dir, { site: 2, cases: 2, fovMm: [48, 48, 36] });
    expect(r.subjects).toEqual(['s2-0000', 's2-0001']);
    expect(readFileSync(join(dir, 'README.txt'), 'utf8')).toMatch(/^SYNTHETIC DATA/);
    expect(readFileSync(r.clinical, 'utf8').split('\n')[0]).toBe('subject,site,age,sex,smoker,outcome');
    const pet = readNifti(join(dir, 's2-0000', 'PT', 'pet.nii.gz'));
    const mask = readNifti(join(dir, 's2-0000', 'SEG', 'mask.nii.gz'));
    expect(pet.dims).toEqual(mask.dims);
    expect(existsSync(join(dir, 's2-0001', 'CT', 'ct.nii.gz'))).toBe(true);
    const f = computeRadiomics(pet, mask, { discretisation: { method: 'fbn', bins: 16 } });
    expect(f.morph_volume).toBeGreaterThan(0);
    expect(f.stat_max).toBeGreaterThan(f.stat_min);
  });

  it('writes DICOM series (CT in HU, PET as Bq/ml + SUV tags) and a SEG that read back like the NIfTI site', () => {
    const nii = mkdtempSync(join(tmpdir(), 'cohort-synth-nii-')), dcm = mkdtempSync(join(tmpdir(), 'cohort-synth-dcm-'));
    writeSynthSite(nii, { site: 0, cases: 1, fovMm: [32, 32, 16] });
    writeSynthSite(dcm, { site: 0, cases: 1, fovMm: [32, 32, 16], format: 'dicom' });
    const pet = readDicomSeries(join(dcm, 's0-0000', 'PT'));
    expect(pet.unit).toBe('SUVbw');
    const ref = readNifti(join(nii, 's0-0000', 'PT', 'pet.nii.gz'));
    let err = 0;
    for (let i = 0; i < ref.data.length; i++) err = Math.max(err, Math.abs(pet.volume.data[i] - ref.data[i]));
    expect(err).toBeLessThan(0.002);
    const cfg = { modalities: ['CT', 'PT'], size: [8, 8, 4], intensity: { CT: { method: 'none' as const }, PT: { method: 'none' as const } } };
    const a = preprocessFolder(nii, cfg, 1).set, b = preprocessFolder(dcm, cfg, 1).set;
    expect(Array.from(b.targets.mask.data)).toEqual(Array.from(a.targets.mask.data));
    let d = 0;
    for (let i = 0; i < a.inputs.image.data.length; i++) d = Math.max(d, Math.abs(a.inputs.image.data[i] - b.inputs.image.data[i]));
    expect(d).toBeLessThan(0.002);
  });
});
