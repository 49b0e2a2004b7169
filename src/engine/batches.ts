/**
 * Host-side data preparation for the engine: validate a SampleSet against a model, convert targets once per set
 * (one-hot labels, masks for unknown markers; cached per SampleSet object), and gather rows into batch buffers.
 */
import * as ort from 'onnxruntime-node';
import { CohortError } from '../util/errors.ts';
import { perSample, type SampleSet, type SampleTensor } from '../data/samples.ts';
import type { LossStage } from './losses.ts';
import type { ModelInfo } from './zoo/index.ts';

export interface Prepared {
  readonly size: number;
  readonly inputs: Readonly<Record<string, SampleTensor>>;
  readonly targets: Readonly<Record<string, SampleTensor>>;
  readonly source: SampleSet;
}

const cache = new WeakMap<SampleSet, WeakMap<LossStage, Prepared>>();

export function prepare(set: SampleSet, info: ModelInfo, loss: LossStage): Prepared {
  let byLoss = cache.get(set);
  const hit = byLoss?.get(loss);
  if (hit) return hit;
  if (set.size === 0) {
    throw new CohortError('EMPTY_DATASET', 'the data set has no samples', 'check the data path and filters: training needs at least one sample');
  }
  const inputs: Record<string, SampleTensor> = {};
  for (const [name, shape] of Object.entries(info.inputs)) {
    const t = set.inputs[name];
    if (!t) {
      throw new CohortError('MISSING_INPUT', `the data has no input '${name}' (it has: ${Object.keys(set.inputs).join(', ') || 'none'})`,
        'use data with the inputs the model was built for');
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new CohortError('SHAPE_MISMATCH', `input '${name}' has per-sample shape [${t.shape.join(',')}], the model expects [${shape.join(',')}]`,
        'resample or crop the data to the shape the model was built for');
    }
    if (t.data.length !== set.size * perSample(t)) {
      throw new CohortError('SHAPE_MISMATCH', `input '${name}' holds ${t.data.length} values, expected ${set.size} x ${perSample(t)}`,
        'the sample set is inconsistent: rebuild it');
    }
    inputs[name] = t;
  }
  const p: Prepared = { size: set.size, inputs, targets: loss.prepare(set), source: set };
  if (!byLoss) { byLoss = new WeakMap(); cache.set(set, byLoss); }
  byLoss.set(loss, p);
  return p;
}

/** Rows `idx` of t, written at row offset `at` of `out`. */
export function gatherRows(t: SampleTensor, idx: readonly number[], out: Float32Array, at = 0): void {
  const n = perSample(t);
  for (let r = 0; r < idx.length; r++) out.set(t.data.subarray(idx[r] * n, (idx[r] + 1) * n), (at + r) * n);
}

/** Feeds for one batch (or K stacked batches when `lead` = [K, B]). */
export function batchFeeds(p: Prepared, chunks: readonly (readonly number[])[], lead: readonly number[],
  names: { input: (n: string) => string; target: (n: string) => string }): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  const add = (group: Readonly<Record<string, SampleTensor>>, name: (n: string) => string): void => {
    for (const [n, t] of Object.entries(group)) {
      const out = new Float32Array(chunks.reduce((a, c) => a + c.length, 0) * perSample(t));
      let at = 0;
      for (const c of chunks) { gatherRows(t, c, out, at); at += c.length; }
      feeds[name(n)] = new ort.Tensor('float32', out, [...lead, ...t.shape]);
    }
  };
  add(p.inputs, names.input);
  add(p.targets, names.target);
  return feeds;
}
