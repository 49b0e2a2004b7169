/**
 * Pooled data for a simulation, from a manifest's data selector (simulation only: real peers read their own registered data).
 *   source "path/to/file.csv" + label column   the data layer's tabular reader (src/data/tabular.ts: ids dropped, categories one-hot,
 *                                              labels -> class indices in sorted order)
 *   source "synthetic:blobs"                   Gaussian class blobs (preprocessing: { samples, features, classes, separation })
 * Produces a SampleSet { inputs: { features: [F] }, targets: { label: [] } }. preprocessing { standardize: true } is applied after the
 * train/test split by standardiseSplit (statistics of the training part only).
 */
import type { SampleSet } from '../data/samples.ts';
import { fitStandardiser, readTabular, standardiseSet } from '../data/tabular.ts';
import { CohortError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';

export interface LoadedData {
  readonly set: SampleSet;
  readonly classes: number;
  readonly classNames: readonly string[];
  readonly featureNames: readonly string[];
}

export interface DataSelector {
  readonly source?: string;
  readonly label?: string;
  readonly dataset?: string;
}

export function loadSimData(selector: DataSelector, preprocessing: Readonly<Record<string, unknown>>, seed: number): LoadedData {
  const source = selector.source ?? (selector.dataset === 'wdbc' ? 'data/wdbc.csv' : undefined);
  if (!source) {
    throw new CohortError('SIM_DATA_SOURCE', 'the manifest\'s data.selector names no source the simulator can load',
      'set data.selector.source to a CSV file (with data.selector.label) or "synthetic:blobs"');
  }
  return source.startsWith('synthetic:') ? synthetic(source.slice(10), preprocessing, seed) : csv(source, selector.label ?? 'label');
}

function csv(path: string, label: string): LoadedData {
  const t = readTabular(path, { label });
  if (!t.set.targets['label']) throw new CohortError('SIM_DATA_LABEL', `${path} has no label column "${label}"`, 'set data.selector.label');
  return { set: t.set, classes: t.classes, classNames: t.classNames, featureNames: t.featureNames };
}

function num(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

function synthetic(kind: string, p: Readonly<Record<string, unknown>>, seed: number): LoadedData {
  if (kind !== 'blobs') throw new CohortError('SIM_DATA_SOURCE', `unknown synthetic source "${kind}"`, 'use "synthetic:blobs"');
  const n = num(p['samples'], 600);
  const F = num(p['features'], 8);
  const C = num(p['classes'], 3);
  const sep = num(p['separation'], 2);
  const rng = new Rng(seed ^ 0xb10b);
  const centres = Array.from({ length: C }, () => Float32Array.from({ length: F }, () => rng.normal() * sep));
  const features = new Float32Array(n * F);
  const label = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    const c = k % C;
    label[k] = c;
    for (let j = 0; j < F; j++) features[k * F + j] = centres[c]![j]! + rng.normal();
  }
  return {
    set: { size: n, inputs: { features: { shape: [F], data: features } }, targets: { label: { shape: [], data: label } } },
    classes: C,
    classNames: Array.from({ length: C }, (_, c) => `class${c}`),
    featureNames: Array.from({ length: F }, (_, j) => `f${j}`),
  };
}

/** z-score every input with statistics of the training part only (the data layer's standardiser); the test part reuses them. */
export function standardiseSplit(train: SampleSet, test: SampleSet): { train: SampleSet; test: SampleSet } {
  let tr = train;
  let te = test;
  for (const [name, t] of Object.entries(train.inputs)) {
    const s = fitStandardiser(t, train.size);
    tr = standardiseSet(tr, s, name);
    te = standardiseSet(te, s, name);
  }
  return { train: tr, test: te };
}
