import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readDicomSeries, writeDicomSeries } from '../../src/data/dicom.ts';
import { readDicomSeg, readMaskFile, readRtStruct, writeDicomSeg, writeRtStruct } from '../../src/data/masks.ts';
import { writeNifti } from '../../src/data/nifti.ts';
import { encodePng, readPng, readPngVolume, writePng } from '../../src/data/png.ts';
import { diagonalAffine, makeVolume, orientationCode, valueRange } from '../../src/data/volume.ts';
import { CohortError } from '../../src/util/errors.ts';

const PYDICOM = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const tmp = mkdtempSync(join(tmpdir(), 'cohort-dicom-'));

function errorOf(f: () => unknown): CohortError {
  try { f(); } catch (e) { if (e instanceof CohortError) return e; throw e; }
  throw new Error('expected a CohortError');
}

// a 24x20x12 CT-like volume: -1000 outside a box of 40 HU with a 200 HU core; 1.5 x 1.5 x 3 mm
function ctVolume() {
  const dims: [number, number, number] = [24, 20, 12];
  const data = new Float32Array(24 * 20 * 12).fill(-1000);
  for (let z = 2; z < 10; z++) for (let y = 4; y < 16; y++) for (let x = 4; x < 20; x++) data[x + 24 * (y + 20 * z)] = x > 10 && x < 14 && y > 8 && y < 12 ? 200 : 40;
  return makeVolume(dims, [1.5, 1.5, 3], data, diagonalAffine([1.5, 1.5, 3], [-18, -15, 100]));
}

