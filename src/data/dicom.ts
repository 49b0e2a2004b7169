/**
 * DICOM series -> Volume (dcmjs), and a small writer for test fixtures and benchmarks.
 *   readDicomSeries(dirOrFiles, { series?, suv?, strict? }) -> { volume, modality, unit, files, seriesUid, positions, warnings, skipped }
 *     - slices are grouped by SeriesInstanceUID and sorted by their position along the slice normal
 *       (ImagePositionPatient . (row cosine x column cosine)); a gap over 1.5x the median spacing is a missing slice -> error
 *     - stored values * RescaleSlope + RescaleIntercept (CT: Hounsfield units)
 *     - PET (Modality PT, Units BQML): body-weight SUV = activity * weight[g] / decay-corrected injected dose, using
 *       PatientWeight, RadionuclideTotalDose, RadionuclideHalfLife, RadiopharmaceuticalStartTime and SeriesTime
 *     - the affine is converted from DICOM's LPS to RAS (the Volume convention)
 *     - series as archives export them: bytes after the pixel data (seen on GE scanners) and other damage the parser recovers
 *       from are one warning naming the file; a file that cannot be read at all (not DICOM, truncated pixel data, undecodable)
 *       is named in `skipped` and `warnings` and left out; a slice it leaves missing inside the stack is interpolated from its two
 *       neighbours (said in the warning). With `strict: true` any such file refuses the whole series instead.
 *     - compressed transfer syntaxes (JPEG baseline/lossless, JPEG-LS, JPEG 2000, RLE) are decoded by ./dicom-codecs.ts
 *     - dcmjs's console messages ("Invalid vr type - using UN", ...) are counted per file and reported as one warning
 *   writeDicomSeries(dir, volume, { modality, ... }) -> file paths (uncompressed explicit VR little endian, int16 + rescale)
 *   readDicomFile(file) -> naturalized dataset + warnings (errors name the file)
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dcmjs, { type DcmjsLogger, type NaturalDataset } from 'dcmjs';
import { CohortError } from '../util/errors.ts';
import { decodeFrame, isCompressedSyntax, TRANSFER_SYNTAX_NAMES } from './dicom-codecs.ts';
import type { Vec3, Volume } from './volume.ts';

const { DicomMessage, DicomMetaDictionary, DicomDict } = dcmjs.data;

const UNCOMPRESSED = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1.99']);

export interface DicomFile {
  readonly file: string;
  readonly ds: NaturalDataset;
  readonly transferSyntax: string;
  /** recoverable damage, one line each, naming the file */
  readonly warnings: readonly string[];
}

// dcmjs reports what it tolerates through loglevel loggers (console): while a file is parsed, count those messages instead.
interface Trap { count: number; first: string }
let trap: Trap | undefined;
let trapped = false;
function installTrap(): void {
  if (trapped) return;
  trapped = true;
  const loggers: DcmjsLogger[] = [dcmjs.log, dcmjs.log.getLogger('validation.dcmjs')];
  for (const l of loggers) {
    const original = l.methodFactory;
    l.methodFactory = (method, level, name) => {
      const raw = original(method, level, name);
      return (...args: unknown[]) => {
        if (!trap) return raw(...args);
        trap.count++;
        if (!trap.first) trap.first = args.map(String).join(' ').replace(/\s+/g, ' ').trim();
      };
    };
    l.setLevel(l.getLevel(), false);
  }
}

function parse(buf: Uint8Array): { ds: NaturalDataset; transferSyntax: string; noise: Trap } {
  installTrap();
  const noise: Trap = { count: 0, first: '' };
  trap = noise;
  try {
    const dict = DicomMessage.readFile(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer);
    const meta = DicomMetaDictionary.naturalizeDataset(dict.meta);
    return { ds: DicomMetaDictionary.naturalizeDataset(dict.dict), transferSyntax: String(meta.TransferSyntaxUID ?? ''), noise };
  } finally {
    trap = undefined;
  }
}

