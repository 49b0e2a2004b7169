// Committed real-format fixtures (test/fixtures/data/generated, made by test/fixtures/data/generate.ts). The expected values
// below were read with nibabel 5.0 and pydicom 2.3 when the files were generated, so these are checks against other tools.
import { cpSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { preprocessFolder } from '../../src/data/preprocess.ts';
import { readNifti } from '../../src/data/nifti.ts';
import { readDicomSeries } from '../../src/data/dicom.ts';
import { readDicomSeg, readMaskFile, readRtStruct } from '../../src/data/masks.ts';
import { readPng } from '../../src/data/png.ts';
import { orientationCode, toCanonical } from '../../src/data/volume.ts';
import { computeRadiomics } from '../../src/data/radiomics.ts';

const G = 'test/fixtures/data/generated';
const at = (d: Float32Array, x: number, y: number, z: number) => d[x + 10 * (y + 8 * z)];

describe('committed fixtures', () => {
  it('NIfTI-1 (gz, int16) and NIfTI-2 match nibabel: shape, zooms, LAS, origin, values', () => {
    for (const f of ['ct-las.nii.gz', 'ct-las-v2.nii']) {
      const v = readNifti(`${G}/${f}`);
      expect(v.dims).toEqual([10, 8, 6]);
      expect(v.spacing).toEqual([1.25, 1.25, 2.5]);
      expect(orientationCode(v.affine)).toBe('LAS');
      expect(v.affine.slice(0, 3).map((r) => r[3])).toEqual([20, -10, 30]);
      expect(at(v.data, 3, 2, 1)).toBe(230);
      expect(v.data.reduce((a, b) => a + b, 0)).toBe(909600);
    }
  });

  it('the DICOM series matches pydicom and the NIfTI volume voxel for voxel', () => {
    const s = readDicomSeries(`${G}/ct-series`);
    const n = readNifti(`${G}/ct-las.nii.gz`);
    expect(s.volume.dims).toEqual([10, 8, 6]);
    // the slice axis follows the slice normal (row x column cosines = inferior here), as ITK orders it: the file with the
    // lowest z (pydicom: slice 1, row 2, column 3 = -770) is the last slice
    expect(orientationCode(s.volume.affine)).toBe('LAI');
    expect(at(s.volume.data, 3, 2, 5)).toBe(-770);
    const a = toCanonical(s.volume), b = toCanonical(n);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    a.affine.forEach((r, i) => r.forEach((v, j) => expect(v).toBeCloseTo(b.affine[i][j], 6)));
  });

  it('SEG, RTSTRUCT and NIfTI masks agree on the image grid', () => {
    const image = readDicomSeries(`${G}/ct-series`).volume;
    const seg = readDicomSeg(`${G}/seg.dcm`, image);
    const nii = readMaskFile(`${G}/mask.nii.gz`, image, `${G}/ct-series`);
    expect(seg.data.reduce((a, b) => a + b, 0)).toBe(48); // pydicom: 2 frames, 48 pixels set
    expect(Array.from(seg.data)).toEqual(Array.from(nii.data));
    const rt = readRtStruct(`${G}/rtstruct.dcm`, image, { roi: 'GTV' });
    expect(rt.data.reduce((a, b) => a + b, 0)).toBe(16); // square 2.5..6.5 -> pixel centres 3..6
    expect(at(rt.data, 3, 3, 3)).toBe(1); // NIfTI slice 2 = series slice 3 (reversed slice axis)
    expect(computeRadiomics(image, nii).morph_vol_approx).toBeCloseTo(48 * 1.25 * 1.25 * 2.5, 6);
  });

  it('a medical folder of DICOM series with SEG and RTSTRUCT masks preprocesses like NIfTI', () => {
    const root = mkdtempSync(join(tmpdir(), 'cohort-dcmfolder-'));
    for (const [subject, mask] of [['a', 'seg.dcm'], ['b', 'rtstruct.dcm']]) {
      cpSync(`${G}/ct-series`, join(root, subject, 'CT'), { recursive: true });
      mkdirSync(join(root, subject, 'SEG'), { recursive: true });
      cpSync(`${G}/${mask}`, join(root, subject, 'SEG', mask));
    }
    const { set } = preprocessFolder(root, { modalities: ['CT'], size: [8, 8, 4], intensity: { CT: { method: 'none' } } }, 1);
    expect(set.size).toBe(2);
    const per = 8 * 8 * 4;
    const voxels = (k: number) => set.targets.mask.data.subarray(k * per, (k + 1) * per).reduce((a, b) => a + b, 0);
    expect([voxels(0), voxels(1)]).toEqual([48, 16]); // canonical RAS grid, the crops hold the whole lesions
  });

  it('16-bit PNG', () => {
    const p = readPng(`${G}/grey16.png`);
    expect([p.width, p.height, p.bitDepth, p.data[11]]).toEqual([4, 3, 16, 55000]);
  });
});
