/**
 * IBSI radiomics (Image Biomarker Standardisation Initiative, reference manual "Image features" chapter) from an image + ROI mask:
 *   computeRadiomics(image, mask, { discretisation })  -> Record<feature name, value> (names: morph_*, stat_*, ih_*, cm_*)
 *   morphology      volume (mesh), voxel volume, surface area (mesh), S/V, compactness 1/2, spherical disproportion, sphericity,
 *                   asphericity, centre of mass shift, maximum 3D diameter
 *   intensity stats mean, variance, skewness, kurtosis (excess), median, min, P10, P90, max, IQR, range, MAD, robust MAD,
 *                   median AD, CoV, QCoD, energy, RMS (on the raw intensities in the ROI)
 *   histogram       entropy and uniformity of the discretised intensities
 *   GLCM            3D, 13 directions at distance 1, symmetric, merged into one matrix ("3D:mrg"), 25 features (log2)
 * Discretisation: fixed bin size { method: 'fbs', binWidth, min } (IBSI: bin = floor((x - min)/w) + 1) or fixed bin number
 * { method: 'fbn', bins }. The digital phantom uses its integer grey levels as they are ('none').
 */
import { CohortError } from '../util/errors.ts';
import { maskMesh } from './mesh.ts';
import type { Vec3, Volume } from './volume.ts';

export type Discretisation =
  | { readonly method: 'none' }
  | { readonly method: 'fbs'; readonly binWidth: number; readonly min?: number }
  | { readonly method: 'fbn'; readonly bins: number };

export interface RadiomicsOptions {
  readonly discretisation?: Discretisation;
  /** Mask values counted as ROI: > threshold (default 0.5). */
  readonly threshold?: number;
}

export type Features = Record<string, number>;

export function computeRadiomics(image: Volume, mask: Volume, opts: RadiomicsOptions = {}): Features {
  const roi = Uint8Array.from(mask.data, (v) => (v > (opts.threshold ?? 0.5) ? 1 : 0));
  const values = roiValues(image.data, roi);
  if (values.length === 0) throw new CohortError('EMPTY_ROI', 'the mask selects no voxels', 'check the mask (nonzero voxels mark the region of interest)');
  const levels = discretise(image.data, roi, values, opts.discretisation ?? { method: 'fbs', binWidth: 25 });
  return {
    ...morphology(image, roi, values),
    ...intensityStats(values),
    ...histogramFeatures(levels, roi),
    ...glcmFeatures(glcm3dMerged(levels, roi, image.dims)),
  };
}

function roiValues(data: Float32Array, roi: Uint8Array): Float64Array {
  let n = 0;
  for (const r of roi) n += r;
  const out = new Float64Array(n);
  let k = 0;
  for (let i = 0; i < roi.length; i++) if (roi[i]) out[k++] = data[i];
  return out;
}

/** Grey level per voxel (1..Ng inside the ROI, 0 outside). */
export function discretise(data: Float32Array, roi: Uint8Array, values: Float64Array, d: Discretisation): Int32Array {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  const level = (x: number): number => {
    if (d.method === 'none') return Math.round(x);
    if (d.method === 'fbs') return Math.floor((x - (d.min ?? lo)) / d.binWidth) + 1;
    return hi > lo ? Math.min(d.bins, Math.floor((d.bins * (x - lo)) / (hi - lo)) + 1) : 1;
  };
  const out = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) if (roi[i]) out[i] = level(data[i]);
  let min = Infinity;
  for (let i = 0; i < out.length; i++) if (roi[i] && out[i] < min) min = out[i];
  if (min < 1) throw new CohortError('BAD_DISCRETISATION', `discretisation gives grey level ${min} < 1`, 'set the fixed-bin-size minimum at or below the lowest ROI intensity');
  return out;
}

// ---------- morphology ----------

function morphology(image: Volume, roi: Uint8Array, values: Float64Array): Features {
  const { spacing, dims } = image;
  const mesh = maskMesh(roi, dims, spacing);
  const V = mesh.volume, A = mesh.area;
  const voxelVolume = values.length * spacing[0] * spacing[1] * spacing[2];
  const sph = Math.cbrt(36 * Math.PI * V * V);
  return {
    morph_volume: V,
    morph_vol_approx: voxelVolume,
    morph_area_mesh: A,
    morph_av: A / V,
    morph_comp_1: V / (Math.sqrt(Math.PI) * A ** 1.5),
    morph_comp_2: (36 * Math.PI * V * V) / A ** 3,
    morph_sph_dispr: A / sph,
    morph_sphericity: sph / A,
    morph_asphericity: Math.cbrt(A ** 3 / (36 * Math.PI * V * V)) - 1,
    morph_com: centreOfMassShift(image, roi),
    morph_diam: maxDiameter(mesh.vertices),
  };
}

