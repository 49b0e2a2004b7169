/**
 * SYNTHETIC multi-site PET/CT-like phantoms, reproducible by seed (every output is labelled synthetic).
 *   siteProfile(site)                           scanner + case-mix of site K (seeded by K): PET calibration, noise, blur, voxel
 *                                               spacing, age and disease-burden shifts
 *   synthCase(site, index, opts)                one subject: CT (HU), PET (SUV), exact lesion mask, clinical covariates, label
 *   writeSynthSite(dir, { site, cases, format })  medical-folder layout: <subject>/CT/ct.nii.gz, <subject>/PT/pet.nii.gz,
 *                                               <subject>/SEG/mask.nii.gz, clinical.csv keyed by `subject`, README.txt;
 *                                               format 'dicom': CT/PT DICOM series (PET in Bq/ml + SUV tags) and a DICOM SEG
 * Anatomy: an elliptic body (soft tissue ~40 HU, PET background ~1 SUV) with two lungs (-800 HU, low uptake) in air (-1000 HU).
 * Lesions: 1-4 ellipsoids with irregular (angularly modulated) borders and heterogeneous uptake, placed in the lungs/body.
 * The outcome (`outcome`: 0/1) is a logistic function of total lesion volume, SUVmax-like uptake, heterogeneity, age and
 * smoking status, so both radiomics and clinical covariates carry signal. 2D phantoms are single slices (nz = 1).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../util/random.ts';
import { writeNifti } from './nifti.ts';
import { writeDicomSeries } from './dicom.ts';
import { writeDicomSeg } from './masks.ts';
import { diagonalAffine, makeVolume, type Vec3, type Volume } from './volume.ts';

export interface SiteProfile {
  readonly site: number;
  /** Multiplies PET values (scanner calibration / reconstruction). */
  readonly petScale: number;
  /** CT offset in HU (calibration drift). */
  readonly ctOffset: number;
  /** Noise standard deviations (PET relative, CT in HU). */
  readonly petNoise: number;
  readonly ctNoise: number;
  /** Gaussian blur sigma in mm (PET resolution). */
  readonly blurMm: number;
  /** In-plane voxel size in mm (slice thickness follows). */
  readonly spacing: Vec3;
  /** Case mix: mean age and a lesion-size multiplier. */
  readonly ageMean: number;
  readonly burden: number;
}

export function siteProfile(site: number): SiteProfile {
  const rng = new Rng(0x517e ^ Math.imul(site + 1, 0x9e3779b1));
  const inPlane = [2, 2.5, 3][site % 3];
  return {
    site,
    petScale: 0.75 + 0.5 * rng.next(),
    ctOffset: Math.round(-20 + 40 * rng.next()),
    petNoise: 0.05 + 0.15 * rng.next(),
    ctNoise: 10 + 25 * rng.next(),
    blurMm: 2 + 4 * rng.next(),
    spacing: [inPlane, inPlane, [2, 3, 4][(site >> 1) % 3]],
    ageMean: 55 + 15 * rng.next(),
    burden: 0.8 + 0.5 * rng.next(),
  };
}

export interface SynthOptions {
  /** Field of view in mm along x, y, z (default 128 x 128 x 96; 2D uses x, y). */
  readonly fovMm?: Vec3;
  readonly twoD?: boolean;
  readonly seed?: number;
}

export interface Lesion { centre: Vec3; radii: Vec3; uptake: number; heterogeneity: number; phases: number[] }

export interface SynthCase {
  readonly subject: string;
  readonly ct: Volume;
  readonly pet: Volume;
  readonly mask: Volume;
  readonly clinical: { subject: string; site: number; age: number; sex: 'F' | 'M'; smoker: 0 | 1; outcome: 0 | 1 };
  /** Ground-truth lesion summary (for tests; the outcome model uses it). */
  readonly truth: { lesions: number; volumeMl: number; uptake: number; heterogeneity: number; risk: number };
}

