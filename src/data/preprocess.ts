/**
 * Preprocessing and harmonisation: a medical folder (or in-memory cases) -> SampleSet, driven by a zod-described config
 * (the `data.preprocessing` part of a scenario manifest).
 *   PreprocessConfigSchema     the config (see docs/data.md): modalities, canonical, spacing, size, crop, patches, intensity, augment, label, tabular
 *   preprocessCases(cases, config, seed)  -> { set, stats, sampleCase, subjects }   cases = [{ subject, images: { CT: Volume }, mask?, label?, clinical? }]
 *   preprocessFolder(root, config, seed)  -> the same, reading ROOT/<subject>/<modality>/... + clinical CSV
 *   (sampleCase[i] = the case sample i came from: split train/held-out by subject, never by patch: splitBySubject)
 *   resample / cropOrPad / normaliseIntensity / samplePatches / augmentSample   the steps, usable on their own
 * Output tensors: inputs.image [C, (z,) y, x] (C = modalities in config order; 2D when size has two entries), targets.mask
 * [1, (z,) y, x] when masks exist, targets.label [] from the clinical label column, inputs.clinical [F] (standardised locally).
 * stats: per-site aggregate statistics only (counts, per-modality intensity mean/std/percentiles, lesion fraction, label balance).
 * Everything random (patch positions, augmentation) comes from one seeded Rng, so a seed reproduces the set bit for bit.
 */
import { z } from 'zod';
import { CohortError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';
import { loadSubjectMask, scanFolder } from './folder.ts';
import { readNifti } from './nifti.ts';
import { readDicomSeries } from './dicom.ts';
import { percentile } from './radiomics.ts';
import { concatFloat32, type SampleSet, type SampleTensor } from './samples.ts';
import { applyStandardiser, encodeLabel, fitStandardiser, readTable, stratifiedSplit, tableToSamples, type Table } from './tabular.ts';
import { makeVolume, toCanonical, voxelCount, type Vec3, type Volume } from './volume.ts';

const IntensitySchema = z.discriminatedUnion('method', [
  /** scope "image" (default): each image's own mean/std; "consortium": one mean/std per modality agreed by all sites from their
   *  training parts' voxel statistics before round 0 (src/data/intensity-stats.ts); the channel stays raw until then */
  z.object({ method: z.literal('zscore'), scope: z.enum(['image', 'consortium']).optional() }),
  z.object({ method: z.literal('percentile'), low: z.number().default(0.5), high: z.number().default(99.5) }),
  z.object({ method: z.literal('window'), level: z.number(), width: z.number().positive() }),
  z.object({ method: z.literal('suv'), max: z.number().positive().default(20) }),
  z.object({ method: z.literal('none') }),
]);
export type IntensityConfig = z.infer<typeof IntensitySchema>;

export const PreprocessConfigSchema = z.object({
  modalities: z.array(z.string()).min(1).default(['CT']),
  /** resample to this voxel size (mm, x y z); images linear, masks nearest */
  spacing: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).optional(),
  /** output size in voxels [x, y] (2D: the slice with most lesion) or [x, y, z] */
  size: z.array(z.number().int().positive()).min(2).max(3),
  /** crop/pad centred on the lesion's bounding box ("mask") or the image centre */
  crop: z.enum(['mask', 'center']).default('mask'),
  /** instead of one crop per case: `count` patches per case, a `lesionFraction` of them centred on lesion voxels */
  patches: z.object({ count: z.number().int().positive(), lesionFraction: z.number().min(0).max(1).default(0.5) }).optional(),
  /** intensity normalisation per modality (default z-score) */
  intensity: z.record(z.string(), IntensitySchema).default({}),
  augment: z.object({
    flip: z.boolean().default(true), rotate90: z.boolean().default(false), jitter: z.number().min(0).default(0), copies: z.number().int().min(1).default(1),
  }).optional(),
  /** clinical CSV column giving targets.label */
  label: z.string().optional(),
  /** clinical covariates as inputs.clinical, standardised on this site's data */
  tabular: z.object({ columns: z.array(z.string()).min(1) }).optional(),
  /** include targets.mask (default: when masks exist) */
  mask: z.boolean().optional(),
  /** reorient every image and mask to RAS first (default true), so sites with different storage orientations line up */
  canonical: z.boolean().default(true),
});
export type PreprocessConfig = z.infer<typeof PreprocessConfigSchema>;
/** The config as written (defaults not yet filled in). */
export type PreprocessConfigInput = z.input<typeof PreprocessConfigSchema>;