const hasImage = (ds: NaturalDataset): boolean => ds.PixelData !== undefined && ds.Rows !== undefined;

export function readDicomFile(file: string): DicomFile {
  let buf: Buffer;
  try { buf = readFileSync(file); } catch (e) { throw new CohortError('DATA_NOT_FOUND', `cannot read ${file}: ${(e as Error).message}`, 'check the path'); }
  if (buf.length < 132 || buf.toString('latin1', 128, 132) !== 'DICM') {
    throw new CohortError('NOT_DICOM', `${file} is not a DICOM file (no DICM preamble)`, 'pass DICOM Part-10 files (.dcm)');
  }
  let whole: ReturnType<typeof parse> | undefined, failure: Error | undefined;
  try { whole = parse(buf); } catch (e) { failure = e as Error; }
  if (whole && whole.noise.count === 0) {
    assertPixelDataComplete(file, buf);
    return { file, ds: whole.ds, transferSyntax: whole.transferSyntax, warnings: [] };
  }
  // bytes after the pixel data make the parser read garbage elements (or fail): read the file up to the end of its pixel data
  for (const end of pixelDataEnds(buf)) {
    if (end >= buf.length) continue;
    try {
      const cut = parse(buf.subarray(0, end));
      if (cut.noise.count === 0 && hasImage(cut.ds)) {
        return { file, ds: cut.ds, transferSyntax: cut.transferSyntax, warnings: [`${file}: ${buf.length - end} byte(s) after the pixel data ignored`] };
      }
    } catch { /* not this candidate */ }
  }
  if (whole) {
    assertPixelDataComplete(file, buf);
    const n = whole.noise;
    return { file, ds: whole.ds, transferSyntax: whole.transferSyntax, warnings: [`${file}: the DICOM parser tolerated ${n.count} problem(s) (first: ${n.first})`] };
  }
  assertPixelDataComplete(file, buf);
  throw new CohortError('CORRUPT_FILE', `${file}: DICOM data is corrupt or truncated (${failure?.message ?? 'unreadable'})`, 'copy the file again from the PACS export');
}

const PIXEL_TAG = Buffer.from([0xe0, 0x7f, 0x10, 0x00]);
const SEQ_DELIM = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);

/** Where a (7FE0,0010) element would end, for every place the tag occurs after the preamble, last first (an icon's pixel data comes earlier). */
function pixelDataEnds(buf: Buffer): number[] {
  const ends: number[] = [];
  for (let at = buf.indexOf(PIXEL_TAG, 132); at >= 0; at = buf.indexOf(PIXEL_TAG, at + 1)) {
    const explicit = /^(OB|OW|OF|OD|UN)$/.test(buf.toString('latin1', at + 4, at + 6));
    const lenAt = explicit ? at + 8 : at + 4;
    if (lenAt + 4 > buf.length) continue;
    const len = buf.readUInt32LE(lenAt);
    if (len === 0xffffffff) {
      const d = buf.indexOf(SEQ_DELIM, lenAt + 4);
      if (d >= 0) ends.push(d + SEQ_DELIM.length);
    } else if (lenAt + 4 + len <= buf.length) ends.push(lenAt + 4 + len);
  }
  return ends.reverse();
}

/**
 * dcmjs reads a truncated file without complaint (it returns a zero-filled pixel buffer), so check that the PixelData element
 * (7FE0,0010), when its length is defined, ends inside the file.
 */
function assertPixelDataComplete(file: string, buf: Buffer): void {
  const at = buf.lastIndexOf(PIXEL_TAG);
  if (at < 0) return;
  const vr = buf.toString('latin1', at + 4, at + 6);
  const explicit = /^(OB|OW|OF|OD|UN)$/.test(vr);
  const lenAt = explicit ? at + 8 : at + 4;
  if (lenAt + 4 > buf.length) throw new CohortError('TRUNCATED_FILE', `${file} is truncated inside its pixel data header`, 'copy the file again from the PACS export');
  const len = buf.readUInt32LE(lenAt);
  if (len !== 0xffffffff && lenAt + 4 + len > buf.length) {
    throw new CohortError('TRUNCATED_FILE', `${file} is truncated: pixel data declares ${len} bytes, ${buf.length - lenAt - 4} present`, 'copy the file again from the PACS export');
  }
}

