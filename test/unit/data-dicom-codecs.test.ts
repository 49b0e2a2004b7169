/**
 * DICOM as archives export it (issue 12.3): compressed transfer syntaxes decode to the pixels of their uncompressed twin
 * (test/fixtures/dicom-compressed, twins made by dcmtk and GDCM: scripts/fixtures/dicom-compressed.sh); bytes after the pixel
 * data are one warning naming the file, not a refusal; a file that cannot be read is named and left out, or refuses the
 * series in strict mode; the parser's console noise never reaches the terminal.
 */
import { execFile } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { readDicomSeries } from '../../src/data/dicom.ts';
import { decodeRle } from '../../src/data/dicom-codecs.ts';
import { CohortError } from '../../src/util/errors.ts';

const FX = 'test/fixtures/dicom-compressed';
const tmp = mkdtempSync(join(tmpdir(), 'cohort-dicom-codecs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const run = promisify(execFile);

function errorOf(f: () => unknown): CohortError {
  try { f(); } catch (e) { if (e instanceof CohortError) return e; throw e; }
  throw new Error('expected a CohortError');
}

describe('compressed transfer syntaxes', () => {
  const raw = readDicomSeries(join(FX, 'raw'));

  it('the uncompressed original is what the fixture script wrote (signed, negative values)', () => {
    expect(raw.volume.dims).toEqual([24, 20, 4]);
    expect(raw.transferSyntax).toBe('explicit VR little endian');
    expect(Math.min(...raw.volume.data)).toBeLessThan(-900);
  });

  it.each([
    ['jls', 'JPEG-LS lossless'], ['jpl', 'JPEG lossless SV1'], ['rle', 'RLE lossless'], ['j2k', 'JPEG 2000 lossless'],
  ])('%s (%s) decodes to exactly the uncompressed pixels', (dir, name) => {
    const s = readDicomSeries(join(FX, dir));
    expect(s.transferSyntax).toBe(name);
    expect(s.warnings).toEqual([]);
    expect(s.volume.dims).toEqual(raw.volume.dims);
    expect(s.volume.affine).toEqual(raw.volume.affine);
    expect(Array.from(s.volume.data)).toEqual(Array.from(raw.volume.data));
  });

  it('JPEG baseline (lossy, 8-bit) is close to its original: within the loss of quality 90', () => {
    const orig = readDicomSeries(join(FX, 'raw8')).volume.data;
    const s = readDicomSeries(join(FX, 'jpb'));
    expect(s.transferSyntax).toBe('JPEG baseline');
    let max = 0, sum = 0;
    for (let i = 0; i < orig.length; i++) { const d = Math.abs(orig[i] - s.volume.data[i]); max = Math.max(max, d); sum += d; }
    expect(max).toBeLessThanOrEqual(8);
    expect(sum / orig.length).toBeLessThan(1.5);
    expect(max).toBeGreaterThan(0); // it is lossy: a decoder that returned the original would be suspicious
  });

  it('a corrupt codestream is an error naming the file, and RLE checks its segment count', () => {
    const dir = join(tmp, 'bad-jls');
    cpSync(join(FX, 'jls'), dir, { recursive: true });
    const f = join(dir, 'slice-0002.dcm');
    const b = readFileSync(f);
    b.fill(0x55, b.length - 400, b.length - 20); // damage the JPEG-LS scan, keep the element structure
    writeFileSync(f, b);
    const e = errorOf(() => readDicomSeries(dir, { strict: true }));
    expect(e.code).toBe('CORRUPT_FILE');
    expect(e.message).toContain('slice-0002.dcm');
    expect(() => decodeRle(new Uint8Array(64), { rows: 2, columns: 2, bitsAllocated: 16, samplesPerPixel: 1 })).toThrow(/segments/);
  });
});

describe('damaged series as archives export them', () => {
  it('bytes after one file\'s pixel data: every slice, one warning naming the file', () => {
    const dir = join(tmp, 'trailing');
    cpSync(join(FX, 'raw8'), dir, { recursive: true });
    appendFileSync(join(dir, 'slice-0003.dcm'), Buffer.alloc(256)); // zeros parse as endless (0000,0000) elements of VR "\0\0"
    const s = readDicomSeries(dir);
    expect(s.volume.dims).toEqual([32, 32, 4]);
    expect(s.warnings).toHaveLength(1);
    expect(s.warnings[0]).toContain('slice-0003.dcm');
    expect(s.warnings[0]).toMatch(/256 byte\(s\) after the pixel data/);
    expect(Array.from(s.volume.data)).toEqual(Array.from(readDicomSeries(join(FX, 'raw8')).volume.data));
    appendFileSync(join(dir, 'slice-0001.dcm'), Buffer.from([1, 2, 3]));
    expect(readDicomSeries(dir).warnings).toHaveLength(2);
  });

  it('an unreadable slice inside the stack is named and interpolated; strict mode refuses the series', () => {
    const dir = join(tmp, 'unreadable');
    cpSync(join(FX, 'raw'), dir, { recursive: true });
    const bad = join(dir, 'slice-0002.dcm');
    const b = readFileSync(bad);
    writeFileSync(bad, b.subarray(0, b.length - 100)); // pixel data cut short: nothing to recover
    const s = readDicomSeries(dir);
    expect(s.volume.dims).toEqual([24, 20, 4]);
    expect(s.skipped.map((x) => x.file)).toEqual([bad]);
    expect(s.warnings.join('\n')).toContain('slice-0002.dcm');
    expect(s.warnings.join('\n')).toMatch(/interpolated/);
    const r = readDicomSeries(join(FX, 'raw')).volume.data, n = 24 * 20;
    for (const i of [0, 17, 333]) expect(s.volume.data[n + i]).toBeCloseTo((r[i] + r[2 * n + i]) / 2, 4);
    const e = errorOf(() => readDicomSeries(dir, { strict: true }));
    expect(e.code).toBe('TRUNCATED_FILE');
    expect(e.message).toContain('slice-0002.dcm');
  });

  it('an unreadable last slice and a stray non-DICOM file are left out by name', () => {
    const dir = join(tmp, 'stray');
    cpSync(join(FX, 'raw'), dir, { recursive: true });
    writeFileSync(join(dir, 'VERSION.txt'), 'exported by PACS 7.1\n');
    const last = join(dir, 'slice-0004.dcm');
    writeFileSync(last, readFileSync(last).subarray(0, 140));
    const s = readDicomSeries(dir);
    expect(s.volume.dims).toEqual([24, 20, 3]);
    expect(s.skipped.map((x) => x.file).sort()).toEqual([last, join(dir, 'VERSION.txt')].sort());
    expect(errorOf(() => readDicomSeries(dir, { strict: true })).message).toMatch(/slice-0004\.dcm|VERSION\.txt/);
  });

  it('`cohort data inspect` prints all slices, one warning line, and none of the parser\'s console noise', async () => {
    const dir = join(tmp, 'cli');
    cpSync(join(FX, 'raw8'), dir, { recursive: true });
    appendFileSync(join(dir, 'slice-0002.dcm'), Buffer.alloc(128));
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'data', 'inspect', dir], { env: { ...process.env, COHORT_LOG_LEVEL: 'info' } });
    expect(stdout).toMatch(/^slices: 4$/m);
    expect(stderr.trim().split('\n')).toEqual([expect.stringMatching(/^warning: .*slice-0002\.dcm: 128 byte\(s\) after the pixel data ignored$/)]);
    const j = JSON.parse((await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'data', 'inspect', dir, '--json'])).stdout) as { slices: number; warnings: string[] };
    expect(j.slices).toBe(4);
    expect(j.warnings).toHaveLength(1);
  });
});