export function parsePreprocessConfig(raw: unknown): PreprocessConfig {
  const r = PreprocessConfigSchema.safeParse(raw);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new CohortError('BAD_PREPROCESSING', `preprocessing config: ${first.path.join('.') || '(root)'}: ${first.message}`, 'see docs/data.md for the preprocessing fields');
  }
  return r.data;
}

// ---------- geometric steps ----------

/** Resample to a new voxel size (same field of view): trilinear for images, nearest neighbour for masks. */
export function resample(v: Volume, spacing: Vec3, mode: 'linear' | 'nearest'): Volume {
  const dims: Vec3 = [0, 1, 2].map((a) => (v.dims[a] === 1 ? 1 : Math.max(1, Math.round((v.dims[a] * v.spacing[a]) / spacing[a])))) as Vec3;
  const sp: Vec3 = [0, 1, 2].map((a) => (v.dims[a] === 1 ? v.spacing[a] : spacing[a])) as Vec3;
  const [nx, ny, nz] = v.dims;
  const out = new Float32Array(voxelCount(dims));
  const src = (d: number, a: number): number => Math.min(v.dims[a] - 1, Math.max(0, ((d + 0.5) * sp[a]) / v.spacing[a] - 0.5));
  const at = (x: number, y: number, z: number): number => v.data[x + nx * (y + ny * z)];
  for (let k = 0; k < dims[2]; k++) for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++) {
    const X = src(i, 0), Y = src(j, 1), Z = src(k, 2);
    let val: number;
    if (mode === 'nearest') val = at(Math.round(X), Math.round(Y), Math.round(Z));
    else {
      const x0 = Math.floor(X), y0 = Math.floor(Y), z0 = Math.floor(Z);
      const x1 = Math.min(nx - 1, x0 + 1), y1 = Math.min(ny - 1, y0 + 1), z1 = Math.min(nz - 1, z0 + 1);
      const fx = X - x0, fy = Y - y0, fz = Z - z0;
      const c00 = at(x0, y0, z0) * (1 - fx) + at(x1, y0, z0) * fx, c10 = at(x0, y1, z0) * (1 - fx) + at(x1, y1, z0) * fx;
      const c01 = at(x0, y0, z1) * (1 - fx) + at(x1, y0, z1) * fx, c11 = at(x0, y1, z1) * (1 - fx) + at(x1, y1, z1) * fx;
      val = (c00 * (1 - fy) + c10 * fy) * (1 - fz) + (c01 * (1 - fy) + c11 * fy) * fz;
    }
    out[i + dims[0] * (j + dims[1] * k)] = val;
  }
  const affine = v.affine.map((r) => [...r]);
  for (let a = 0; a < 3; a++) for (let r = 0; r < 3; r++) affine[r][a] = (v.affine[r][a] * sp[a]) / v.spacing[a];
  return { ...makeVolume(dims, sp, out, affine), dtype: v.dtype };
}

/** A box of `size` voxels centred at `centre` (voxel index); outside the volume filled with `fill`. */
export function cropOrPad(v: Volume, size: Vec3, centre: Vec3, fill: number): Float32Array {
  const out = new Float32Array(voxelCount(size)).fill(fill);
  const start = [0, 1, 2].map((a) => Math.round(centre[a] - size[a] / 2));
  const [nx, ny, nz] = v.dims;
  for (let k = 0; k < size[2]; k++) {
    const z = start[2] + k;
    if (z < 0 || z >= nz) continue;
    for (let j = 0; j < size[1]; j++) {
      const y = start[1] + j;
      if (y < 0 || y >= ny) continue;
      for (let i = 0; i < size[0]; i++) {
        const x = start[0] + i;
        if (x >= 0 && x < nx) out[i + size[0] * (j + size[1] * k)] = v.data[x + nx * (y + ny * z)];
      }
    }
  }
  return out;
}