function centreOfMassShift(image: Volume, roi: Uint8Array): number {
  const [nx, ny] = image.dims;
  const geo: Vec3 = [0, 0, 0], wtd: Vec3 = [0, 0, 0];
  let n = 0, w = 0;
  for (let i = 0; i < roi.length; i++) {
    if (!roi[i]) continue;
    const p: Vec3 = [(i % nx) * image.spacing[0], (Math.floor(i / nx) % ny) * image.spacing[1], Math.floor(i / (nx * ny)) * image.spacing[2]];
    const v = image.data[i];
    for (let k = 0; k < 3; k++) { geo[k] += p[k]; wtd[k] += v * p[k]; }
    n++; w += v;
  }
  return Math.hypot(geo[0] / n - wtd[0] / w, geo[1] / n - wtd[1] / w, geo[2] / n - wtd[2] / w);
}

/**
 * Largest distance between two mesh vertices. Exact, with pruning: with r_i the distance of vertex i from the centroid,
 * |v_i - v_j| <= r_i + r_j, so once vertices are sorted by r (descending) the inner loop stops at the first partner whose
 * bound cannot beat the best distance so far, and the outer loop stops when 2 r_i cannot.
 */
function maxDiameter(v: Float64Array): number {
  const n = v.length / 3;
  if (n < 2) return 0;
  let cx = 0, cy = 0, cz = 0;
  for (let i = 0; i < n; i++) { cx += v[3 * i]; cy += v[3 * i + 1]; cz += v[3 * i + 2]; }
  cx /= n; cy /= n; cz /= n;
  const r = Float64Array.from({ length: n }, (_, i) => Math.hypot(v[3 * i] - cx, v[3 * i + 1] - cy, v[3 * i + 2] - cz));
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => r[b] - r[a]);
  let best = 0;
  for (let a = 0; a < n; a++) {
    const i = order[a];
    if (2 * r[i] <= best) break;
    for (let b = a + 1; b < n; b++) {
      const j = order[b];
      if (r[i] + r[j] <= best) break;
      const d = Math.hypot(v[3 * i] - v[3 * j], v[3 * i + 1] - v[3 * j + 1], v[3 * i + 2] - v[3 * j + 2]);
      if (d > best) best = d;
    }
  }
  return best;
}

// ---------- intensity statistics ----------

/** Percentile with linear interpolation between order statistics (numpy's default). */
export function percentile(sorted: Float64Array, p: number): number {
  const pos = (sorted.length - 1) * p;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function intensityStats(values: Float64Array): Features {
  const n = values.length;
  const s = Float64Array.from(values).sort();
  const mean = s.reduce((a, b) => a + b, 0) / n;
  let m2 = 0, m3 = 0, m4 = 0, mad = 0, energy = 0;
  for (const v of s) { const d = v - mean; m2 += d * d; m3 += d ** 3; m4 += d ** 4; mad += Math.abs(d); energy += v * v; }
  m2 /= n; m3 /= n; m4 /= n;
  const median = percentile(s, 0.5), p10 = percentile(s, 0.1), p90 = percentile(s, 0.9);
  const p25 = percentile(s, 0.25), p75 = percentile(s, 0.75);
  const robust = s.filter((v) => v >= p10 && v <= p90);
  const rMean = robust.reduce((a, b) => a + b, 0) / robust.length;
  return {
    stat_mean: mean, stat_var: m2, stat_skew: m2 > 0 ? m3 / m2 ** 1.5 : 0, stat_kurt: m2 > 0 ? m4 / (m2 * m2) - 3 : 0,
    stat_median: median, stat_min: s[0], stat_p10: p10, stat_p90: p90, stat_max: s[n - 1], stat_iqr: p75 - p25,
    stat_range: s[n - 1] - s[0], stat_mad: mad / n, stat_rmad: robust.reduce((a, v) => a + Math.abs(v - rMean), 0) / robust.length,
    stat_medad: s.reduce((a, v) => a + Math.abs(v - median), 0) / n, stat_cov: Math.sqrt(m2) / mean,
    stat_qcod: (p75 - p25) / (p75 + p25), stat_energy: energy, stat_rms: Math.sqrt(energy / n),
  };
}

function histogramFeatures(levels: Int32Array, roi: Uint8Array): Features {
  const counts = new Map<number, number>();
  let n = 0;
  for (let i = 0; i < levels.length; i++) if (roi[i]) { counts.set(levels[i], (counts.get(levels[i]) ?? 0) + 1); n++; }
  let entropy = 0, uniformity = 0;
  for (const c of counts.values()) { const p = c / n; entropy -= p * Math.log2(p); uniformity += p * p; }
  return { ih_entropy: entropy, ih_uniformity: uniformity };
}

// ---------- GLCM ----------

/** Ng x Ng symmetric co-occurrence matrix over the 13 3D directions at distance 1, merged and normalised. */
export function glcm3dMerged(levels: Int32Array, roi: Uint8Array, dims: Vec3): { p: Float64Array; ng: number } {
  let ng = 0;
  for (let i = 0; i < levels.length; i++) if (roi[i] && levels[i] > ng) ng = levels[i];
  const m = new Float64Array(ng * ng);
  const [nx, ny, nz] = dims;
  const dirs: Vec3[] = [];
  for (let dz = -1; dz <= 1; dz++) for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
    // one of each +/- pair: the first nonzero component positive
    const first = dx !== 0 ? dx : dy !== 0 ? dy : dz;
    if (first > 0) dirs.push([dx, dy, dz]);
  }
  let total = 0;
  for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) {
    const i = x + nx * (y + ny * z);
    if (!roi[i]) continue;
    for (const [dx, dy, dz] of dirs) {
      const X = x + dx, Y = y + dy, Z = z + dz;
      if (X < 0 || Y < 0 || Z < 0 || X >= nx || Y >= ny || Z >= nz) continue;
      const j = X + nx * (Y + ny * Z);
      if (!roi[j]) continue;
      const a = levels[i] - 1, b = levels[j] - 1;
      m[a * ng + b]++; m[b * ng + a]++; total += 2;
    }
  }
  if (total > 0) for (let k = 0; k < m.length; k++) m[k] /= total;
  return { p: m, ng };
}

