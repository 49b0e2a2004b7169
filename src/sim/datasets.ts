/**
 * Pooled data for a simulation, from a manifest's data selector (simulation only: real peers read their own registered data).
 *   source "path/to/file.csv" + label column   numeric feature columns (non-numeric columns such as ids are skipped), string labels
 *                                              mapped to class indices in sorted order; preprocessing { standardize: true } z-scores
 *                                              each feature (statistics of the pooled data: a simulation shortcut)
 *   source "synthetic:blobs"                   Gaussian class blobs (preprocessing: { samples, features, classes, separation })
 * Produces a SampleSet { inputs: { features: [F] }, targets: { label: [] } }.
 */
import { readFileSync } from 'node:fs';
import type { SampleSet } from '../data/samples.ts';
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
  const loaded = source.startsWith('synthetic:') ? synthetic(source.slice(10), preprocessing, seed) : csv(source, selector.label ?? 'label');
  return preprocessing['standardize'] === true ? { ...loaded, set: standardize(loaded.set) } : loaded;
}

function csv(path: string, labelColumn: string): LoadedData {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CohortError('SIM_DATA_READ', `cannot read ${path}: ${(e as Error).message}`, 'run from the repository root, or give an absolute path');
  }
  const lines = text.split(/\r?\n/).filter((l) => l.trim().length);
  const header = lines[0]!.split(',').map((h) => h.trim());
  const li = header.indexOf(labelColumn);
  if (li < 0) throw new CohortError('SIM_DATA_LABEL', `${path} has no column "${labelColumn}"`, `columns: ${header.join(', ')}`);
  const rows = lines.slice(1).map((l) => l.split(','));
  const featureCols = header.map((_, i) => i).filter((i) => i !== li && rows.every((r) => r[i] !== undefined && r[i]!.trim() !== '' && Number.isFinite(Number(r[i]))));
  const classNames = [...new Set(rows.map((r) => r[li]!.trim()))].sort();
  const F = featureCols.length;
  const features = new Float32Array(rows.length * F);
  const label = new Float32Array(rows.length);
  rows.forEach((r, k) => {
    featureCols.forEach((c, j) => { features[k * F + j] = Number(r[c]); });
    label[k] = classNames.indexOf(r[li]!.trim());
  });
  return {
    set: { size: rows.length, inputs: { features: { shape: [F], data: features } }, targets: { label: { shape: [], data: label } } },
    classes: classNames.length,
    classNames,
    featureNames: featureCols.map((c) => header[c]!),
  };
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

function standardize(set: SampleSet): SampleSet {
  const inputs = Object.fromEntries(Object.entries(set.inputs).map(([name, t]) => {
    const F = t.shape.reduce((a, b) => a * b, 1);
    const mean = new Float64Array(F);
    const sq = new Float64Array(F);
    for (let k = 0; k < set.size; k++) for (let j = 0; j < F; j++) { const v = t.data[k * F + j]!; mean[j] = mean[j]! + v; sq[j] = sq[j]! + v * v; }
    for (let j = 0; j < F; j++) { mean[j] = mean[j]! / set.size; sq[j] = Math.sqrt(Math.max(sq[j]! / set.size - mean[j]! ** 2, 1e-12)); }
    const data = Float32Array.from(t.data, (v, i) => (v - mean[i % F]!) / sq[i % F]!);
    return [name, { shape: t.shape, data }];
  }));
  return { size: set.size, inputs, targets: set.targets };
}
