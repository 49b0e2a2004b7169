/**
 * NIfTI-1 / NIfTI-2 (.nii, .nii.gz) reading (nifti-reader-js) and writing (own writer: NIfTI-1 by default, NIfTI-2 on request).
 *   readNifti(file)  -> Volume (float32 values after scl_slope/scl_inter, spacing from pixdim, affine from sform or qform)
 *   writeNifti(file, volume, { dtype, version })   gzip when the name ends in .gz
 * Errors name the file: not a NIfTI file, truncated header or data, unsupported data type.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import * as nifti from 'nifti-reader-js';
import { CohortError } from '../util/errors.ts';
import { voxelCount, type Vec3, type Volume } from './volume.ts';

type Dtype = 'uint8' | 'int8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';

const CODES: Record<Dtype, { code: number; bytes: number }> = {
  uint8: { code: 2, bytes: 1 }, int16: { code: 4, bytes: 2 }, int32: { code: 8, bytes: 4 }, float32: { code: 16, bytes: 4 },
  float64: { code: 64, bytes: 8 }, int8: { code: 256, bytes: 1 }, uint16: { code: 512, bytes: 2 }, uint32: { code: 768, bytes: 4 },
};
const BY_CODE = new Map(Object.entries(CODES).map(([k, v]) => [v.code, k as Dtype]));

export function isNiftiPath(file: string): boolean {
  return /\.nii(\.gz)?$/i.test(file);
}

function fileBytes(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new CohortError('DATA_NOT_FOUND', `cannot read ${file}: ${(e as Error).message}`, 'check the path');
  }
}

function decompressed(file: string, raw: Uint8Array): ArrayBuffer {
  let bytes = raw;
  if (raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      bytes = gunzipSync(raw);
    } catch (e) {
      throw new CohortError('CORRUPT_FILE', `${file}: gzip data is corrupt or truncated (${(e as Error).message})`, 'copy the file again from its source');
    }
  }
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

export function readNifti(file: string): Volume {
  const buf = decompressed(file, fileBytes(file));
  if (buf.byteLength < 348 || !nifti.isNIFTI(buf)) {
    throw new CohortError('NOT_NIFTI', `${file} is not a NIfTI-1/2 file (no valid header)`, 'pass a .nii or .nii.gz file');
  }
  const h = nifti.readHeader(buf);
  const nd = h.dims[0];
  if (nd < 2 || nd > 7) throw new CohortError('CORRUPT_FILE', `${file}: header says ${nd} dimensions`, 'the header is damaged; re-export the image');
  const dims: Vec3 = [h.dims[1], Math.max(1, h.dims[2]), nd >= 3 ? Math.max(1, h.dims[3]) : 1];
  const dtype = BY_CODE.get(h.datatypeCode);
  if (!dtype) {
    throw new CohortError('UNSUPPORTED_DTYPE', `${file}: NIfTI data type ${h.datatypeCode} is not supported`, 'convert it to an integer or float type (e.g. with nibabel)');
  }
  const n = voxelCount(dims);
  const need = n * CODES[dtype].bytes;
  const offset = Number(h.vox_offset);
  if (buf.byteLength < offset + need) {
    throw new CohortError('TRUNCATED_FILE', `${file} is truncated: ${buf.byteLength - offset} bytes of voxel data, ${need} expected for ${dims.join('x')} ${dtype}`,
      'copy the file again from its source');
  }
  const data = convert(new DataView(buf, offset, need), dtype, n, h.littleEndian);
  rescale(data, h.scl_slope, h.scl_inter);
  const spacing: Vec3 = [Math.abs(h.pixDims[1]) || 1, Math.abs(h.pixDims[2]) || 1, nd >= 3 ? Math.abs(h.pixDims[3]) || 1 : 1];
  const affine = h.qform_code > 0 || h.sform_code > 0 ? h.affine.map((r) => r.map(Number)) : scannerFreeAffine(spacing);
  return { dims, spacing, affine, data, dtype };
}

// Method 1 of the NIfTI standard (no qform/sform): voxel -> mm by pixdim only.
function scannerFreeAffine(s: Vec3): number[][] {
  return [[s[0], 0, 0, 0], [0, s[1], 0, 0], [0, 0, s[2], 0], [0, 0, 0, 1]];
}

function convert(view: DataView, dtype: Dtype, n: number, le: boolean): Float32Array {
  const out = new Float32Array(n);
  const b = CODES[dtype].bytes;
  const get: (o: number) => number = {
    uint8: (o: number) => view.getUint8(o), int8: (o: number) => view.getInt8(o),
    int16: (o: number) => view.getInt16(o, le), uint16: (o: number) => view.getUint16(o, le),
    int32: (o: number) => view.getInt32(o, le), uint32: (o: number) => view.getUint32(o, le),
    float32: (o: number) => view.getFloat32(o, le), float64: (o: number) => view.getFloat64(o, le),
  }[dtype];
  for (let i = 0; i < n; i++) out[i] = get(i * b);
  return out;
}

// scl_slope 0 means "no scaling" in the standard
function rescale(data: Float32Array, slope: number, inter: number): void {
  if (!Number.isFinite(slope) || slope === 0 || (slope === 1 && !inter)) return;
  const c = Number.isFinite(inter) ? inter : 0;
  for (let i = 0; i < data.length; i++) data[i] = data[i] * slope + c;
}

export interface NiftiWriteOptions {
  readonly dtype?: Dtype;
  readonly version?: 1 | 2;
  readonly description?: string;
}

/** Write a volume as NIfTI (sform = the volume's affine, qform unset); gzip when the file name ends in .gz. */
export function writeNifti(file: string, vol: Volume, opts: NiftiWriteOptions = {}): void {
  const bytes = encodeNifti(vol, opts);
  writeFileSync(file, /\.gz$/i.test(file) ? gzipSync(bytes, { level: 6 }) : bytes);
}

