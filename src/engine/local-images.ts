/**
 * Local training on a preprocessed image SampleSet (`cohort train --data FOLDER`): the pieces between the data layer's
 * preprocessFolder/splitBySubject and trainLocal (local.ts).
 *   defaultImageModel(set)            a U-Net when the set has masks, else a CNN classifier on the label (2D or 3D by shape)
 *   withClasses(spec, set)            fills in `classes` of a classifier spec from the set's labels
 *   checkModelFitsSamples(spec, set)  the spec's expected input shape against the preprocessed one, before any graph is built
 *   imageTask(spec)                   'segmentation' | 'multitask' | 'classification': what the model learns (and is scored on)
 *   adaptTargets(set, spec)           the clinical label as the single marker of a multi-task U-Net (as the daemon's worker does)
 */
import { CohortError } from '../util/errors.ts';
import type { SampleSet } from '../data/samples.ts';
import { parseModelSpec, type ModelSpec } from './spec.ts';

type Shape = readonly number[];

export function defaultImageModel(set: SampleSet): ModelSpec {
  const dims = imageDims(set);
  if (set.targets.mask) return { type: dims === 2 ? 'unet2d' : 'unet3d', input: 'image', base: 8, depth: 2, classes: 1 };
  if (set.targets.label) return { type: dims === 2 ? 'cnn2d' : 'cnn3d', input: 'image', channels: [8, 16], classes: labelClasses(set) };
  throw new CohortError('MISSING_TARGET', 'the preprocessed data has neither masks nor a label to learn',
    'add SEG masks to the folder, or name a clinical CSV column to predict (cohort train --label COL, or "label" in the preprocessing config)');
}

/** Classifier specs may leave `classes` out: it follows from the labels, as for CSV data. */
export function withClasses(spec: ModelSpec, set: SampleSet): ModelSpec {
  const classifier = spec.type === 'cnn2d' || spec.type === 'cnn3d' || spec.type === 'mlp' || spec.type === 'multimodal';
  if (!classifier || 'classes' in spec || !set.targets.label) return spec;
  return Object.assign({}, spec, { classes: labelClasses(set) }) as ModelSpec;
}

/** One line per input the model reads: the shape it needs vs the shape preprocessing produced, in one CohortError. */
export function checkModelFitsSamples(spec: ModelSpec, set: SampleSet): void {
  const m = parseModelSpec(spec);
  for (const [input, rank, what] of expectedInputs(m)) {
    const name = input ?? (Object.keys(set.inputs).length === 1 ? Object.keys(set.inputs)[0] : 'image');
    const got = set.inputs[name]?.shape;
    if (!got) {
      throw new CohortError('SHAPE_MISMATCH', `model ${m.type} reads input '${name}' ${what}, but the preprocessed samples have only ${inputList(set)}`,
        name === 'clinical' || m.type === 'multimodal' ? 'add "tabular": { "columns": [...] } to the preprocessing config' : 'set "input" in the model spec to one of those inputs');
    }
    if (got.length !== rank) {
      throw new CohortError('SHAPE_MISMATCH', `model ${m.type} expects input '${name}' of shape ${what}, but the preprocessed samples are [${got.join(',')}]`,
        rank === 4 || got.length === 4 ? 'match the dimensionality: preprocessing "size" with 2 entries gives 2D [C,H,W] samples, 3 entries 3D [C,D,H,W]' : 'use a model type that fits the data');
    }
    if ('depth' in m) checkDivisible(m.type, m.depth, name, got);
  }
}

export function imageTask(spec: ModelSpec): 'segmentation' | 'multitask' | 'classification' {
  if (spec.type === 'unet2d' || spec.type === 'unet3d') return 'segmentation';
  return spec.type === 'multitask-unet' ? 'multitask' : 'classification';
}

/** Multi-task U-Nets learn per-subject markers; a site whose clinical label is the (single) marker provides it this way. */
export function adaptTargets(set: SampleSet, spec: ModelSpec): SampleSet {
  const markers = spec.type === 'multitask-unet' ? spec.markers : undefined;
  if (!markers || markers.length !== 1 || set.targets.markers || !set.targets.label) return set;
  return { ...set, targets: { ...set.targets, markers: { shape: [1], data: set.targets.label.data } } };
}

function expectedInputs(m: ReturnType<typeof parseModelSpec>): Array<[string | undefined, number, string]> {
  const img = (d: number): string => (d === 2 ? '[C,H,W]' : '[C,D,H,W]');
  switch (m.type) {
    case 'unet2d': case 'cnn2d': return [[m.input, 3, img(2)]];
    case 'unet3d': case 'cnn3d': return [[m.input, 4, img(3)]];
    case 'multitask-unet': return [[m.input, m.dims + 1, img(m.dims)]];
    case 'multimodal': return [[m.image.input, m.image.dims + 1, img(m.image.dims)], [m.tabular.input, 1, '[features]']];
    case 'mlp': return [[m.input, 1, '[features]']];
    case 'sequential': return [];
  }
}

function checkDivisible(type: string, depth: number, name: string, shape: Shape): void {
  const f = 2 ** depth;
  if (shape.slice(1).some((d) => d % f !== 0)) {
    throw new CohortError('SHAPE_MISMATCH', `model ${type} with depth ${depth} needs spatial sizes divisible by ${f}, but the preprocessed '${name}' samples are [${shape.join(',')}]`,
      `set preprocessing "size" to multiples of ${f}, or lower the model's depth`);
  }
}

function imageDims(set: SampleSet): 2 | 3 {
  const shape = set.inputs.image?.shape;
  if (!shape) throw new CohortError('MISSING_INPUT', `the preprocessed data has no 'image' input (it has ${inputList(set)})`, 'check the preprocessing config');
  return shape.length === 4 ? 3 : 2;
}

function labelClasses(set: SampleSet): number {
  let max = 0;
  for (const v of set.targets.label?.data ?? []) if (v > max) max = v;
  return Math.max(2, max + 1);
}

function inputList(set: SampleSet): string {
  return Object.entries(set.inputs).map(([k, v]) => `'${k}' [${v.shape.join(',')}]`).join(', ') || 'none';
}