describe('DICOM series', () => {
  it('writes and reads back a CT series: sorted by position, HU, spacing, orientation', () => {
    const vol = ctVolume();
    const dir = join(tmp, 'ct');
    const files = writeDicomSeries(dir, vol, { modality: 'CT', intercept: -1024 });
    expect(files).toHaveLength(12);
    // shuffle file order on disk: rename does not matter, the reader sorts by ImagePositionPatient
    const s = readDicomSeries([...files].reverse());
    expect(s.modality).toBe('CT');
    expect(s.unit).toBe('HU');
    expect(s.volume.dims).toEqual([24, 20, 12]);
    expect(s.volume.spacing.map((v) => Number(v.toFixed(4)))).toEqual([1.5, 1.5, 3]);
    expect(orientationCode(s.volume.affine)).toBe('RAS');
    s.volume.affine.forEach((r, i) => r.forEach((v, j) => expect(v).toBeCloseTo(vol.affine[i][j], 4)));
    expect(Array.from(s.volume.data)).toEqual(Array.from(vol.data));
  });

  it('converts PET activity (Bq/ml) to body-weight SUV from the DICOM tags, with decay correction', () => {
    const suv = makeVolume([8, 8, 4], [4, 4, 4], Float32Array.from({ length: 256 }, (_, i) => (i % 17) / 2));
    const weightKg = 72, doseBq = 3.7e8, halfLifeS = 6586.2, dt = 3600;
    const decayed = doseBq * 2 ** (-dt / halfLifeS);
    const activity = makeVolume(suv.dims, suv.spacing, suv.data.map((v) => (v * decayed) / (weightKg * 1000)));
    writeDicomSeries(join(tmp, 'pt'), activity, { modality: 'PT', slope: 1, pet: { weightKg, doseBq, halfLifeS, injectionTime: '093000', seriesTime: '103000' } });
    const s = readDicomSeries(join(tmp, 'pt'));
    expect(s.unit).toBe('SUVbw');
    let err = 0;
    for (let i = 0; i < 256; i++) err = Math.max(err, Math.abs(s.volume.data[i] - suv.data[i]));
    expect(err).toBeLessThan(0.001); // int16 storage, 1 Bq/ml steps
    expect(readDicomSeries(join(tmp, 'pt'), { suv: false }).unit).not.toBe('SUVbw');
  });

  it('a missing slice, a truncated file and a non-DICOM file are errors naming the file', () => {
    const dir = join(tmp, 'gap');
    const files = writeDicomSeries(dir, ctVolume());
    rmSync(files[5]);
    const e = errorOf(() => readDicomSeries(dir));
    expect(e.code).toBe('MISSING_SLICE');
    expect(e.message).toContain(files[4]);
    const bytes = readFileSync(files[0]);
    writeFileSync(join(tmp, 'cut.dcm'), bytes.subarray(0, bytes.length - 300));
    const t = errorOf(() => readDicomSeries([join(tmp, 'cut.dcm')]));
    expect(['TRUNCATED_FILE', 'CORRUPT_FILE']).toContain(t.code);
    expect(t.message).toContain('cut.dcm');
    writeFileSync(join(tmp, 'x.dcm'), 'not dicom at all'.repeat(20));
    expect(errorOf(() => readDicomSeries([join(tmp, 'x.dcm')])).message).toContain('x.dcm');
  });

  it.skipIf(!existsSync(PYDICOM))('reads pydicom test files (values cross-checked with pydicom 2.3)', () => {
    // dev-only source: Debian's python3-pydicom; skipped when it is not installed
    const ct = readDicomSeries([join(PYDICOM, 'CT_small.dcm')]);
    expect(ct.volume.dims).toEqual([128, 128, 1]);
    expect(ct.volume.spacing[0]).toBeCloseTo(0.661468, 6);
    const r = valueRange(ct.volume.data);
    expect([r.min, r.max]).toEqual([-896, 1167]);
    expect(r.mean).toBeCloseTo(-119.07385, 3);
    expect(ct.volume.data[10 * 128 + 20]).toBe(-839);
    // compressed twins of MR_small made by other toolchains decode to its exact pixels (our own twins: data-dicom-codecs.test.ts)
    const mr = readDicomSeries([join(PYDICOM, 'MR_small.dcm')]).volume.data;
    for (const twin of ['MR_small_RLE.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'MR_small_jp2klossless.dcm']) {
      expect(Array.from(readDicomSeries([join(PYDICOM, twin)]).volume.data), twin).toEqual(Array.from(mr));
    }
    expect(errorOf(() => readDicomSeries([join(PYDICOM, 'MR_small_bigendian.dcm')])).code).toBe('UNSUPPORTED_TRANSFER_SYNTAX');
  });
});

describe('masks', () => {
  const vol = ctVolume();

  it('DICOM SEG round trip places frames by position', () => {
    const m = makeVolume(vol.dims, vol.spacing, vol.data.map((v) => (v === 200 ? 1 : 0)), vol.affine);
    writeDicomSeg(join(tmp, 'seg.dcm'), m);
    const r = readDicomSeg(join(tmp, 'seg.dcm'), vol);
    expect(Array.from(r.data)).toEqual(Array.from(m.data));
    const other = makeVolume([24, 20, 12], [1.5, 1.5, 3], undefined, diagonalAffine([1.5, 1.5, 3], [-18, -15, 150]));
    const e = errorOf(() => readDicomSeg(join(tmp, 'seg.dcm'), other));
    expect(e.code).toBe('MASK_MISMATCH');
    expect(e.message).toContain('seg.dcm');
  });

  it('RTSTRUCT contours are rasterised (pixel centres inside, holes by even-odd)', () => {
    const square: [number, number][] = [[4.5, 4.5], [9.5, 4.5], [9.5, 9.5], [4.5, 9.5]];
    const hole: [number, number][] = [[6.5, 6.5], [7.5, 6.5], [7.5, 7.5], [6.5, 7.5]];
    writeRtStruct(join(tmp, 'rt.dcm'), vol, 'GTV', [{ k: 3, points: square }, { k: 3, points: hole }, { k: 4, points: square }]);
    const m = readRtStruct(join(tmp, 'rt.dcm'), vol, { roi: 'GTV' });
    expect(valueRange(m.data).nonZero).toBe(24 + 25); // 5x5 pixel centres, minus the one in the hole on slice 3
    expect(m.data[7 + 24 * (7 + 20 * 3)]).toBe(0);
    expect(m.data[5 + 24 * (5 + 20 * 4)]).toBe(1);
    expect(errorOf(() => readRtStruct(join(tmp, 'rt.dcm'), vol, { roi: 'CTV' })).hint).toContain('GTV');
  });

  it('a NIfTI mask that does not match its image is an error naming both files', () => {
    writeNifti(join(tmp, 'small.nii.gz'), makeVolume([12, 10, 6], [3, 3, 6]), { dtype: 'uint8' });
    const e = errorOf(() => readMaskFile(join(tmp, 'small.nii.gz'), vol, 'ct-series'));
    expect(e.code).toBe('MASK_MISMATCH');
    expect(e.message).toContain('small.nii.gz');
    expect(e.message).toContain('ct-series');
  });
});

describe('PNG', () => {
  it('round-trips 8- and 16-bit grey and rejects corrupt and truncated files by name', () => {
    writePng(join(tmp, 'a.png'), 3, 2, Uint8Array.from([0, 10, 20, 30, 40, 255]));
    expect(Array.from(readPng(join(tmp, 'a.png')).data)).toEqual([0, 10, 20, 30, 40, 255]);
    writePng(join(tmp, 'b.png'), 2, 2, Uint16Array.from([0, 1000, 40000, 65535]));
    const v = readPngVolume(join(tmp, 'b.png'));
    expect([v.dims, Array.from(v.data)]).toEqual([[2, 2, 1], [0, 1000, 40000, 65535]]);
    const bytes = encodePng(16, 16, new Uint8Array(256).fill(7));
    writeFileSync(join(tmp, 'cut.png'), bytes.subarray(0, bytes.length - 20));
    expect(errorOf(() => readPng(join(tmp, 'cut.png'))).message).toContain('cut.png');
    const flipped = Buffer.from(bytes);
    flipped[40] ^= 0xff;
    writeFileSync(join(tmp, 'bad.png'), flipped);
    expect(errorOf(() => readPng(join(tmp, 'bad.png'))).code).toBe('CORRUPT_FILE');
  });
});
