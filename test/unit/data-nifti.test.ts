import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { readNifti, writeNifti, encodeNifti } from '../../src/data/nifti.ts';
import { makeVolume, orientationCode, toCanonical, valueRange } from '../../src/data/volume.ts';
import { CohortError } from '../../src/util/errors.ts';

const NIB = '/usr/lib/python3/dist-packages/nibabel/tests/data';
const tmp = mkdtempSync(join(tmpdir(), 'cohort-nifti-'));

function errorOf(f: () => unknown): CohortError {
  try { f(); } catch (e) { if (e instanceof CohortError) return e; throw e; }
  throw new Error('expected a CohortError');
}

describe('NIfTI reader and writer', () => {
  it('reads the IBSI phantom (gzip, int16, 2 mm)', () => {
    const v = readNifti('test/fixtures/data/ibsi-digital-phantom/phantom.nii.gz');
    expect(v.dims).toEqual([5, 4, 4]);
    expect(v.spacing).toEqual([2, 2, 2]);
    expect(v.dtype).toBe('int16');
    expect(valueRange(v.data).max).toBe(9);
  });

  it('round-trips NIfTI-1 and NIfTI-2, plain and gzip, keeping spacing, affine and values', () => {
    const data = Float32Array.from({ length: 6 * 5 * 4 }, (_, i) => (i * 37) % 101 - 50);
    const affine = [[-1.5, 0, 0, 10], [0, 2, 0, -20], [0, 0, 3, 5], [0, 0, 0, 1]];
    const vol = makeVolume([6, 5, 4], [1.5, 2, 3], data, affine);
    for (const [name, version, dtype] of [['a.nii', 1, 'int16'], ['b.nii.gz', 1, 'float32'], ['c.nii.gz', 2, 'float64']] as const) {
      writeNifti(join(tmp, name), vol, { version, dtype });
      const r = readNifti(join(tmp, name));
      expect(r.dims).toEqual([6, 5, 4]);
      expect(r.spacing).toEqual([1.5, 2, 3]);
      expect(r.affine).toEqual(affine);
      expect(orientationCode(r.affine)).toBe('LAS');
      expect(Array.from(r.data)).toEqual(Array.from(data));
    }
  });

  it('reorients to RAS keeping every voxel at its world position', () => {
    const affine = [[0, 0, -2, 40], [-1, 0, 0, 10], [0, 3, 0, -5], [0, 0, 0, 1]]; // voxel axes point P, S, L
    const v = makeVolume([4, 3, 5], [1, 3, 2], Float32Array.from({ length: 60 }, (_, i) => i), affine);
    expect(orientationCode(affine)).toBe('PSL');
    const c = toCanonical(v);
    expect(orientationCode(c.affine)).toBe('RAS');
    expect(c.dims).toEqual([5, 4, 3]);
    expect(c.spacing).toEqual([2, 1, 3]);
    const world = (a: number[][], p: number[]) => [0, 1, 2].map((r) => a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3]);
    for (const [i, j, k] of [[0, 0, 0], [4, 3, 2], [1, 2, 0], [3, 0, 1]]) {
      const value = c.data[i + 5 * (j + 4 * k)];
      const src = [value % 4, Math.floor(value / 4) % 3, Math.floor(value / 12)];
      expect(world(c.affine, [i, j, k])).toEqual(world(affine, src));
    }
  });

  it('names the file for truncated, corrupt and non-NIfTI input', () => {
    const bytes = encodeNifti(makeVolume([8, 8, 8], [1, 1, 1]));
    writeFileSync(join(tmp, 'trunc.nii'), bytes.subarray(0, bytes.length - 100));
    const e1 = errorOf(() => readNifti(join(tmp, 'trunc.nii')));
    expect(e1.code).toBe('TRUNCATED_FILE');
    expect(e1.message).toContain('trunc.nii');
    const gz = gzipSync(bytes);
    writeFileSync(join(tmp, 'cut.nii.gz'), gz.subarray(0, gz.length >> 1));
    const e2 = errorOf(() => readNifti(join(tmp, 'cut.nii.gz')));
    expect(e2.code).toBe('CORRUPT_FILE');
    expect(e2.message).toContain('cut.nii.gz');
    writeFileSync(join(tmp, 'text.nii'), 'hello world'.repeat(50));
    expect(errorOf(() => readNifti(join(tmp, 'text.nii'))).code).toBe('NOT_NIFTI');
    expect(errorOf(() => readNifti(join(tmp, 'missing.nii'))).message).toContain('missing.nii');
  });

  it.skipIf(!existsSync(NIB))('reads nibabel test files (values cross-checked with nibabel 5.0)', () => {
    // dev-only source: Debian's python3-nibabel; skipped with this message when it is not installed
    const a = readNifti(join(NIB, 'anatomical.nii')); // big-endian int16
    expect(a.dims).toEqual([33, 41, 25]);
    expect(a.spacing).toEqual([2, 2, 2]);
    expect(orientationCode(a.affine)).toBe('LAS');
    const ra = valueRange(a.data);
    expect([ra.min, ra.max]).toEqual([-610, 30393]);
    expect(ra.mean).toBeCloseTo(8401.0667, 2);
    expect(Array.from(a.data.subarray(1000, 1003))).toEqual([4222, 5786, 9673]);
    const b = readNifti(join(NIB, 'example_nifti2.nii.gz')); // NIfTI-2, 4D: first frame
    expect(b.dims).toEqual([32, 20, 12]);
    expect(b.spacing[2]).toBeCloseTo(2.2, 5);
    expect(valueRange(b.data).mean).toBeCloseTo(450.7484, 3);
    const s = readNifti(join(NIB, 'standard.nii.gz'));
    expect([s.dims, s.spacing, orientationCode(s.affine), s.dtype]).toEqual([[4, 5, 7], [1, 3, 2], 'RAS', 'uint8']);
    expect(readFileSync(join(NIB, 'anatomical.nii')).length).toBeGreaterThan(0);
  });
});