/** One synthetic subject of a site, determined by (seed, site, index). */
export function synthCase(site: number, index: number, opts: SynthOptions = {}): SynthCase {
  const p = siteProfile(site);
  const rng = new Rng(((opts.seed ?? 1) * 7919) ^ Math.imul(site + 1, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35));
  const fov = opts.fovMm ?? [128, 128, 96];
  const dims: Vec3 = [Math.round(fov[0] / p.spacing[0]), Math.round(fov[1] / p.spacing[1]), opts.twoD ? 1 : Math.round(fov[2] / p.spacing[2])];
  const spacing: Vec3 = [p.spacing[0], p.spacing[1], opts.twoD ? p.spacing[2] : p.spacing[2]];
  const lesions = makeLesions(rng, fov, p, !!opts.twoD);
  const { ct, pet, mask } = render(dims, spacing, fov, lesions, rng, p, !!opts.twoD);
  const age = Math.round(Math.min(90, Math.max(25, p.ageMean + 10 * rng.normal())));
  const smoker: 0 | 1 = rng.next() < 0.35 ? 1 : 0;
  const sex: 'F' | 'M' = rng.next() < 0.5 ? 'F' : 'M';
  const volumeMl = lesions.reduce((a, l) => a + (4 / 3) * Math.PI * l.radii[0] * l.radii[1] * (opts.twoD ? l.radii[0] : l.radii[2]), 0) / 1000;
  const uptake = Math.max(...lesions.map((l) => l.uptake));
  const heterogeneity = lesions.reduce((a, l) => a + l.heterogeneity, 0) / lesions.length;
  const risk = -6.2 + 1.1 * Math.log1p(volumeMl) + 0.35 * uptake + 2.0 * heterogeneity + 0.03 * (age - 60) + 0.6 * smoker;
  const outcome: 0 | 1 = rng.next() < 1 / (1 + Math.exp(-risk)) ? 1 : 0;
  const subject = `s${site}-${String(index).padStart(4, '0')}`;
  return {
    subject, ct, pet, mask,
    clinical: { subject, site, age, sex, smoker, outcome },
    truth: { lesions: lesions.length, volumeMl, uptake, heterogeneity, risk },
  };
}

function makeLesions(rng: Rng, fov: Vec3, p: SiteProfile, twoD: boolean): Lesion[] {
  const count = 1 + rng.int(4);
  return Array.from({ length: count }, () => {
    const side = rng.next() < 0.5 ? -1 : 1;
    const r = Math.max(3, (4 + 8 * rng.next()) * p.burden);
    return {
      // inside one lung (lungs centred at +/- 0.22 fov in x)
      centre: [fov[0] / 2 + side * fov[0] * (0.18 + 0.08 * rng.next()), fov[1] / 2 + fov[1] * 0.15 * (rng.next() - 0.5),
        twoD ? 0 : fov[2] / 2 + fov[2] * 0.4 * (rng.next() - 0.5)],
      radii: [r * (0.7 + 0.6 * rng.next()), r * (0.7 + 0.6 * rng.next()), r * (0.7 + 0.6 * rng.next())],
      uptake: 3 + 9 * rng.next(),
      heterogeneity: rng.next(),
      phases: [rng.next() * 6.283, rng.next() * 6.283, rng.next() * 6.283],
    };
  });
}

/** Normalised radius of a point relative to an irregular ellipsoid (<= 1 inside). */
function lesionRadius(l: Lesion, x: number, y: number, z: number, twoD: boolean): number {
  const dx = (x - l.centre[0]) / l.radii[0], dy = (y - l.centre[1]) / l.radii[1], dz = twoD ? 0 : (z - l.centre[2]) / l.radii[2];
  const r = Math.sqrt(dx * dx + dy * dy + dz * dz);
  const theta = Math.atan2(dy, dx), phi = Math.atan2(dz, Math.hypot(dx, dy));
  // irregular border: the surface radius varies with direction by up to ~25%
  const wobble = 1 + 0.12 * Math.sin(3 * theta + l.phases[0]) + 0.08 * Math.sin(5 * theta + 2 * phi + l.phases[1]) + 0.05 * Math.cos(4 * phi + l.phases[2]);
  return r / wobble;
}