export function glcmFeatures({ p, ng }: { p: Float64Array; ng: number }): Features {
  const pi = new Float64Array(ng), pd = new Float64Array(ng), ps = new Float64Array(2 * ng + 1);
  let jmax = 0, mu = 0, jent = 0, asm = 0, contrast = 0, dissim = 0, autoc = 0;
  for (let i = 0; i < ng; i++) for (let j = 0; j < ng; j++) {
    const v = p[i * ng + j];
    if (v === 0) continue;
    const gi = i + 1, gj = j + 1;
    pi[i] += v; pd[Math.abs(i - j)] += v; ps[gi + gj] += v;
    jmax = Math.max(jmax, v); mu += gi * v; jent -= v * Math.log2(v); asm += v * v;
    contrast += (gi - gj) ** 2 * v; dissim += Math.abs(gi - gj) * v; autoc += gi * gj * v;
  }
  let jvar = 0, sigma2 = 0, corr = 0, ct = 0, cs = 0, cp = 0, hxy1 = 0, hxy2 = 0, hx = 0;
  for (let i = 0; i < ng; i++) if (pi[i] > 0) hx -= pi[i] * Math.log2(pi[i]);
  for (let i = 0; i < ng; i++) sigma2 += (i + 1 - mu) ** 2 * pi[i];
  for (let i = 0; i < ng; i++) for (let j = 0; j < ng; j++) {
    const v = p[i * ng + j], gi = i + 1, gj = j + 1;
    const q = pi[i] * pi[j];
    if (q > 0) { hxy2 -= q * Math.log2(q); if (v > 0) hxy1 -= v * Math.log2(q); }
    if (v === 0) continue;
    jvar += (gi - mu) ** 2 * v; corr += (gi - mu) * (gj - mu) * v;
    const t = gi + gj - 2 * mu;
    ct += t * t * v; cs += t ** 3 * v; cp += t ** 4 * v;
  }
  const moments = (arr: Float64Array, from: number): { mean: number; variance: number; entropy: number } => {
    let mean = 0, variance = 0, entropy = 0;
    for (let k = from; k < arr.length; k++) mean += k * arr[k];
    for (let k = from; k < arr.length; k++) { variance += (k - mean) ** 2 * arr[k]; if (arr[k] > 0) entropy -= arr[k] * Math.log2(arr[k]); }
    return { mean, variance, entropy };
  };
  const d = moments(pd, 0), s = moments(ps, 2);
  let id = 0, idn = 0, idm = 0, idmn = 0, iv = 0;
  for (let k = 0; k < ng; k++) {
    id += pd[k] / (1 + k); idn += pd[k] / (1 + k / ng); idm += pd[k] / (1 + k * k); idmn += pd[k] / (1 + (k / ng) ** 2);
    if (k > 0) iv += pd[k] / (k * k);
  }
  return {
    cm_joint_max: jmax, cm_joint_avg: mu, cm_joint_var: jvar, cm_joint_entr: jent,
    cm_diff_avg: d.mean, cm_diff_var: d.variance, cm_diff_entr: d.entropy,
    cm_sum_avg: s.mean, cm_sum_var: s.variance, cm_sum_entr: s.entropy,
    cm_energy: asm, cm_contrast: contrast, cm_dissimilarity: dissim,
    cm_inv_diff: id, cm_inv_diff_norm: idn, cm_inv_diff_mom: idm, cm_inv_diff_mom_norm: idmn, cm_inv_var: iv,
    cm_corr: sigma2 > 0 ? corr / sigma2 : 0, cm_auto_corr: autoc, cm_clust_tend: ct, cm_clust_shade: cs, cm_clust_prom: cp,
    cm_info_corr1: hx > 0 ? (jent - hxy1) / hx : 0, cm_info_corr2: Math.sqrt(Math.max(0, 1 - Math.exp(-2 * (hxy2 - jent)))),
  };
}