/** True when a directory directly holds DICOM Part-10 files. */
export function isDicomDir(dir: string): boolean {
  if (!statSync(dir).isDirectory()) return false;
  return readdirSync(dir).some((f) => {
    const p = join(dir, f);
    if (!statSync(p).isFile()) return false;
    const fd = openSync(p, 'r');
    try {
      const b = Buffer.alloc(4);
      return readSync(fd, b, 0, 4, 128) === 4 && b.toString('latin1') === 'DICM'; // only the preamble, not the whole file
    } finally { closeSync(fd); }
  });
}

const num = (v: unknown, fallback = Number.NaN): number => {
  const x = Array.isArray(v) ? v[0] : v;
  const n = typeof x === 'number' ? x : typeof x === 'string' && x.trim() !== '' ? Number(x) : Number.NaN;
  return Number.isFinite(n) ? n : fallback;
};
const nums = (v: unknown): number[] => (Array.isArray(v) ? v.map((x) => num(x)) : typeof v === 'string' ? v.split('\\').map(Number) : []);
const first = (v: unknown): Record<string, unknown> | undefined =>
  (Array.isArray(v) ? v[0] : v && typeof v === 'object' ? v : undefined) as Record<string, unknown> | undefined;

export interface SkippedFile { readonly file: string; readonly code: string; readonly reason: string }

export interface DicomSeries {
  readonly volume: Volume;
  readonly modality: string;
  /** HU for CT, SUVbw for converted PET, otherwise the rescale type or "raw" */
  readonly unit: string;
  readonly files: readonly string[];
  readonly seriesUid: string;
  /** slice positions along the normal (mm), in volume order */
  readonly positions: readonly number[];
  /** transfer syntax of the first slice, by name (e.g. "JPEG-LS lossless") */
  readonly transferSyntax: string;
  /** recoverable damage and left-out files, one line each, naming the file */
  readonly warnings: readonly string[];
  /** files that could not be read at all (only without `strict`) */
  readonly skipped: readonly SkippedFile[];
}

export interface SeriesOptions {
  readonly series?: string;
  /** Convert PET to SUV (default true). */
  readonly suv?: boolean;
  /** Refuse the series when any file cannot be read (default false: leave the file out with a warning naming it). */
  readonly strict?: boolean;
}

interface Collect { readonly strict: boolean; readonly warnings: string[]; readonly skipped: SkippedFile[] }

function leaveOut(c: Collect, file: string, e: unknown): void {
  if (c.strict || !(e instanceof CohortError)) throw e;
  c.skipped.push({ file, code: e.code, reason: e.message });
  c.warnings.push(`${e.message.startsWith(file) ? e.message : `${file}: ${e.message}`} (left out)`);
}