function render(dims: Vec3, spacing: Vec3, fov: Vec3, lesions: Lesion[], rng: Rng, p: SiteProfile, twoD: boolean): { ct: Volume; pet: Volume; mask: Volume } {
  const [nx, ny, nz] = dims;
  const n = nx * ny * nz;
  const ct = new Float32Array(n), pet = new Float32Array(n), mask = new Float32Array(n);
  for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) {
    const i = x + nx * (y + ny * z);
    const X = (x + 0.5) * spacing[0], Y = (y + 0.5) * spacing[1], Z = twoD ? 0 : (z + 0.5) * spacing[2];
    const body = ((X - fov[0] / 2) / (fov[0] * 0.45)) ** 2 + ((Y - fov[1] / 2) / (fov[1] * 0.35)) ** 2 <= 1;
    const lung = Math.min(...[-1, 1].map((s) => ((X - fov[0] / 2 - s * fov[0] * 0.22) / (fov[0] * 0.15)) ** 2 + ((Y - fov[1] / 2) / (fov[1] * 0.22)) ** 2)) <= 1;
    ct[i] = !body ? -1000 : lung ? -800 : 40;
    pet[i] = !body ? 0 : lung ? 0.4 : 1;
    for (const l of lesions) {
      const r = lesionRadius(l, X, Y, Z, twoD);
      if (r > 1) continue;
      mask[i] = 1;
      ct[i] = 35;
      // heterogeneous uptake: a necrotic-looking core lowers uptake towards the centre, texture from a smooth pattern
      const pattern = 0.5 + 0.5 * Math.sin(X * 0.6 + l.phases[0]) * Math.cos(Y * 0.5 + l.phases[1]) * Math.sin(Z * 0.4 + l.phases[2]);
      pet[i] = Math.max(pet[i], l.uptake * (1 - l.heterogeneity * 0.6 * (1 - r) - l.heterogeneity * 0.4 * pattern));
    }
  }
  const petBlur = gaussianBlur(pet, dims, spacing, p.blurMm);
  for (let i = 0; i < n; i++) {
    petBlur[i] = Math.max(0, p.petScale * petBlur[i] * (1 + p.petNoise * rng.normal()));
    ct[i] = Math.round(ct[i] + p.ctOffset * (ct[i] > -950 ? 1 : 0) + p.ctNoise * rng.normal());
  }
  const affine = diagonalAffine(spacing, [-fov[0] / 2, -fov[1] / 2, twoD ? 0 : -fov[2] / 2]);
  return { ct: makeVolume(dims, spacing, ct, affine), pet: makeVolume(dims, spacing, petBlur, affine), mask: makeVolume(dims, spacing, mask, affine) };
}

/** Separable Gaussian blur with sigma in mm (axes with one voxel are left alone). */
export function gaussianBlur(data: Float32Array, dims: Vec3, spacing: Vec3, sigmaMm: number): Float32Array {
  let cur = Float32Array.from(data);
  for (let axis = 0; axis < 3; axis++) {
    if (dims[axis] < 2 || sigmaMm <= 0) continue;
    const s = sigmaMm / spacing[axis];
    const radius = Math.ceil(3 * s);
    const k = Array.from({ length: 2 * radius + 1 }, (_, j) => Math.exp(-((j - radius) ** 2) / (2 * s * s)));
    const sum = k.reduce((a, b) => a + b, 0);
    const w = k.map((v) => v / sum);
    const stride = axis === 0 ? 1 : axis === 1 ? dims[0] : dims[0] * dims[1];
    const len = dims[axis];
    const out = new Float32Array(cur.length);
    for (let i = 0; i < cur.length; i++) {
      const pos = Math.floor(i / stride) % len;
      let acc = 0;
      for (let j = -radius; j <= radius; j++) {
        const q = Math.min(len - 1, Math.max(0, pos + j)); // clamp at the borders
        acc += w[j + radius] * cur[i + (q - pos) * stride];
      }
      out[i] = acc;
    }
    cur = out;
  }
  return cur;
}

