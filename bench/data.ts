/**
 * `cohort bench data`: data-layer throughput, side by side in one run (medians over repetitions).
 *   - load a 128^3 NIfTI (.nii.gz, int16) and load + preprocess it (resample 1 -> 2 mm, z-score, 8 lesion-aware 32^3 patches, flips)
 *   - load a 20-slice DICOM series (256x256, int16 + rescale)
 *   - IBSI radiomics (56 features: morphology incl. mesh, first-order, GLCM 3D) on a 64^3 image with a lesion
 * and, when bench/results/train.json exists, compares loading with the 3D U-Net's training consumption (samples/s).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, RESULTS_DIR, type BenchSuite } from './suite.ts';
import { readNifti, writeNifti } from '../src/data/nifti.ts';
import { readDicomSeries, writeDicomSeries } from '../src/data/dicom.ts';
import { computeRadiomics } from '../src/data/radiomics.ts';
import { preprocessCases } from '../src/data/preprocess.ts';
import { gaussianBlur } from '../src/data/synth.ts';
import { makeVolume, type Vec3, type Volume } from '../src/data/volume.ts';
import { Rng } from '../src/util/random.ts';

function phantom(n: number, spacing: number, radius: number, seed: number): { image: Volume; mask: Volume } {
  const rng = new Rng(seed);
  const dims: Vec3 = [n, n, n];
  const img = new Float32Array(n * n * n), mask = new Float32Array(n * n * n);
  const c = n / 2;
  for (let z = 0; z < n; z++) for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    const i = x + n * (y + n * z);
    const r = Math.hypot(x - c, y - c, z - c);
    mask[i] = r <= radius ? 1 : 0;
    img[i] = (r <= radius ? 200 + 40 * Math.sin(x / 3) * Math.cos(y / 4) : 40) + 20 * rng.normal();
  }
  return { image: makeVolume(dims, [spacing, spacing, spacing], gaussianBlur(img, dims, [spacing, spacing, spacing], spacing)), mask: makeVolume(dims, [spacing, spacing, spacing], mask) };
}

function time(reps: number, f: () => void): number {
  const t: number[] = [];
  for (let r = 0; r < reps; r++) { const t0 = performance.now(); f(); t.push((performance.now() - t0) / 1000); }
  return median(t);
}

const suite: BenchSuite = {
  name: 'data',
  description: 'NIfTI / DICOM loading, preprocessing and IBSI radiomics throughput',
  async run(opts) {
    const reps = opts.quick ? 3 : 9;
    const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-data-'));
    const log = (s: string): void => { if (opts.verbose) process.stderr.write(s + '\n'); };
    try {
      const big = phantom(128, 1, 30, 1);
      const nii = join(dir, 'ct128.nii.gz');
      writeNifti(nii, big.image, { dtype: 'int16' });
      log('128^3 NIfTI ...');
      const tLoad = time(reps, () => readNifti(nii));
      // what a 3D U-Net on 32^3 patches needs: 8 lesion-aware patches per volume at 2 mm
      const PATCHES = 8;
      const cfg = { modalities: ['CT'], spacing: [2, 2, 2] as [number, number, number], size: [32, 32, 32], intensity: { CT: { method: 'zscore' as const } },
        augment: { flip: true, rotate90: false, jitter: 0, copies: 1 }, crop: 'mask' as const, patches: { count: PATCHES, lesionFraction: 0.5 } };
      const tPre = time(reps, () => { const v = readNifti(nii); preprocessCases([{ subject: 'b', images: { CT: v }, mask: big.mask }], cfg, 1); });
      const series = join(dir, 'series');
      const slab = makeVolume([256, 256, 20], [0.8, 0.8, 2.5], Float32Array.from({ length: 256 * 256 * 20 }, (_, i) => ((i * 7919) % 2000) - 1000));
      writeDicomSeries(series, slab, { modality: 'CT' });
      log('20-slice DICOM series ...');
      const tDicom = time(reps, () => readDicomSeries(series));
      const small = phantom(64, 1, 20, 2);
      log('radiomics on a 64^3 lesion ...');
      let nFeatures = 0;
      const tRad = time(opts.quick ? 2 : 5, () => { nFeatures = Object.keys(computeRadiomics(small.image, small.mask, { discretisation: { method: 'fbn', bins: 32 } })).length; });
      const unet = unetRate();
      const rows = [
        { task: 'load NIfTI 128^3 int16 (.nii.gz)', seconds: +tLoad.toFixed(4), volumes_per_s: +(1 / tLoad).toFixed(2) },
        { task: `load + preprocess NIfTI 128^3 -> ${PATCHES} patches 32^3 @2mm`, seconds: +tPre.toFixed(4), volumes_per_s: +(1 / tPre).toFixed(2), samples_per_s: +(PATCHES / tPre).toFixed(1) },
        { task: 'load DICOM series 256x256x20', seconds: +tDicom.toFixed(4), volumes_per_s: +(1 / tDicom).toFixed(2) },
        { task: `IBSI radiomics 64^3 lesion (${nFeatures} features)`, seconds: +tRad.toFixed(4), features_per_s: +(nFeatures / tRad).toFixed(1) },
      ];
      return {
        suite: 'data', rows, repetitions: reps,
        training_consumption: unet ? { model: unet.model, training_samples_per_s: unet.rate, loaded_samples_per_s: +(PATCHES / tPre).toFixed(1),
          loading_keeps_up: PATCHES / tPre >= unet.rate } : 'bench/results/train.json not found (run cohort bench train)',
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

/** The 3D U-Net's training throughput from the train suite's last result, if any. */
function unetRate(): { model: string; rate: number } | undefined {
  const f = join(RESULTS_DIR, 'train.json');
  if (!existsSync(f)) return undefined;
  const doc = JSON.parse(readFileSync(f, 'utf8')) as { rows?: { model?: string; ort_samples_per_s?: number }[] };
  const row = doc.rows?.find((r) => String(r.model).startsWith('unet3d'));
  return row?.ort_samples_per_s ? { model: String(row.model), rate: row.ort_samples_per_s } : undefined;
}

export default suite;