function maskCentre(mask: Volume | undefined, dims: Vec3): Vec3 {
  const centre: Vec3 = [dims[0] / 2, dims[1] / 2, dims[2] / 2];
  if (!mask) return centre;
  const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
  const [nx, ny] = mask.dims;
  for (let i = 0; i < mask.data.length; i++) {
    if (!mask.data[i]) continue;
    const p = [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))];
    for (let a = 0; a < 3; a++) { lo[a] = Math.min(lo[a], p[a]); hi[a] = Math.max(hi[a], p[a]); }
  }
  return lo[0] === Infinity ? centre : [0, 1, 2].map((a) => (lo[a] + hi[a] + 1) / 2) as Vec3;
}

// ---------- intensity ----------

/**
 * Normalise intensities in place; statistics from this image only (no information crosses patients or sites). A consortium-scope
 * z-score is left raw here: its mean/std are agreed later from every site's statistics (applyAgreedIntensity, intensity-stats.ts).
 */
export function normaliseIntensity(data: Float32Array, cfg: IntensityConfig): void {
  if (cfg.method === 'none' || (cfg.method === 'zscore' && cfg.scope === 'consortium')) return;
  if (cfg.method === 'window') {
    const lo = cfg.level - cfg.width / 2;
    for (let i = 0; i < data.length; i++) data[i] = Math.min(1, Math.max(0, (data[i] - lo) / cfg.width));
    return;
  }
  if (cfg.method === 'suv') {
    for (let i = 0; i < data.length; i++) data[i] = Math.min(cfg.max, Math.max(0, data[i])) / cfg.max;
    return;
  }
  if (cfg.method === 'percentile') {
    const s = Float64Array.from(data).sort();
    const lo = percentile(s, cfg.low / 100), hi = percentile(s, cfg.high / 100);
    const w = hi > lo ? hi - lo : 1;
    for (let i = 0; i < data.length; i++) data[i] = (Math.min(hi, Math.max(lo, data[i])) - lo) / w;
    return;
  }
  let sum = 0, sq = 0;
  for (const v of data) { sum += v; sq += v * v; }
  const mean = sum / data.length, sd = Math.sqrt(Math.max(1e-12, sq / data.length - mean * mean));
  for (let i = 0; i < data.length; i++) data[i] = (data[i] - mean) / sd;
}

// ---------- patches and augmentation ----------

/** Patch centres: a `lesionFraction` share on random lesion voxels (when the case has any), the rest uniform. */
export function samplePatches(dims: Vec3, mask: Volume | undefined, count: number, lesionFraction: number, rng: Rng): Vec3[] {
  const lesion: number[] = [];
  if (mask) for (let i = 0; i < mask.data.length; i++) if (mask.data[i]) lesion.push(i);
  const [nx, ny] = dims;
  return Array.from({ length: count }, () => {
    if (lesion.length && rng.next() < lesionFraction) {
      const i = lesion[rng.int(lesion.length)];
      return [i % nx + 0.5, (Math.floor(i / nx) % ny) + 0.5, Math.floor(i / (nx * ny)) + 0.5] as Vec3;
    }
    return [rng.next() * dims[0], rng.next() * dims[1], rng.next() * dims[2]] as Vec3;
  });
}

/** Seeded flips (every axis with more than one voxel), 90-degree in-plane rotation (square slices) and intensity jitter. */
export function augmentSample(channels: Float32Array[], mask: Float32Array | undefined, size: Vec3, aug: NonNullable<PreprocessConfig['augment']>, rng: Rng): void {
  const ops: ((d: Float32Array) => Float32Array)[] = [];
  for (let a = 0; a < 3; a++) if (aug.flip && size[a] > 1 && rng.next() < 0.5) ops.push((d) => flip(d, size, a));
  if (aug.rotate90 && size[0] === size[1]) { const q = rng.int(4); for (let r = 0; r < q; r++) ops.push((d) => rot90(d, size)); }
  const apply = (d: Float32Array): void => { let cur = d; for (const op of ops) cur = op(cur); d.set(cur); };
  channels.forEach((c) => {
    apply(c);
    if (aug.jitter > 0) {
      const scale = 1 + aug.jitter * rng.normal(), shift = aug.jitter * rng.normal();
      for (let i = 0; i < c.length; i++) c[i] = c[i] * scale + shift;
    }
  });
  if (mask) apply(mask);
}

