/**
 * The hand-off between the data layer and the engine: a set of samples, each made of named tensors of fixed per-sample shape,
 * stacked row-major in one Float32Array per name. Readers and preprocessing produce it; the engine's trainer consumes it in batches.
 *
 * Conventions for targets (the engine's losses read them this way):
 *   classification: `{ label: { shape: [], data: class index as float } }`
 *   binary heads:   `{ markers: { shape: [K], data: 0/1 } }` (NaN = unknown, masked out of the loss)
 *   segmentation:   `{ mask: { shape: [1, ...spatial], data: 0/1 } }` (binary) or class indices per voxel with shape [1, ...spatial]
 */
export interface SampleTensor {
  /** Shape of one sample (without the batch dimension). */
  readonly shape: readonly number[];
  /** size * prod(shape) values, sample-major. */
  readonly data: Float32Array;
}

export interface SampleSet {
  readonly size: number;
  readonly inputs: Readonly<Record<string, SampleTensor>>;
  readonly targets: Readonly<Record<string, SampleTensor>>;
}

export function perSample(t: SampleTensor): number {
  return t.shape.reduce((a, b) => a * b, 1);
}

/** The samples at `indices`, in that order (copies). */
export function selectSamples(set: SampleSet, indices: readonly number[]): SampleSet {
  const pick = (t: SampleTensor): SampleTensor => {
    const n = perSample(t);
    const out = new Float32Array(indices.length * n);
    indices.forEach((src, dst) => out.set(t.data.subarray(src * n, (src + 1) * n), dst * n));
    return { shape: t.shape, data: out };
  };
  return {
    size: indices.length,
    inputs: mapValues(set.inputs, pick),
    targets: mapValues(set.targets, pick),
  };
}

/** Join Float32Arrays end to end into one new array. */
export function concatFloat32(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** Concatenate sample sets with the same tensor names and shapes (e.g. pooled data for the centralised baseline). */
export function concatSamples(sets: readonly SampleSet[]): SampleSet {
  if (sets.length === 0) throw new Error('concatSamples: no sample sets given');
  const first = sets[0] as SampleSet;
  const size = sets.reduce((a, s) => a + s.size, 0);
  const join = (group: 'inputs' | 'targets', name: string): SampleTensor => {
    const shape = (first[group][name] as SampleTensor).shape;
    const data = new Float32Array(size * perSample({ shape, data: new Float32Array() }));
    let offset = 0;
    for (const s of sets) {
      const t = s[group][name];
      if (!t) throw new Error(`concatSamples: a sample set lacks ${group}.${name}`);
      data.set(t.data, offset);
      offset += t.data.length;
    }
    return { shape, data };
  };
  return {
    size,
    inputs: Object.fromEntries(Object.keys(first.inputs).map((k) => [k, join('inputs', k)])),
    targets: Object.fromEntries(Object.keys(first.targets).map((k) => [k, join('targets', k)])),
  };
}

function mapValues<T, U>(rec: Readonly<Record<string, T>>, f: (v: T) => U): Record<string, U> {
  return Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, f(v)]));
}
