/**
 * A 2D/3D image volume in one convention for every reader (NIfTI, DICOM, PNG, synthetic):
 *   data     Float32Array, x fastest (index = x + nx*(y + ny*z)), values already rescaled (NIfTI scl_*, DICOM slope/intercept)
 *   dims     [nx, ny, nz] (nz = 1 for a 2D image)
 *   spacing  voxel size in mm along x, y, z
 *   affine   4x4 voxel index -> world mm in RAS+ (the NIfTI convention; DICOM's LPS is converted), row-major
 * orientationCode(affine) gives the axis codes ("RAS", "LPS", ...) as nibabel's aff2axcodes does.
 */
import { CohortError } from '../util/errors.ts';

export type Vec3 = [number, number, number];

export interface Volume {
  readonly dims: Vec3;
  readonly spacing: Vec3;
  readonly affine: number[][];
  readonly data: Float32Array;
  /** The stored data type before conversion to float32 (e.g. "int16", "uint8", "float32"). */
  readonly dtype: string;
}

export function voxelCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** An axis-aligned affine from spacing and origin (RAS+). */
export function diagonalAffine(spacing: Vec3, origin: Vec3 = [0, 0, 0]): number[][] {
  return [[spacing[0], 0, 0, origin[0]], [0, spacing[1], 0, origin[1]], [0, 0, spacing[2], origin[2]], [0, 0, 0, 1]];
}

export function makeVolume(dims: Vec3, spacing: Vec3, data?: Float32Array, affine?: number[][]): Volume {
  const n = voxelCount(dims);
  const d = data ?? new Float32Array(n);
  if (d.length !== n) throw new CohortError('VOLUME_SIZE', `volume data has ${d.length} values, dims ${dims.join('x')} need ${n}`, 'pass data matching the dimensions');
  return { dims, spacing, affine: affine ?? diagonalAffine(spacing), data: d, dtype: 'float32' };
}

/** Axis codes of an affine: for each voxel axis, the world direction it mostly points to (R/L, A/P, S/I). */
export function orientationCode(affine: readonly (readonly number[])[]): string {
  const pos = ['R', 'A', 'S'];
  const neg = ['L', 'P', 'I'];
  let code = '';
  for (let j = 0; j < 3; j++) {
    let best = 0;
    for (let i = 1; i < 3; i++) if (Math.abs(affine[i][j]) > Math.abs(affine[best][j])) best = i;
    code += affine[best][j] >= 0 ? pos[best] : neg[best];
  }
  return code;
}

export interface ValueRange { min: number; max: number; mean: number; std: number; nonZero: number }

export function valueRange(data: Float32Array): ValueRange {
  let min = Infinity, max = -Infinity, sum = 0, sq = 0, nz = 0, n = 0;
  for (const v of data) {
    if (Number.isNaN(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v; sq += v * v; n++;
    if (v !== 0) nz++;
  }
  const mean = n ? sum / n : Number.NaN;
  return { min, max, mean, std: n ? Math.sqrt(Math.max(0, sq / n - mean * mean)) : Number.NaN, nonZero: nz };
}

/** Throw when a mask's grid does not match its image's (same dims, spacing within 1e-3 mm). */
export function assertSameGrid(image: Volume, mask: Volume, maskFile: string, imageFile: string): void {
  const sameDims = image.dims.every((d, i) => d === mask.dims[i]);
  const sameSpacing = image.spacing.every((s, i) => Math.abs(s - mask.spacing[i]) < 1e-3);
  if (!sameDims || !sameSpacing) {
    throw new CohortError('MASK_MISMATCH',
      `mask ${maskFile} (${mask.dims.join('x')} @ ${mask.spacing.map((s) => s.toFixed(3)).join('x')} mm) does not match image ${imageFile}`
      + ` (${image.dims.join('x')} @ ${image.spacing.map((s) => s.toFixed(3)).join('x')} mm)`,
      'use the mask drawn on this image, or resample the mask onto the image grid first');
  }
}

/**
 * The volume with its voxel axes permuted and flipped so that they point R, A, S (as nibabel's as_closest_canonical), so images
 * from scanners with different storage orientations line up voxel for voxel. Returns the same object when already RAS.
 */
export function toCanonical(v: Volume): Volume {
  const code = orientationCode(v.affine);
  if (code === 'RAS') return v;
  // for output axis w (R, A, S): the source axis and whether it runs backwards
  const src = [0, 1, 2].map((w) => {
    const j = [...code].findIndex((c) => 'RAS'[w] === c || 'LPI'[w] === c);
    return { axis: j, flip: code[j] !== 'RAS'[w] };
  });
  if (new Set(src.map((s) => s.axis)).size !== 3) {
    throw new CohortError('BAD_ORIENTATION', `the affine's axes (${code}) are not a permutation of R/A/S`, 'check the image header (sform/qform)');
  }
  const dims = src.map((s) => v.dims[s.axis]) as Vec3;
  const spacing = src.map((s) => v.spacing[s.axis]) as Vec3;
  const strides = [1, v.dims[0], v.dims[0] * v.dims[1]];
  const out = new Float32Array(v.data.length);
  let o = 0;
  for (let k = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++) {
    const idx = [i, j, k];
    let at = 0;
    for (let w = 0; w < 3; w++) at += (src[w].flip ? dims[w] - 1 - idx[w] : idx[w]) * strides[src[w].axis];
    out[o++] = v.data[at];
  }
  // new voxel (i, j, k) = old voxel with axis src[w].axis at (flip ? n-1-idx : idx): compose the affine accordingly
  const affine = [0, 1, 2].map((r) => {
    const row = [0, 0, 0, v.affine[r][3]];
    for (let w = 0; w < 3; w++) {
      const a = v.affine[r][src[w].axis];
      row[w] = src[w].flip ? -a : a;
      if (src[w].flip) row[3] += a * (dims[w] - 1);
    }
    return row;
  });
  affine.push([0, 0, 0, 1]);
  return { dims, spacing, affine, data: out, dtype: v.dtype };
}