function flip(d: Float32Array, size: Vec3, axis: number): Float32Array {
  const out = new Float32Array(d.length);
  const [nx, ny, nz] = size;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    const p = [i, j, k];
    p[axis] = size[axis] - 1 - p[axis];
    out[p[0] + nx * (p[1] + ny * p[2])] = d[i + nx * (j + ny * k)];
  }
  return out;
}

function rot90(d: Float32Array, size: Vec3): Float32Array {
  const out = new Float32Array(d.length);
  const [n, , nz] = size;
  for (let k = 0; k < nz; k++) for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) out[(n - 1 - j) + n * (i + n * k)] = d[i + n * (j + n * k)];
  return out;
}

// ---------- assembling ----------

export interface PreprocessCase {
  readonly subject: string;
  readonly images: Readonly<Record<string, Volume>>;
  readonly mask?: Volume;
  /** label class index and clinical covariates (already encoded) */
  readonly label?: number;
  readonly clinical?: Float32Array;
}

export interface SiteStats {
  readonly cases: number;
  readonly samples: number;
  /** per modality: mean, std and 1st/99th percentiles of raw intensities inside the body (> -900 for CT, > 0 otherwise),
   *  estimated from an evenly strided sample of at most ~50k voxels per case */
  readonly intensity: Readonly<Record<string, { mean: number; std: number; p1: number; p99: number }>>;
  /** mean fraction of lesion voxels per case */
  readonly lesionFraction: number;
  readonly labelBalance?: Readonly<Record<string, number>>;
}

export interface PreprocessResult {
  readonly set: SampleSet;
  readonly stats: SiteStats;
  /** For each sample, the index of the case (subject) it came from: split by subject, so patches and augmented copies of
   *  one patient never land in both the training and the held-out part. */
  readonly sampleCase: Int32Array;
  readonly subjects: readonly string[];
}

interface Sample { chans: Float32Array[]; mask?: Float32Array }

export function preprocessCases(cases: readonly PreprocessCase[], cfgIn: PreprocessConfigInput, seed: number, classNames?: readonly string[]): PreprocessResult {
  const cfg = parsePreprocessConfig(cfgIn);
  if (cases.length === 0) throw new CohortError('EMPTY_DATASET', 'no cases to preprocess', 'register a dataset with at least one subject');
  const rng = new Rng(seed);
  const twoD = cfg.size.length === 2;
  const size: Vec3 = twoD ? [cfg.size[0], cfg.size[1], 1] : [cfg.size[0], cfg.size[1], cfg.size[2]];
  const withMask = cfg.mask ?? cases.every((c) => c.mask);
  const samples: Sample[] = [], owner: number[] = [];
  cases.forEach((c, k) => {
    for (const s of caseSamples(c, cfg, size, withMask, rng)) { samples.push(s); owner.push(k); }
  });
  const spatial = twoD ? [size[1], size[0]] : [size[2], size[1], size[0]];
  const inputs: Record<string, SampleTensor> = { image: { shape: [cfg.modalities.length, ...spatial], data: concatFloat32(samples.flatMap((s) => s.chans)) } };
  const F = cases[0].clinical?.length ?? 0;
  if (F) {
    const raw: SampleTensor = { shape: [F], data: concatFloat32(owner.map((k) => cases[k].clinical ?? new Float32Array(F).fill(Number.NaN))) };
    inputs.clinical = applyStandardiser(raw, fitStandardiser(raw, owner.length));
  }
  const targets: Record<string, SampleTensor> = {};
  if (withMask) targets.mask = { shape: [1, ...spatial], data: concatFloat32(samples.map((s) => s.mask ?? new Float32Array(0))) };
  if (cfg.label !== undefined) targets.label = { shape: [], data: Float32Array.from(owner, (k) => cases[k].label ?? Number.NaN) };
  return {
    set: { size: samples.length, inputs, targets }, stats: siteStats(cases, cfg, samples.length, classNames),
    sampleCase: Int32Array.from(owner), subjects: cases.map((c) => c.subject),
  };
}