export function readDicomSeries(dirOrFiles: string | readonly string[], opts: SeriesOptions = {}): DicomSeries {
  const where = typeof dirOrFiles === 'string' ? dirOrFiles : `${dirOrFiles.length} files`;
  const files = typeof dirOrFiles === 'string' ? listFiles(dirOrFiles) : [...dirOrFiles];
  const c: Collect = { strict: Boolean(opts.strict), warnings: [], skipped: [] };
  const images: DicomFile[] = [];
  for (const file of files) {
    try {
      const f = readDicomFile(file);
      if (hasImage(f.ds)) { images.push(f); c.warnings.push(...f.warnings); }
    } catch (e) { leaveOut(c, file, e); }
  }
  if (images.length === 0) {
    const s = c.skipped[0];
    if (s) throw new CohortError(s.code, c.skipped.length === 1 ? s.reason : `${where}: no readable image; ${c.skipped.map((x) => x.reason).join('; ')}`, 'copy the files again from the PACS export');
    throw new CohortError('EMPTY_DATASET', `${where} holds no DICOM images`, 'point at the folder of one exported series');
  }
  const bySeries = new Map<string, DicomFile[]>();
  for (const f of images) {
    const uid = String(f.ds.SeriesInstanceUID ?? '');
    bySeries.set(uid, [...(bySeries.get(uid) ?? []), f]);
  }
  const uid = opts.series ?? (bySeries.size === 1 ? [...bySeries.keys()][0] : undefined);
  const slices = uid !== undefined ? bySeries.get(uid) : undefined;
  if (!slices) {
    throw new CohortError('MULTIPLE_SERIES', `${where} holds ${bySeries.size} series`, `choose one with --series UID: ${[...bySeries.keys()].join(', ')}`);
  }
  return assemble(where, slices, uid as string, opts.suv ?? true, c);
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) throw new CohortError('DATA_NOT_FOUND', `no such directory: ${dir}`, 'check the path');
  return readdirSync(dir).sort().map((f) => join(dir, f)).filter((p) => statSync(p).isFile() && !p.endsWith('.json'));
}

interface Slice { readonly f: DicomFile | undefined; readonly px: Float32Array; readonly pos: number }

function assemble(where: string, slices: DicomFile[], seriesUid: string, suv: boolean, c: Collect): DicomSeries {
  const ds0 = slices[0].ds;
  const iop = nums(ds0.ImageOrientationPatient);
  const row: Vec3 = iop.length === 6 ? [iop[0], iop[1], iop[2]] : [1, 0, 0];
  const col: Vec3 = iop.length === 6 ? [iop[3], iop[4], iop[5]] : [0, 1, 0];
  const normal: Vec3 = [row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2], row[0] * col[1] - row[1] * col[0]];
  const pos = (f: DicomFile): number => {
    const p = nums(f.ds.ImagePositionPatient);
    return p.length === 3 ? p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2] : num(f.ds.InstanceNumber, 0);
  };
  const rows = num(ds0.Rows), cols = num(ds0.Columns);
  const modality = String(ds0.Modality ?? 'OT');
  const suvFactor = modality === 'PT' && suv ? suvScale(where, ds0) : undefined;
  const scale = suvFactor ?? 1;
  const read: Slice[] = [];
  for (const f of slices) {
    if (num(f.ds.Rows) !== rows || num(f.ds.Columns) !== cols) {
      throw new CohortError('INCONSISTENT_SERIES', `${f.file}: ${f.ds.Rows}x${f.ds.Columns} pixels, the series has ${rows}x${cols}`, 'the folder mixes images of different sizes; export one series per folder');
    }
    let px: Float32Array;
    try { px = decodePixels(f, rows * cols); } catch (e) { leaveOut(c, f.file, e); continue; }
    const slope = num(f.ds.RescaleSlope, 1), inter = num(f.ds.RescaleIntercept, 0);
    for (let i = 0; i < px.length; i++) px[i] = (px[i] * slope + inter) * scale;
    read.push({ f, px, pos: pos(f) });
  }
  if (read.length === 0) throw new CohortError(c.skipped[0]?.code ?? 'EMPTY_DATASET', `${where}: no slice could be decoded; ${c.skipped.map((x) => x.reason).join('; ')}`, 'export the series uncompressed or again');
  read.sort((a, b) => a.pos - b.pos);
  const { dz, stack } = fillGaps(where, read, num(ds0.SliceThickness, 1), c);
  const ps = nums(ds0.PixelSpacing);
  const spacing: Vec3 = [ps[1] || 1, ps[0] || 1, dz];
  const data = new Float32Array(rows * cols * stack.length);
  stack.forEach((s, k) => data.set(s.px, k * rows * cols));
  const ipp = nums(read[0].f!.ds.ImagePositionPatient); // the origin is the first slice along the normal
  const o = ipp.length === 3 ? ipp : [0, 0, 0];
  // LPS voxel -> world, then flip x and y to RAS
  const lps = [0, 1, 2].map((r) => [row[r] * spacing[0], col[r] * spacing[1], normal[r] * dz, o[r]]);
  const affine = [lps[0].map((v) => -v), lps[1].map((v) => -v), lps[2], [0, 0, 0, 1]];
  const unit = suvFactor !== undefined ? 'SUVbw' : modality === 'CT' ? 'HU' : String(ds0.RescaleType ?? ds0.Units ?? 'raw');
  const bits = num(ds0.BitsAllocated, 16), signed = num(ds0.PixelRepresentation, 0) === 1;
  const ts = slices[0].transferSyntax;
  return {
    volume: { dims: [cols, rows, stack.length], spacing, affine, data, dtype: `${signed ? 'int' : 'uint'}${bits}` },
    modality, unit, files: read.map((s) => s.f!.file), seriesUid, positions: stack.map((s) => s.pos),
    transferSyntax: TRANSFER_SYNTAX_NAMES[ts] ?? (ts || 'unknown'), warnings: c.warnings, skipped: c.skipped,
  };
}

