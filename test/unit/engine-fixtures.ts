/** Synthetic data for the engine tests: seeded ellipse segmentation (2D/3D), marker labels, tabular features. */
import { Rng } from '../../src/util/random.ts';
import type { SampleSet } from '../../src/data/samples.ts';

/** n images [1, ...size] with one bright noisy ellipse (ellipsoid) each, and its binary mask. */
export function ellipses(n: number, size: readonly number[], seed: number, opts: { markers?: number } = {}): SampleSet {
  const rng = new Rng(seed);
  const vox = size.reduce((a, b) => a * b, 1);
  const image = new Float32Array(n * vox);
  const mask = new Float32Array(n * vox);
  const K = opts.markers ?? 0;
  const markers = new Float32Array(n * K);
  for (let i = 0; i < n; i++) {
    const c = size.map((d) => d * (0.3 + 0.4 * rng.next()));
    const r = size.map((d) => d * (0.12 + 0.15 * rng.next()));
    const bright = 0.8 + 0.4 * rng.next();
    for (let v = 0; v < vox; v++) {
      let rem = v, q = 0;
      for (let a = size.length - 1; a >= 0; a--) {
        const x = rem % size[a]; rem = Math.floor(rem / size[a]);
        q += ((x - c[a]) / r[a]) ** 2;
      }
      const inside = q <= 1 ? 1 : 0;
      mask[i * vox + v] = inside;
      image[i * vox + v] = inside * bright + 0.25 * rng.normal();
    }
    // marker k: "present" when the lesion is large along axis k mod rank (learnable from the image), some unknown (NaN)
    for (let k = 0; k < K; k++) markers[i * K + k] = rng.next() < 0.15 ? Number.NaN : r[k % size.length] > size[k % size.length] * 0.195 ? 1 : 0;
  }
  return {
    size: n,
    inputs: { image: { shape: [1, ...size], data: image } },
    targets: K ? { mask: { shape: [1, ...size], data: mask }, markers: { shape: [K], data: markers } }
      : { mask: { shape: [1, ...size], data: mask } },
  };
}

/** n tabular samples with d features and a label that depends linearly on them (two classes). */
export function tabular(n: number, d: number, seed: number): SampleSet {
  const rng = new Rng(seed);
  const x = new Float32Array(n * d);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) { x[i * d + j] = rng.normal(); s += x[i * d + j] * (j % 2 ? 1 : -0.5); }
    y[i] = s > 0 ? 1 : 0;
  }
  return { size: n, inputs: { features: { shape: [d], data: x } }, targets: { label: { shape: [], data: y } } };
}