/**
 * Held-out split by subject (stratified by the subject's label when there is one): every sample of a subject goes to the same
 * side. Returns sample indices, like stratifiedSplit.
 */
export function splitBySubject(r: Pick<PreprocessResult, 'set' | 'sampleCase' | 'subjects'>, testFraction: number, seed: number): { train: number[]; test: number[] } {
  const caseLabel = new Float32Array(r.subjects.length);
  const label = r.set.targets.label?.data;
  r.sampleCase.forEach((k, i) => { caseLabel[k] = label ? label[i] : 0; });
  const byCase = stratifiedSplit(caseLabel, testFraction, seed);
  const testCases = new Set(byCase.test);
  const train: number[] = [], test: number[] = [];
  r.sampleCase.forEach((k, i) => (testCases.has(k) ? test : train).push(i));
  return { train, test };
}

/** One case: orient, resample, choose crop/patch centres, then crop, normalise and augment each sample. */
function caseSamples(c: PreprocessCase, cfg: PreprocessConfig, size: Vec3, withMask: boolean, rng: Rng): Sample[] {
  const prepare = (v: Volume, mode: 'linear' | 'nearest'): Volume => {
    const o = cfg.canonical ? toCanonical(v) : v;
    return cfg.spacing ? resample(o, cfg.spacing as Vec3, mode) : o;
  };
  const vols = cfg.modalities.map((m) => {
    const v = c.images[m];
    if (!v) throw new CohortError('MISSING_MODALITY', `subject ${c.subject} has no ${m} image`, `modalities needed: ${cfg.modalities.join(', ')}; remove the subject or the modality`);
    return prepare(v, 'linear');
  });
  const mask = c.mask ? prepare(c.mask, 'nearest') : undefined;
  if (withMask && !mask) throw new CohortError('MISSING_MASK', `subject ${c.subject} has no mask`, 'add a SEG/ folder for it, or set mask: false');
  const centres = cfg.patches ? samplePatches(vols[0].dims, mask, cfg.patches.count, cfg.patches.lesionFraction, rng)
    : [centreFor(cfg.crop, mask, vols[0].dims, size[2] === 1)];
  const out: Sample[] = [];
  for (const centre of centres) {
    for (let copy = 0; copy < (cfg.augment?.copies ?? 1); copy++) {
      const chans = vols.map((v, k) => {
        const d = cropOrPad(v, size, centre, backgroundOf(cfg.modalities[k]));
        normaliseIntensity(d, cfg.intensity[cfg.modalities[k]] ?? { method: 'zscore' });
        return d;
      });
      const m = withMask && mask ? cropOrPad(mask, size, centre, 0).map((v) => (v > 0.5 ? 1 : 0)) : undefined;
      if (cfg.augment) augmentSample(chans, m, size, cfg.augment, rng);
      out.push({ chans, mask: m });
    }
  }
  return out;
}

function centreFor(crop: 'mask' | 'center', mask: Volume | undefined, dims: Vec3, twoD: boolean): Vec3 {
  const c = maskCentre(crop === 'mask' ? mask : undefined, dims);
  if (!twoD || !mask || crop !== 'mask') return c;
  // 2D: the slice with the most lesion voxels
  const [nx, ny, nz] = mask.dims;
  let best = 0, bestK = Math.floor(nz / 2);
  for (let k = 0; k < nz; k++) {
    let s = 0;
    for (let i = 0; i < nx * ny; i++) s += mask.data[k * nx * ny + i] ? 1 : 0;
    if (s > best) { best = s; bestK = k; }
  }
  return [c[0], c[1], bestK + 0.5];
}

const backgroundOf = (modality: string): number => (modality === 'CT' ? -1000 : 0);