/**
 * The slice spacing (median gap) and the stack in order (values already rescaled). A gap of about twice the spacing where a file
 * was left out as unreadable is filled by the mean of its two neighbours, and said in the warnings; any other gap is an error.
 */
function fillGaps(where: string, sorted: Slice[], thickness: number, c: Collect): { dz: number; stack: Slice[] } {
  const positions = sorted.map((s) => s.pos);
  if (positions.length < 2) return { dz: thickness, stack: sorted };
  const gaps = positions.slice(1).map((p, i) => p - positions[i]);
  const median = [...gaps].sort((a, b) => a - b)[(gaps.length - 1) >> 1]; // the lower median: with one gap among two, the spacing
  if (median <= 1e-6) {
    throw new CohortError('INCONSISTENT_SERIES', `${where}: several slices share one position`, 'the folder mixes series or time points; export one series per folder');
  }
  const stack: Slice[] = [sorted[0]];
  let budget = c.skipped.length;
  for (let i = 0; i < gaps.length; i++) {
    const g = gaps[i];
    const a = sorted[i], b = sorted[i + 1];
    if (g > 1.5 * median && g < 2.5 * median && budget > 0) {
      budget--;
      const px = new Float32Array(a.px.length);
      for (let j = 0; j < px.length; j++) px[j] = (a.px[j] + b.px[j]) / 2;
      stack.push({ f: undefined, px, pos: (a.pos + b.pos) / 2 });
      c.warnings.push(`${where}: the slice at ${((a.pos + b.pos) / 2).toFixed(2)} mm (between ${a.f!.file} and ${b.f!.file}) was unreadable; interpolated from its neighbours`);
    } else if (g > 1.5 * median || g < 0.5 * median) {
      const unreadable = c.skipped.length ? ` (unreadable: ${c.skipped.map((s) => s.file).join(', ')})` : '';
      throw new CohortError('MISSING_SLICE', `${where}: slice gap of ${g.toFixed(2)} mm between ${a.f!.file} and ${b.f!.file} (others ${median.toFixed(2)} mm): a slice is missing${unreadable}`,
        'export the complete series again');
    }
    stack.push(b);
  }
  return { dz: median, stack };
}