export function encodeNifti(vol: Volume, opts: NiftiWriteOptions = {}): Uint8Array {
  const dtype = opts.dtype ?? 'float32';
  const headerBytes = opts.version === 2 ? 544 : 352;
  const out = new Uint8Array(headerBytes + vol.data.length * CODES[dtype].bytes);
  const v = new DataView(out.buffer);
  if (opts.version === 2) header2(v, vol, dtype, opts.description ?? '');
  else header1(v, vol, dtype, opts.description ?? '');
  writeVoxels(new DataView(out.buffer, headerBytes), vol.data, dtype);
  return out;
}

function ascii(v: DataView, at: number, s: string, max: number): void {
  for (let i = 0; i < Math.min(s.length, max - 1); i++) v.setUint8(at + i, s.charCodeAt(i) & 0x7f);
}

function header1(v: DataView, vol: Volume, dtype: Dtype, descrip: string): void {
  v.setInt32(0, 348, true);
  v.setUint8(38, 'r'.charCodeAt(0));
  const nd = vol.dims[2] > 1 ? 3 : 2;
  [nd, ...vol.dims, 1, 1, 1, 1].forEach((d, i) => v.setInt16(40 + 2 * i, d, true));
  v.setInt16(70, CODES[dtype].code, true);
  v.setInt16(72, CODES[dtype].bytes * 8, true);
  [1, ...vol.spacing, 0, 0, 0, 0].forEach((d, i) => v.setFloat32(76 + 4 * i, d, true));
  v.setFloat32(108, 352, true);
  v.setFloat32(112, 1, true);
  v.setUint8(123, 2); // xyzt_units: mm
  ascii(v, 148, descrip, 80);
  v.setInt16(252, 0, true);
  v.setInt16(254, 1, true); // sform_code: scanner anatomical
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) v.setFloat32(280 + 16 * r + 4 * c, vol.affine[r][c], true);
  ascii(v, 344, 'n+1', 4);
}

function header2(v: DataView, vol: Volume, dtype: Dtype, descrip: string): void {
  v.setInt32(0, 540, true);
  [0x6e, 0x2b, 0x32, 0, 0x0d, 0x0a, 0x1a, 0x0a].forEach((b, i) => v.setUint8(4 + i, b));
  v.setInt16(12, CODES[dtype].code, true);
  v.setInt16(14, CODES[dtype].bytes * 8, true);
  const nd = vol.dims[2] > 1 ? 3 : 2;
  [nd, ...vol.dims, 1, 1, 1, 1].forEach((d, i) => v.setBigInt64(16 + 8 * i, BigInt(d), true));
  [1, ...vol.spacing, 0, 0, 0, 0].forEach((d, i) => v.setFloat64(104 + 8 * i, d, true));
  v.setBigInt64(168, 544n, true);
  v.setFloat64(176, 1, true);
  ascii(v, 240, descrip, 80);
  v.setInt32(348, 1, true);
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) v.setFloat64(400 + 32 * r + 8 * c, vol.affine[r][c], true);
  v.setInt32(500, 2, true);
}

function writeVoxels(v: DataView, data: Float32Array, dtype: Dtype): void {
  const b = CODES[dtype].bytes;
  const integer = !dtype.startsWith('float');
  for (let i = 0; i < data.length; i++) {
    const x = integer ? Math.round(data[i]) : data[i];
    const o = i * b;
    switch (dtype) {
      case 'uint8': v.setUint8(o, x); break;
      case 'int8': v.setInt8(o, x); break;
      case 'int16': v.setInt16(o, x, true); break;
      case 'uint16': v.setUint16(o, x, true); break;
      case 'int32': v.setInt32(o, x, true); break;
      case 'uint32': v.setUint32(o, x, true); break;
      case 'float32': v.setFloat32(o, x, true); break;
      case 'float64': v.setFloat64(o, x, true); break;
    }
  }
}