function siteStats(cases: readonly PreprocessCase[], cfg: PreprocessConfig, samples: number, classNames?: readonly string[]): SiteStats {
  const intensity: Record<string, { mean: number; std: number; p1: number; p99: number }> = {};
  for (const m of cfg.modalities) {
    // summary statistics from an evenly strided sample of at most ~50k voxels per case (aggregates only; exact enough)
    let sum = 0, sq = 0, n = 0;
    const sample: number[] = [];
    const floor = m === 'CT' ? -900 : 0;
    for (const c of cases) {
      const d = c.images[m].data;
      const stride = Math.max(1, Math.floor(d.length / 50000));
      for (let i = 0; i < d.length; i += stride) {
        const v = d[i];
        if (!(v > floor)) continue;
        sum += v; sq += v * v; n++;
        sample.push(v);
      }
    }
    const s = Float64Array.from(sample).sort();
    const mean = n ? sum / n : Number.NaN;
    intensity[m] = { mean, std: n ? Math.sqrt(Math.max(0, sq / n - mean * mean)) : Number.NaN,
      p1: s.length ? percentile(s, 0.01) : Number.NaN, p99: s.length ? percentile(s, 0.99) : Number.NaN };
  }
  const fractions = cases.map((c) => {
    if (!c.mask) return 0;
    let k = 0;
    for (const v of c.mask.data) if (v) k++;
    return k / c.mask.data.length;
  });
  const labelBalance = cfg.label !== undefined && classNames
    ? Object.fromEntries(classNames.map((name, k) => [name, cases.filter((c) => c.label === k).length])) : undefined;
  return { cases: cases.length, samples, intensity, lesionFraction: fractions.reduce((a, b) => a + b, 0) / cases.length, ...(labelBalance ? { labelBalance } : {}) };
}

/** Read a medical folder and preprocess it. */
export function preprocessFolder(root: string, cfgIn: unknown, seed: number): PreprocessResult {
  const cfg = parsePreprocessConfig(cfgIn);
  const layout = scanFolder(root);
  const table: Table | undefined = layout.clinical ? readTable(layout.clinical) : undefined;
  const rowOf = new Map<string, number>();
  const subjCol = table?.columns.find((c) => c.name === layout.subjectColumn);
  subjCol?.values.forEach((v, r) => rowOf.set(String(v), r));
  let labels: Float32Array | undefined, classNames: readonly string[] | undefined, covariates: Float32Array | undefined, F = 0;
  if ((cfg.label || cfg.tabular) && !table) throw new CohortError('MISSING_COLUMN', `${root} has no clinical CSV`, 'put a CSV keyed by subject in the folder root, or drop label/tabular');
  if (table && cfg.label) {
    ({ labels, classNames } = encodeLabel(table, cfg.label));
    const missing = labels.filter((v) => Number.isNaN(v)).length;
    if (missing) throw new CohortError('MISSING_LABEL', `${layout.clinical}: ${missing} subject(s) have no '${cfg.label}'`, 'fill in the label or remove those subjects');
  }
  if (table && cfg.tabular) {
    const t = tableToSamples(table, { features: cfg.tabular.columns });
    covariates = t.set.inputs.features.data; F = t.featureNames.length;
  }
  const cases: PreprocessCase[] = layout.subjects.map((s) => {
    const r = rowOf.get(s.subject);
    if (table && r === undefined) throw new CohortError('MISSING_SUBJECT', `${layout.clinical} has no row for subject ${s.subject}`, 'add the subject to the clinical CSV');
    const images: Record<string, Volume> = {};
    for (const m of cfg.modalities) {
      const p = s.images[m];
      if (p) images[m] = /\.nii(\.gz)?$/i.test(p) ? readNifti(p) : readDicomSeries(p).volume;
    }
    const first = cfg.modalities.map((m) => s.images[m]).find(Boolean) as string | undefined;
    const mask = s.masks[0] && first ? loadSubjectMask(s.masks[0], images[cfg.modalities[0]], first) : undefined;
    return {
      subject: s.subject, images, mask,
      ...(labels && r !== undefined ? { label: labels[r] } : {}),
      ...(covariates && r !== undefined ? { clinical: covariates.slice(r * F, (r + 1) * F) } : {}),
    };
  });
  return preprocessCases(cases, cfg, seed, classNames);
}
