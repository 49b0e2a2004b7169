/** Synthetic survival data for the survival-loss tests (Cox, discrete hazard). */
import type { SampleSet } from '../../src/data/samples.ts';
import { Rng } from '../../src/util/random.ts';

/**
 * `n` patients with a known linear log-hazard x . beta: exponential event times, independent exponential censoring (mean 1.5),
 * times in [0, ~3]. `tiesPerUnit` rounds the observed times to multiples of 1/tiesPerUnit, so that ties occur (the Cox loss must
 * handle them).
 */
export function survivalData(n: number, beta: number[], seed: number, tiesPerUnit?: number): SampleSet {
  const rng = new Rng(seed);
  const F = beta.length;
  const x = Float32Array.from({ length: n * F }, () => rng.normal());
  const time = new Float32Array(n);
  const event = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let eta = 0;
    for (let j = 0; j < F; j++) eta += beta[j]! * x[i * F + j]!;
    const t = -Math.log(1 - rng.next()) / Math.exp(eta);
    const c = -Math.log(1 - rng.next()) * 1.5;
    const observed = Math.min(t, c);
    time[i] = tiesPerUnit ? Math.round(observed * tiesPerUnit) / tiesPerUnit : observed;
    event[i] = t <= c ? 1 : 0;
  }
  return { size: n, inputs: { features: { shape: [F], data: x } }, targets: { time: { shape: [], data: time }, event: { shape: [], data: event } } };
}