function decodePixels(f: DicomFile, n: number): Float32Array {
  const ts = f.transferSyntax;
  if (ts && !UNCOMPRESSED.has(ts) && !isCompressedSyntax(ts)) {
    throw new CohortError('UNSUPPORTED_TRANSFER_SYNTAX', `${f.file}: transfer syntax ${TRANSFER_SYNTAX_NAMES[ts] ?? ts} is not decoded`,
      'export uncompressed or with JPEG, JPEG-LS, JPEG 2000 or RLE (e.g. gdcmconv --raw), or convert the series to NIfTI');
  }
  const bits = num(f.ds.BitsAllocated, 16), signed = num(f.ds.PixelRepresentation, 0) === 1;
  const bytes = bits / 8;
  const frames = f.ds.PixelData as ArrayBuffer[] | ArrayBuffer;
  let buf = Array.isArray(frames) ? frames[0] : frames;
  if (ts && isCompressedSyntax(ts)) {
    if (!(buf instanceof ArrayBuffer)) throw new CohortError('CORRUPT_FILE', `${f.file}: no compressed frame in the pixel data`, 'copy the file again from the PACS export');
    try {
      const out = decodeFrame(ts, new Uint8Array(buf), { rows: num(f.ds.Rows), columns: num(f.ds.Columns), bitsAllocated: bits, samplesPerPixel: num(f.ds.SamplesPerPixel, 1) });
      buf = out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength) as ArrayBuffer;
    } catch (e) {
      throw new CohortError('CORRUPT_FILE', `${f.file}: ${TRANSFER_SYNTAX_NAMES[ts] ?? ts} pixel data could not be decoded (${(e as Error).message})`, 'copy the file again from the PACS export, or export it uncompressed');
    }
  }
  if (!(buf instanceof ArrayBuffer) || buf.byteLength < n * bytes) {
    throw new CohortError('TRUNCATED_FILE', `${f.file}: pixel data holds ${buf instanceof ArrayBuffer ? buf.byteLength : 0} bytes, ${n * bytes} expected`, 'copy the file again from the PACS export');
  }
  const v = new DataView(buf);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = bits === 8 ? (signed ? v.getInt8(i) : v.getUint8(i))
      : bits === 16 ? (signed ? v.getInt16(2 * i, true) : v.getUint16(2 * i, true))
        : (signed ? v.getInt32(4 * i, true) : v.getUint32(4 * i, true));
  }
  return out;
}

/** DICOM time "HHMMSS.frac" -> seconds since midnight. */
export function dicomSeconds(t: unknown): number {
  const s = String(t ?? '').trim();
  if (s.length < 4) return Number.NaN;
  return Number(s.slice(0, 2)) * 3600 + Number(s.slice(2, 4)) * 60 + Number(s.slice(4) || 0);
}

/** Body-weight SUV factor: weight[g] / (injected dose [Bq] * decay from injection to series start). */
function suvScale(where: string, ds: NaturalDataset): number {
  const units = String(ds.Units ?? 'BQML').toUpperCase();
  if (units === 'GML') return 1; // already SUV
  const rp = first(ds.RadiopharmaceuticalInformationSequence);
  const weightKg = num(ds.PatientWeight);
  const dose = num(rp?.RadionuclideTotalDose), half = num(rp?.RadionuclideHalfLife);
  const start = dicomSeconds(rp?.RadiopharmaceuticalStartTime ?? String(rp?.RadiopharmaceuticalStartDateTime ?? '').slice(8));
  const scan = dicomSeconds(ds.SeriesTime ?? ds.AcquisitionTime);
  if (units !== 'BQML' || !(weightKg > 0) || !(dose > 0) || !(half > 0) || !Number.isFinite(start) || !Number.isFinite(scan)) {
    throw new CohortError('SUV_TAGS', `${where}: PET series lacks what SUV needs (Units=${units}, PatientWeight, RadionuclideTotalDose, RadionuclideHalfLife, RadiopharmaceuticalStartTime, SeriesTime)`,
      'fix the tags, or read the activity as stored with --no-suv');
  }
  let dt = scan - start;
  if (dt < 0) dt += 86400; // injection before midnight
  return (weightKg * 1000) / (dose * 2 ** (-dt / half));
}

export interface DicomWriteOptions {
  readonly modality?: 'CT' | 'PT' | 'MR';
  readonly seriesUid?: string;
  readonly studyUid?: string;
  readonly patientId?: string;
  /** stored = round((value - intercept) / slope) as int16 */
  readonly slope?: number;
  readonly intercept?: number;
  /** PET: weight (kg), dose (Bq), half-life (s), injection and series times (HHMMSS) */
  readonly pet?: { weightKg: number; doseBq: number; halfLifeS: number; injectionTime: string; seriesTime: string };
}

