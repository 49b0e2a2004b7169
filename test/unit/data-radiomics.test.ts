import { describe, expect, it } from 'vitest';
import { readNifti } from '../../src/data/nifti.ts';
import { computeRadiomics } from '../../src/data/radiomics.ts';
import { makeVolume } from '../../src/data/volume.ts';
import { maskMesh } from '../../src/data/mesh.ts';
import { Rng } from '../../src/util/random.ts';

const D = 'test/fixtures/data/ibsi-digital-phantom';

// IBSI reference manual, "Image features": digital phantom benchmark values (GLCM: 3D, merged), with their tolerances.
// Where the manual gives no tolerance the value must match to the reported significant digits (half a unit in the last digit).
const REFERENCE: Record<string, [number, number?]> = {
  morph_volume: [556, 4], morph_vol_approx: [592, 4], morph_area_mesh: [388, 3], morph_av: [0.698, 0.004],
  morph_comp_1: [0.0411, 0.0003], morph_comp_2: [0.599, 0.004], morph_sph_dispr: [1.19, 0.01], morph_sphericity: [0.843, 0.005],
  morph_asphericity: [0.186, 0.001], morph_com: [0.672, 0.004], morph_diam: [13.1, 0.1],
  stat_mean: [2.15], stat_var: [3.05], stat_skew: [1.08], stat_kurt: [-0.355], stat_median: [1], stat_min: [1], stat_p10: [1],
  stat_p90: [4], stat_max: [6], stat_iqr: [3], stat_range: [5], stat_mad: [1.55], stat_rmad: [1.11], stat_medad: [1.15],
  stat_cov: [0.812], stat_qcod: [0.6], stat_energy: [567], stat_rms: [2.77],
  ih_entropy: [1.27], ih_uniformity: [0.512],
  cm_joint_max: [0.509], cm_joint_avg: [2.15], cm_joint_var: [3.13], cm_joint_entr: [2.57], cm_diff_avg: [1.38], cm_diff_var: [3.21],
  cm_diff_entr: [1.64], cm_sum_avg: [4.3], cm_sum_var: [7.41], cm_sum_entr: [2.11], cm_energy: [0.291], cm_contrast: [5.12],
  cm_dissimilarity: [1.38], cm_inv_diff: [0.688], cm_inv_diff_norm: [0.856], cm_inv_diff_mom: [0.631], cm_inv_diff_mom_norm: [0.902],
  cm_inv_var: [0.0574], cm_corr: [0.183], cm_auto_corr: [5.19], cm_clust_tend: [7.41], cm_clust_shade: [17.4], cm_clust_prom: [147],
  cm_info_corr1: [-0.0288], cm_info_corr2: [0.269],
};

function halfUlp(v: number): number {
  if (v === 0) return 0.005;
  const digits = Math.max(0, 3 - Math.floor(Math.log10(Math.abs(v))) - 1);
  return 0.5 * 10 ** -digits + 1e-9;
}

describe('IBSI radiomics on the digital phantom', () => {
  const f = computeRadiomics(readNifti(`${D}/phantom.nii.gz`), readNifti(`${D}/mask.nii.gz`), { discretisation: { method: 'none' } });
  for (const [name, [ref, tol]] of Object.entries(REFERENCE)) {
    it(`${name} = ${ref}`, () => {
      expect(f[name]).toBeDefined();
      expect(Math.abs(f[name] - ref)).toBeLessThanOrEqual(tol ?? Math.max(halfUlp(ref), Math.abs(ref) * 0.005));
    });
  }

  it('mesh volume and area of a voxelised sphere approach the analytic ones', () => {
    const n = 40, r = 15;
    const data = new Float32Array(n * n * n);
    for (let z = 0; z < n; z++) for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
      data[x + n * (y + n * z)] = (x - 19.5) ** 2 + (y - 19.5) ** 2 + (z - 19.5) ** 2 <= r * r ? 1 : 0;
    }
    const mask = makeVolume([n, n, n], [1, 1, 1], data);
    const g = computeRadiomics(makeVolume([n, n, n], [1, 1, 1], data.map((v) => v * 100)), mask, { discretisation: { method: 'fbn', bins: 8 } });
    expect(g.morph_volume / ((4 / 3) * Math.PI * r ** 3)).toBeCloseTo(1, 1);
    expect(g.morph_sphericity).toBeGreaterThan(0.9);
    expect(g.morph_diam).toBeGreaterThan(2 * r - 2);
  });

  it('the pruned maximum diameter equals the brute-force one on an irregular mask', () => {
    const rng = new Rng(3);
    const n = 16;
    const data = Float32Array.from({ length: n ** 3 }, () => (rng.next() < 0.3 ? 1 : 0));
    const mask = makeVolume([n, n, n], [1, 0.8, 2], data);
    const v = maskMesh(Uint8Array.from(data), mask.dims, mask.spacing).vertices;
    let brute = 0;
    for (let i = 0; i < v.length; i += 3) for (let j = i + 3; j < v.length; j += 3) brute = Math.max(brute, Math.hypot(v[i] - v[j], v[i + 1] - v[j + 1], v[i + 2] - v[j + 2]));
    expect(computeRadiomics(mask, mask, { discretisation: { method: 'fbn', bins: 2 } }).morph_diam).toBeCloseTo(brute, 9);
  });
});
