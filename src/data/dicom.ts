/**
 * DICOM series -> Volume (dcmjs), and a small writer for test fixtures and benchmarks.
 *   readDicomSeries(dirOrFiles, { series?, suv? }) -> { volume, modality, unit, files, seriesUid, positions }
 *     - slices are grouped by SeriesInstanceUID and sorted by their position along the slice normal
 *       (ImagePositionPatient . (row cosine x column cosine)); a gap over 1.5x the median spacing is a missing slice -> error
 *     - stored values * RescaleSlope + RescaleIntercept (CT: Hounsfield units)
 *     - PET (Modality PT, Units BQML): body-weight SUV = activity * weight[g] / decay-corrected injected dose, using
 *       PatientWeight, RadionuclideTotalDose, RadionuclideHalfLife, RadiopharmaceuticalStartTime and SeriesTime
 *     - the affine is converted from DICOM's LPS to RAS (the Volume convention)
 *   writeDicomSeries(dir, volume, { modality, ... }) -> file paths (uncompressed explicit VR little endian, int16 + rescale)
 *   readDicomFile(file) -> naturalized dataset (errors name the file)
 * Only uncompressed transfer syntaxes are decoded; compressed ones throw a CohortError saying so.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dcmjs, { type NaturalDataset } from 'dcmjs';
import { CohortError } from '../util/errors.ts';
import type { Vec3, Volume } from './volume.ts';

const { DicomMessage, DicomMetaDictionary, DicomDict } = dcmjs.data;

const UNCOMPRESSED = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1.99']);

export interface DicomFile { readonly file: string; readonly ds: NaturalDataset; readonly transferSyntax: string }

export function readDicomFile(file: string): DicomFile {
  let buf: Buffer;
  try { buf = readFileSync(file); } catch (e) { throw new CohortError('DATA_NOT_FOUND', `cannot read ${file}: ${(e as Error).message}`, 'check the path'); }
  if (buf.length < 132 || buf.toString('latin1', 128, 132) !== 'DICM') {
    throw new CohortError('NOT_DICOM', `${file} is not a DICOM file (no DICM preamble)`, 'pass DICOM Part-10 files (.dcm)');
  }
  assertPixelDataComplete(file, buf);
  try {
    const dict = DicomMessage.readFile(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer);
    const meta = DicomMetaDictionary.naturalizeDataset(dict.meta);
    return { file, ds: DicomMetaDictionary.naturalizeDataset(dict.dict), transferSyntax: String(meta.TransferSyntaxUID ?? '') };
  } catch (e) {
    throw new CohortError('CORRUPT_FILE', `${file}: DICOM data is corrupt or truncated (${(e as Error).message})`, 'copy the file again from the PACS export');
  }
}

/**
 * dcmjs reads a truncated file without complaint (it returns a zero-filled pixel buffer), so check that the PixelData element
 * (7FE0,0010), when its length is defined, ends inside the file.
 */
function assertPixelDataComplete(file: string, buf: Buffer): void {
  const tag = Buffer.from([0xe0, 0x7f, 0x10, 0x00]);
  const at = buf.lastIndexOf(tag);
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

export interface DicomSeries {
  readonly volume: Volume;
  readonly modality: string;
  /** HU for CT, SUVbw for converted PET, otherwise the rescale type or "raw" */
  readonly unit: string;
  readonly files: readonly string[];
  readonly seriesUid: string;
  /** slice positions along the normal (mm), in volume order */
  readonly positions: readonly number[];
}

export interface SeriesOptions {
  readonly series?: string;
  /** Convert PET to SUV (default true). */
  readonly suv?: boolean;
}

export function readDicomSeries(dirOrFiles: string | readonly string[], opts: SeriesOptions = {}): DicomSeries {
  const where = typeof dirOrFiles === 'string' ? dirOrFiles : `${dirOrFiles.length} files`;
  const files = typeof dirOrFiles === 'string' ? listFiles(dirOrFiles) : [...dirOrFiles];
  const images = files.map(readDicomFile).filter((f) => f.ds.PixelData !== undefined && f.ds.Rows !== undefined);
  if (images.length === 0) throw new CohortError('EMPTY_DATASET', `${where} holds no DICOM images`, 'point at the folder of one exported series');
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
  return assemble(where, slices, uid as string, opts.suv ?? true);
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) throw new CohortError('DATA_NOT_FOUND', `no such directory: ${dir}`, 'check the path');
  return readdirSync(dir).sort().map((f) => join(dir, f)).filter((p) => statSync(p).isFile() && !p.endsWith('.json'));
}