export interface SynthSiteOptions extends SynthOptions {
  readonly site: number;
  readonly cases: number;
  /** NIfTI files (default) or DICOM: CT and PET series (PET stored as Bq/ml with the SUV tags) and a DICOM SEG */
  readonly format?: 'nifti' | 'dicom';
  readonly onCase?: (done: number) => void;
}

// PET acquisition assumed by the DICOM writer: 70 kg, 370 MBq F-18 injected 60 min before the series
const PET_TAGS = { weightKg: 70, doseBq: 3.7e8, halfLifeS: 6586.2, injectionTime: '090000', seriesTime: '100000' };

function writeCase(dir: string, c: SynthCase, format: 'nifti' | 'dicom'): void {
  if (format === 'nifti') {
    for (const [mod, name, vol, dtype] of [['CT', 'ct', c.ct, 'int16'], ['PT', 'pet', c.pet, 'float32'], ['SEG', 'mask', c.mask, 'uint8']] as const) {
      mkdirSync(join(dir, c.subject, mod), { recursive: true });
      writeNifti(join(dir, c.subject, mod, `${name}.nii.gz`), vol, { dtype, description: 'COHORT SYNTHETIC PHANTOM' });
    }
    return;
  }
  const decayed = PET_TAGS.doseBq * 2 ** (-3600 / PET_TAGS.halfLifeS);
  const activity = makeVolume(c.pet.dims, c.pet.spacing, c.pet.data.map((v) => (v * decayed) / (PET_TAGS.weightKg * 1000)), c.pet.affine);
  writeDicomSeries(join(dir, c.subject, 'CT'), c.ct, { modality: 'CT', patientId: c.subject });
  writeDicomSeries(join(dir, c.subject, 'PT'), activity, { modality: 'PT', patientId: c.subject, slope: 2, intercept: 0, pet: PET_TAGS });
  mkdirSync(join(dir, c.subject, 'SEG'), { recursive: true });
  writeDicomSeg(join(dir, c.subject, 'SEG', 'seg.dcm'), c.mask);
}

/** Write a synthetic site in the medical-folder layout; returns the subjects and the clinical CSV path. */
export function writeSynthSite(dir: string, o: SynthSiteOptions): { subjects: string[]; clinical: string; profile: SiteProfile } {
  mkdirSync(dir, { recursive: true });
  const rows = ['subject,site,age,sex,smoker,outcome'];
  const subjects: string[] = [];
  for (let k = 0; k < o.cases; k++) {
    const c = synthCase(o.site, k, o);
    writeCase(dir, c, o.format ?? 'nifti');
    const cl = c.clinical;
    rows.push([cl.subject, cl.site, cl.age, cl.sex, cl.smoker, cl.outcome].join(','));
    subjects.push(c.subject);
    o.onCase?.(k + 1);
  }
  const clinical = join(dir, 'clinical.csv');
  writeFileSync(clinical, rows.join('\n') + '\n');
  const profile = siteProfile(o.site);
  writeFileSync(join(dir, 'README.txt'), `SYNTHETIC DATA - not patient data.\nGenerated by \`cohort data synth\` (site ${o.site}, ${o.cases} cases, seed ${o.seed ?? 1}).\n`
    + (o.format === 'dicom'
      ? 'Layout: <subject>/CT/ (DICOM series, HU), <subject>/PT/ (DICOM series, Bq/ml with SUV tags), <subject>/SEG/seg.dcm, clinical.csv keyed by subject.\n'
      : 'Layout: <subject>/CT/ct.nii.gz (HU), <subject>/PT/pet.nii.gz (SUV), <subject>/SEG/mask.nii.gz (lesions), clinical.csv keyed by subject.\n')
    + `Site profile: ${JSON.stringify(profile)}\n`);
  return { subjects, clinical, profile };
}