const SOP_CLASS = { CT: '1.2.840.10008.5.1.4.1.1.2', PT: '1.2.840.10008.5.1.4.1.1.128', MR: '1.2.840.10008.5.1.4.1.1.4' };

/** Write a volume as a DICOM series (orientation and positions from its affine; slices along the third axis), one file per slice; returns the paths. */
export function writeDicomSeries(dir: string, vol: Volume, o: DicomWriteOptions = {}): string[] {
  mkdirSync(dir, { recursive: true });
  const modality = o.modality ?? 'CT';
  const [nx, ny, nz] = vol.dims;
  const slope = o.slope ?? 1, inter = o.intercept ?? (modality === 'CT' ? -1024 : 0);
  const seriesUid = o.seriesUid ?? DicomMetaDictionary.uid(), studyUid = o.studyUid ?? DicomMetaDictionary.uid();
  const toLps = (c: number): number[] => [-vol.affine[0][c], -vol.affine[1][c], vol.affine[2][c]]; // RAS -> LPS
  const origin = toLps(3);
  const unit = (v: number[], s: number): number[] => v.map((x) => x / s);
  const rowCos = unit(toLps(0), vol.spacing[0]), colCos = unit(toLps(1), vol.spacing[1]), step = toLps(2);
  const paths: string[] = [];
  for (let k = 0; k < nz; k++) {
    const px = new Int16Array(nx * ny);
    for (let i = 0; i < px.length; i++) px[i] = Math.max(-32768, Math.min(32767, Math.round((vol.data[k * nx * ny + i] - inter) / slope)));
    const sop = DicomMetaDictionary.uid();
    const ds: NaturalDataset = {
      _vrMap: { PixelData: 'OW' },
      SOPClassUID: SOP_CLASS[modality], SOPInstanceUID: sop, Modality: modality, PatientID: o.patientId ?? 'SYNTHETIC',
      PatientName: 'SYNTHETIC^PHANTOM', StudyInstanceUID: studyUid, SeriesInstanceUID: seriesUid, SeriesNumber: 1, InstanceNumber: k + 1,
      ImagePositionPatient: origin.map((o, r) => o + k * step[r]), ImageOrientationPatient: [...rowCos, ...colCos],
      PixelSpacing: [vol.spacing[1], vol.spacing[0]], SliceThickness: vol.spacing[2], Rows: ny, Columns: nx,
      SamplesPerPixel: 1, PhotometricInterpretation: 'MONOCHROME2', BitsAllocated: 16, BitsStored: 16, HighBit: 15, PixelRepresentation: 1,
      RescaleSlope: slope, RescaleIntercept: inter, PixelData: [px.buffer],
      ...(o.pet ? {
        Units: 'BQML', PatientWeight: o.pet.weightKg, SeriesTime: o.pet.seriesTime, DecayCorrection: 'START',
        RadiopharmaceuticalInformationSequence: [{ RadionuclideTotalDose: o.pet.doseBq, RadionuclideHalfLife: o.pet.halfLifeS, RadiopharmaceuticalStartTime: o.pet.injectionTime }],
      } : {}),
    };
    const path = join(dir, `slice-${String(k + 1).padStart(4, '0')}.dcm`);
    writeFileSync(path, new Uint8Array(encodeDicom(ds, SOP_CLASS[modality], sop)));
    paths.push(path);
  }
  return paths;
}

/** Serialise a naturalized dataset as a Part-10 file (explicit VR little endian). */
export function encodeDicom(ds: NaturalDataset, sopClass: string, sopInstance: string): ArrayBuffer {
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer, MediaStorageSOPClassUID: sopClass, MediaStorageSOPInstanceUID: sopInstance,
    TransferSyntaxUID: '1.2.840.10008.1.2.1', ImplementationClassUID: '1.2.826.0.1.3680043.10.1329', ImplementationVersionName: 'COHORT-0.1',
    _vrMap: { FileMetaInformationVersion: 'OB' },
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(ds);
  return dict.write();
}