function assemble(where: string, slices: DicomFile[], seriesUid: string, suv: boolean): DicomSeries {
  const ds0 = slices[0].ds;
  const iop = nums(ds0.ImageOrientationPatient);
  const row: Vec3 = iop.length === 6 ? [iop[0], iop[1], iop[2]] : [1, 0, 0];
  const col: Vec3 = iop.length === 6 ? [iop[3], iop[4], iop[5]] : [0, 1, 0];
  const normal: Vec3 = [row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2], row[0] * col[1] - row[1] * col[0]];
  const pos = (f: DicomFile): number => {
    const p = nums(f.ds.ImagePositionPatient);
    return p.length === 3 ? p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2] : num(f.ds.InstanceNumber, 0);
  };
  const sorted = [...slices].sort((a, b) => pos(a) - pos(b));
  const positions = sorted.map(pos);
  const dz = checkSpacing(where, sorted, positions, num(ds0.SliceThickness, 1));
  const rows = num(ds0.Rows), cols = num(ds0.Columns);
  const ps = nums(ds0.PixelSpacing);
  const spacing: Vec3 = [ps[1] || 1, ps[0] || 1, dz];
  const data = new Float32Array(rows * cols * sorted.length);
  const modality = String(ds0.Modality ?? 'OT');
  const suvFactor = modality === 'PT' && suv ? suvScale(where, ds0) : undefined;
  sorted.forEach((f, k) => {
    if (num(f.ds.Rows) !== rows || num(f.ds.Columns) !== cols) {
      throw new CohortError('INCONSISTENT_SERIES', `${f.file}: ${f.ds.Rows}x${f.ds.Columns} pixels, the series has ${rows}x${cols}`, 'the folder mixes images of different sizes; export one series per folder');
    }
    const px = decodePixels(f, rows * cols);
    const slope = num(f.ds.RescaleSlope, 1), inter = num(f.ds.RescaleIntercept, 0);
    const scale = suvFactor ?? 1;
    for (let i = 0; i < px.length; i++) data[k * rows * cols + i] = (px[i] * slope + inter) * scale;
  });
  const ipp = nums(sorted[0].ds.ImagePositionPatient); // the origin is the first slice along the normal
  const o = ipp.length === 3 ? ipp : [0, 0, 0];
  // LPS voxel -> world, then flip x and y to RAS
  const lps = [0, 1, 2].map((r) => [row[r] * spacing[0], col[r] * spacing[1], normal[r] * dz, o[r]]);
  const affine = [lps[0].map((v) => -v), lps[1].map((v) => -v), lps[2], [0, 0, 0, 1]];
  const unit = suvFactor !== undefined ? 'SUVbw' : modality === 'CT' ? 'HU' : String(ds0.RescaleType ?? ds0.Units ?? 'raw');
  const bits = num(ds0.BitsAllocated, 16), signed = num(ds0.PixelRepresentation, 0) === 1;
  return {
    volume: { dims: [cols, rows, sorted.length], spacing, affine, data, dtype: `${signed ? 'int' : 'uint'}${bits}` },
    modality, unit, files: sorted.map((f) => f.file), seriesUid, positions,
  };
}

function checkSpacing(where: string, sorted: DicomFile[], positions: number[], thickness: number): number {
  if (positions.length < 2) return thickness;
  const gaps = positions.slice(1).map((p, i) => p - positions[i]);
  const median = [...gaps].sort((a, b) => a - b)[gaps.length >> 1];
  if (median <= 1e-6) {
    throw new CohortError('INCONSISTENT_SERIES', `${where}: several slices share one position`, 'the folder mixes series or time points; export one series per folder');
  }
  const bad = gaps.findIndex((g) => g > 1.5 * median || g < 0.5 * median);
  if (bad >= 0) {
    throw new CohortError('MISSING_SLICE', `${where}: slice gap of ${gaps[bad].toFixed(2)} mm between ${sorted[bad].file} and ${sorted[bad + 1].file} (others ${median.toFixed(2)} mm): a slice is missing`,
      'export the complete series again');
  }
  return median;
}

function decodePixels(f: DicomFile, n: number): Float32Array {
  if (f.transferSyntax && !UNCOMPRESSED.has(f.transferSyntax)) {
    throw new CohortError('UNSUPPORTED_TRANSFER_SYNTAX', `${f.file}: transfer syntax ${f.transferSyntax} is not decoded (only uncompressed little-endian)`,
      'export uncompressed (e.g. dcmdjpeg / gdcmconv --raw) or convert the series to NIfTI');
  }
  const frames = f.ds.PixelData as ArrayBuffer[] | ArrayBuffer;
  const buf = Array.isArray(frames) ? frames[0] : frames;
  const bits = num(f.ds.BitsAllocated, 16), signed = num(f.ds.PixelRepresentation, 0) === 1;
  const bytes = bits / 8;
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
