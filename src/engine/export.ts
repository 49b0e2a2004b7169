/**
 * The self-contained model a hospital gets (issue 13.2): one ONNX file that starts from RAW table columns and ends with class
 * probabilities and labels, with everything needed to use it in ModelProto.metadata_props. Any ONNX runtime runs it without
 * Cohort code. One place builds it, for `cohort train --export` and for a scenario's final model.
 *
 *   selfContainedTabular(modelBytes, { input, task, provenance? })   wrap Trainer.exportOnnx()'s graph (input `features`, z-scored)
 *   selfContainedImage(modelBytes, { intensity, task, ... })          an image model: the per-image intensity transform in-graph
 *   readCohortMetadata(bytes, file)                                  the metadata back (clear errors: not ONNX, not a Cohort model)
 *
 * The wrapped graph:
 *   inputs   features   float  [N, numeric columns]      raw values in metadata order; NaN = missing
 *            categories string [N, categorical columns]   only when the table has categorical columns; "" = missing
 *   graph    categorical column -> LabelEncoder (ai.onnx.ml) -> Equal(range) -> one-hot (an unseen or missing category: all 0,
 *            as the tabular reader encodes it); Concat in the reader's feature order; z = (x - mean) / std; Where(IsNaN(z), 0, z)
 *            (mean imputation, as applyStandardiser); the trained network
 *   outputs  prob   float [N, C] (softmax) or [N, 1] (one sigmoid logit)   | risk [N, 1] for a Cox model
 *            label  int64 [N]  ArgMax over classes, or prob > 0.5 for one logit (what Cohort's evaluation counts)
 *            class  string [N] the class name of label
 *            value  float [N, 1] a regression model's prediction in the target's units: prob (the z-scored target it learnt) * std
 *                   + mean, with the target's training mean and sd (metadata cohort.target)
 * An image model (input `image`, the preprocessed volume [N, C, (z,) y, x] BEFORE intensity normalisation) gets each channel's
 * intensity transform in-graph, as src/data/preprocess.ts computes it from that image alone: window, suv, zscore and percentile
 * (per image and channel; the percentiles from a TopK sort of the voxels), none. Resampling and cropping stay in the data layer.
 * A segmentation model adds `mask` (int64 [N, 1, ...]: the argmax class, or prob > 0.5); a classifier adds `label` and `class`.
 */
import onnx from 'onnx-proto';
import { CohortError } from '../util/errors.ts';
import { sourceColumns, type ModelInputDescription, type SourceColumn } from '../data/model-input.ts';
import type { IntensityConfig } from '../data/preprocess.ts';

const P = onnx.onnx;
const A = P.AttributeProto.AttributeType;
const FLOAT = 1, STRING = 8, INT64 = 7;

/** Cohort's version, written into every exported model. */
export const COHORT_VERSION = '0.1.0';
/** Every metadata key Cohort writes starts with this. */
export const META_PREFIX = 'cohort.';

export interface ExportTask {
  readonly kind: 'classification' | 'survival' | 'regression' | 'segmentation';
  readonly label?: string;
  readonly time?: string;
  readonly event?: string;
}

/** Where the model came from: a scenario's hash, its participants and rounds, and the metric its report states. */
export interface ExportProvenance {
  readonly scenario?: { readonly id: string; readonly hash: string; readonly name?: string };
  readonly participants?: readonly string[];
  readonly rounds?: number;
  readonly metric?: { readonly name: string; readonly value?: number };
}

export interface TabularExportOptions {
  readonly input: ModelInputDescription;
  readonly task: ExportTask;
  readonly provenance?: ExportProvenance;
  /** Regression: the target's training mean and sd; the model learnt the z-scored target, the export outputs y * std + mean. */
  readonly target?: TargetScale;
}

/** A regression target's scale (the mean and sample sd it was z-scored with for training). */
export interface TargetScale { readonly mean: number; readonly std: number }

/** The metadata a Cohort model carries, as readCohortMetadata returns it. */
export interface CohortModelMetadata {
  readonly version: string;
  readonly task: ExportTask;
  /** Source columns in the order of the `features` input (numeric) and the `categories` input (categorical). */
  readonly inputs: { readonly features: readonly string[]; readonly categories: readonly string[] };
  readonly columns: readonly SourceColumn[];
  readonly featureNames: readonly string[];
  readonly classes: readonly string[];
  readonly outputs: readonly string[];
  readonly preprocessing: string;
  readonly scenario?: ExportProvenance['scenario'];
  readonly participants?: readonly string[];
  readonly rounds?: number;
  readonly metric?: ExportProvenance['metric'];
  /** Regression: the target scale the graph multiplies back (output `value` is in the target's units). */
  readonly target?: TargetScale;
  /** Image models: the volume input, its channels (modalities) and what the graph does to each channel's intensities. */
  readonly image?: ImageInputMetadata;
}

export interface ImageInputMetadata {
  readonly input: string;
  /** Per sample: [C, (z,) y, x]. */
  readonly shape: readonly number[];
  readonly modalities: readonly string[];
  /** Per channel: the data layer's intensity config, and whether the graph applies it (false: feed that channel normalised). */
  readonly intensity: ReadonlyArray<{ readonly modality: string; readonly config: IntensityConfig; readonly inGraph: boolean }>;
  /** The data layer's preprocessing config (resampling, size, crop) that produced the volume. */
  readonly preprocessing?: unknown;
}

/** Nodes and initializers appended to a decoded model, with fresh names that cannot collide with the trained graph's. */
class Appender {
  readonly nodes: onnx.onnx.INodeProto[] = [];
  readonly initializers: onnx.onnx.ITensorProto[] = [];
  private n = 0;

  name(stem: string): string { return `cohort_${stem}_${this.n++}`; }

  node(op: string, inputs: readonly string[], attrs: onnx.onnx.IAttributeProto[] = [], out?: string, domain?: string): string {
    const output = out ?? this.name(op.toLowerCase());
    this.nodes.push({ name: this.name(`n_${op.toLowerCase()}`), opType: op, input: [...inputs], output: [output], attribute: attrs, ...(domain ? { domain } : {}) });
    return output;
  }

  floats(stem: string, values: ArrayLike<number>): string {
    const name = this.name(stem);
    const data = Float32Array.from(values);
    this.initializers.push({ name, dims: [data.length], dataType: FLOAT, rawData: new Uint8Array(data.buffer) });
    return name;
  }

  ints(stem: string, values: readonly number[], dims: number[] = [values.length]): string {
    const name = this.name(stem);
    const data = BigInt64Array.from(values.map(BigInt));
    this.initializers.push({ name, dims, dataType: INT64, rawData: new Uint8Array(data.buffer) });
    return name;
  }

  strings(stem: string, values: readonly string[]): string {
    const name = this.name(stem);
    this.initializers.push({ name, dims: [values.length], dataType: STRING, stringData: values.map((v) => new TextEncoder().encode(v)) });
    return name;
  }
}

const intAttr = (name: string, i: number): onnx.onnx.IAttributeProto => ({ name, type: A.INT, i });
const intsAttr = (name: string, ints: readonly number[]): onnx.onnx.IAttributeProto => ({ name, type: A.INTS, ints: [...ints] });
const stringsAttr = (name: string, v: readonly string[]): onnx.onnx.IAttributeProto => ({ name, type: A.STRINGS, strings: v.map((s) => new TextEncoder().encode(s)) });

function tensorInfo(name: string, elemType: number, width: number): onnx.onnx.IValueInfoProto {
  return { name, type: { tensorType: { elemType, shape: { dim: [{ dimParam: 'N' }, { dimValue: width }] } } } };
}

/** Wrap Trainer.exportOnnx()'s tabular graph (input `features`, z-scored) into the raw-columns-in, labels-out model. */
export function selfContainedTabular(modelBytes: Uint8Array, o: TabularExportOptions): Uint8Array {
  const model = P.ModelProto.decode(modelBytes);
  const graph = model.graph as onnx.onnx.GraphProto;
  const inner = graph.input.find((v) => v.name === 'features');
  if (!inner || graph.input.length !== 1) {
    throw new CohortError('EXPORT_NOT_TABULAR', `the model reads ${graph.input.map((v) => v.name).join(', ')}, not one 'features' input`,
      'the self-contained tabular export wraps a model trained on a table (input "features")');
  }
  const width = Number(inner.type?.tensorType?.shape?.dim?.[1]?.dimValue ?? -1);
  const cols = sourceColumns(o.input);
  if (width !== o.input.featureNames.length) {
    throw new CohortError('BAD_MODEL_INPUT', `the model reads ${width} features, the description names ${o.input.featureNames.length}`,
      'describe the model input with the feature names and standardiser it was trained with');
  }
  const numeric = cols.filter((c) => c.kind === 'numeric').map((c) => c.name);
  const categorical = cols.filter((c) => c.kind === 'categorical').map((c) => c.name);
  const a = new Appender();
  const z = a.name('features_z');
  for (const n of graph.node) n.input = (n.input ?? []).map((i) => (i === 'features' ? z : i));
  encodeAndStandardise(a, cols, o.input, z);
  const outputs = o.task.kind === 'regression' ? appendValue(a, graph, o.target) : appendLabels(a, graph, o);
  graph.node = [...a.nodes.filter((n) => !isHead(n)), ...graph.node, ...a.nodes.filter(isHead)];
  graph.initializer.push(...a.initializers);
  graph.input = [tensorInfo('features', FLOAT, numeric.length), ...(categorical.length ? [tensorInfo('categories', STRING, categorical.length)] : [])];
  if (categorical.length) model.opsetImport.push({ domain: 'ai.onnx.ml', version: 2 });
  return finish(model, {
    version: COHORT_VERSION, task: o.task, inputs: { features: numeric, categories: categorical }, columns: cols,
    featureNames: [...o.input.featureNames], classes: [...o.input.classes], outputs, preprocessing: describePreprocessing(categorical.length > 0),
    ...(o.target ? { target: { mean: o.target.mean, std: o.target.std } } : {}), ...o.provenance,
  }, 'raw columns in (see metadata cohort.inputs)');
}

/** metadata_props (JSON values under cohort.*) and a one-line docString, then the bytes. */
function finish(model: onnx.onnx.ModelProto, meta: CohortModelMetadata, inputs: string): Uint8Array {
  model.metadataProps = Object.entries(meta).filter(([, v]) => v !== undefined)
    .map(([k, v]) => ({ key: META_PREFIX + k, value: typeof v === 'string' ? v : JSON.stringify(v) }));
  model.docString = `Cohort ${COHORT_VERSION} ${meta.task.kind} model: ${inputs}, ${meta.outputs.join(', ')} out.`;
  return P.ModelProto.encode(model).finish();
}

export interface ImageExportOptions {
  /** One intensity config per channel of the `image` input, in channel order (the modalities of the preprocessing config). */
  readonly intensity: readonly IntensityConfig[];
  readonly modalities: readonly string[];
  readonly task: ExportTask;
  /** Class names in index order for a classifier ([] for segmentation). */
  readonly classes: readonly string[];
  readonly preprocessing?: unknown;
  readonly provenance?: ExportProvenance;
  /** The agreed mean and sd of each modality whose intensity is a consortium z-score (src/data/intensity-stats.ts agreedIntensity). */
  readonly agreedIntensity?: Readonly<Record<string, { readonly mean: number; readonly std: number }>>;
}

/** Wrap an image model: each channel's intensity normalisation in-graph where exact, labels or a mask out, metadata. */
export function selfContainedImage(modelBytes: Uint8Array, o: ImageExportOptions): Uint8Array {
  const model = P.ModelProto.decode(modelBytes);
  const graph = model.graph as onnx.onnx.GraphProto;
  const inner = graph.input.find((v) => v.name === 'image');
  const dims = (inner?.type?.tensorType?.shape?.dim ?? []).map((d) => Number(d.dimValue ?? 0));
  if (!inner || dims.length < 4 || dims[1] !== o.intensity.length || o.modalities.length !== o.intensity.length) {
    throw new CohortError('EXPORT_NOT_IMAGE', `the model reads ${graph.input.map((v) => v.name).join(', ')}; the image export needs an input 'image' with one channel per intensity config (${o.intensity.length})`,
      'pass the preprocessing config the model was trained with');
  }
  const a = new Appender();
  const normalised = a.name('image_normalised');
  for (const n of graph.node) n.input = (n.input ?? []).map((i) => (i === 'image' ? normalised : i));
  const spatial = dims.slice(2).map((_, k) => k + 2);
  const voxels = dims.slice(2).reduce((x, y) => x * y, 1);
  const channels = o.intensity.map((cfg, c) => intensityNode(a, a.node('Slice', ['image', a.ints('c0', [c]), a.ints('c1', [c + 1]), a.ints('ax', [1])]), cfg, spatial, voxels,
    o.agreedIntensity?.[o.modalities[c]!]));
  a.node(channels.length === 1 ? 'Identity' : 'Concat', channels, channels.length === 1 ? [] : [intAttr('axis', 1)], normalised);
  const classes = o.task.kind === 'classification' ? classNamesFor(graph, o.classes) : [];
  const outputs = o.task.kind === 'segmentation' ? appendMask(a, graph) : appendLabels(a, graph, { ...o, input: { mean: [], std: [], featureNames: [], classes } });
  graph.node = [...a.nodes.filter((n) => !isHead(n)), ...graph.node, ...a.nodes.filter(isHead)];
  graph.initializer.push(...a.initializers);
  const image: ImageInputMetadata = { input: 'image', shape: dims.slice(1), modalities: [...o.modalities],
    intensity: o.intensity.map((config, c) => ({ modality: o.modalities[c], config: withAgreed(config, o.agreedIntensity?.[o.modalities[c]!]), inGraph: true })),
    ...(o.preprocessing !== undefined ? { preprocessing: o.preprocessing } : {}) };
  return finish(model, { version: COHORT_VERSION, task: o.task, inputs: { features: [], categories: [] }, columns: [], featureNames: [],
    classes: [...classes], outputs, image, preprocessing: `image [N, ${dims.slice(1).join(', ')}]: the resampled, cropped volume; per channel `
      + image.intensity.map((i) => `${i.modality}: ${i.inGraph ? `${i.config.method} in-graph` : `${i.config.method} NOT in-graph (feed it normalised)`}`).join('; '),
  ...o.provenance }, 'image volume in (see metadata cohort.image)');
}

/** A consortium z-score's config as the metadata records it: with the agreed mean and sd (cohort predict and readers see them). */
function withAgreed(cfg: IntensityConfig, agreed: { mean: number; std: number } | undefined): IntensityConfig | (IntensityConfig & { mean: number; std: number }) {
  return cfg.method === 'zscore' && cfg.scope === 'consortium' && agreed ? { ...cfg, mean: agreed.mean, std: agreed.std } : cfg;
}

/** One channel [N, 1, ...] through its intensity transform, as normaliseIntensity in src/data/preprocess.ts computes it. */
function intensityNode(a: Appender, x: string, cfg: IntensityConfig, spatial: readonly number[], voxels: number, agreed?: { mean: number; std: number }): string {
  const f = (v: number): string => a.floats('k', [v]);
  switch (cfg.method) {
    case 'window': return a.node('Clip', [a.node('Div', [a.node('Sub', [x, f(cfg.level - cfg.width / 2)]), f(cfg.width)]), f(0), f(1)]);
    case 'suv': return a.node('Div', [a.node('Clip', [x, f(0), f(cfg.max)]), f(cfg.max)]);
    case 'zscore': {
      if (cfg.scope === 'consortium') {
        // the consortium's agreed mean and sd, two constants (as applyAgreedIntensity in src/data/intensity-stats.ts)
        if (!agreed) throw new CohortError('EXPORT_INTENSITY', 'a consortium intensity z-score needs the agreed mean and sd to be exported', 'export from a peer that took part in the agreement');
        return a.node('Div', [a.node('Sub', [x, f(agreed.mean)]), f(agreed.std)]);
      }
      // per image and channel over all voxels; population variance floored at 1e-12 (two passes: no float32 cancellation)
      const axes = a.ints('axes', [...spatial]);
      const d = a.node('Sub', [x, a.node('ReduceMean', [x, axes], [intAttr('keepdims', 1)])]);
      const sd = a.node('Sqrt', [a.node('Max', [a.node('ReduceMean', [a.node('Mul', [d, d]), axes], [intAttr('keepdims', 1)]), f(1e-12)])]);
      return a.node('Div', [d, sd]);
    }
    case 'percentile': return percentileNode(a, x, cfg.low / 100, cfg.high / 100, spatial, voxels);
    default: return a.node('Identity', [x]); // none
  }
}

/**
 * Percentile normalisation per image and channel, as normaliseIntensity: the voxels sorted (TopK over all of them, ascending), the
 * low and high percentiles interpolated between neighbours as radiomics.ts `percentile` does, clamp, scale to [0, 1] (width 1 when
 * the two percentiles coincide).
 */
function percentileNode(a: Appender, x: string, low: number, high: number, spatial: readonly number[], voxels: number): string {
  const flat = a.node('Flatten', [x], [intAttr('axis', 1)]); // [N, V]
  const sorted = a.nodes.length;
  a.node('TopK', [flat, a.ints('k', [voxels])], [intAttr('axis', 1), intAttr('largest', 0), intAttr('sorted', 1)]);
  a.nodes[sorted].output = [a.nodes[sorted].output![0], a.name('topk_index')];
  const values = a.nodes[sorted].output![0];
  const at = (q: number): string => {
    const pos = (voxels - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
    const v = (k: number): string => a.node('Gather', [values, a.ints('at', [k])], [intAttr('axis', 1)]); // [N, 1]
    const vlo = v(lo);
    const p = lo === hi ? vlo : a.node('Add', [vlo, a.node('Mul', [a.node('Sub', [v(hi), vlo]), a.floats('frac', [pos - lo])])]);
    return a.node('Unsqueeze', [p, a.ints('axes', spatial.map((_, k) => k + 2))]); // [N, 1, 1, ...]
  };
  const lo = at(low), hi = at(high);
  const width = a.node('Sub', [hi, lo]);
  const w = a.node('Where', [a.node('Greater', [hi, lo]), width, a.floats('one', [1])]);
  return a.node('Div', [a.node('Sub', [a.node('Min', [a.node('Max', [x, lo]), hi]), lo]), w]);
}

/** A segmentation model's mask: the argmax class per voxel (softmax), or prob > 0.5 (one sigmoid channel); int64 [N, 1, ...]. */
function appendMask(a: Appender, graph: onnx.onnx.GraphProto): string[] {
  const prob = graph.output.find((v) => v.name === 'prob');
  const dims = prob?.type?.tensorType?.shape?.dim ?? [];
  if (!prob || dims.length < 3) throw new CohortError('EXPORT_NOT_SEGMENTATION', 'the model has no prob output [N, C, ...]', 'export a segmentation model with task kind "segmentation"');
  const C = Number(dims[1].dimValue ?? 0);
  const head = headNode(a);
  if (C > 1) head('ArgMax', ['prob'], [intAttr('axis', 1), intAttr('keepdims', 1)], 'mask');
  else head('Cast', [head('Greater', ['prob', a.floats('half', [0.5])])], [intAttr('to', INT64)], 'mask');
  graph.output.push({ name: 'mask', type: { tensorType: { elemType: INT64, shape: { dim: [dims[0], { dimValue: 1 }, ...dims.slice(2)] } } } });
  return [...graph.output.map((v) => v.name ?? '')];
}

/** Adds a node that runs after the trained network (its name marks it for the tail of the node list). */
function headNode(a: Appender): (op: string, inputs: string[], attrs?: onnx.onnx.IAttributeProto[], out?: string) => string {
  return (op, inputs, attrs = [], out) => {
    const r = a.node(op, inputs, attrs, out);
    a.nodes[a.nodes.length - 1].name = `${HEAD}${a.nodes.length}`;
    return r;
  };
}

function describePreprocessing(categorical: boolean): string {
  return `features (raw numeric columns, NaN = missing)${categorical ? ' and categories (strings, "" = missing) one-hot encoded with the training categories (unseen -> all 0)' : ''}`
    + ', in feature order; z = (x - mean) / std with the training standardiser; missing -> 0 (the training mean)';
}

/** Marks the label nodes, which run after the trained network (the encoding nodes run before it). */
const HEAD = 'cohort_head_';
function isHead(n: onnx.onnx.INodeProto): boolean { return (n.name ?? '').startsWith(HEAD); }

function encodeAndStandardise(a: Appender, cols: readonly SourceColumn[], d: ModelInputDescription, out: string): void {
  const parts: string[] = [];
  let num = 0, cat = 0;
  for (const c of cols) {
    if (c.kind === 'numeric') { parts.push(a.node('Gather', ['features', a.ints('col', [num++])], [intAttr('axis', 1)])); continue; }
    const categories = c.categories ?? [];
    const cell = a.node('Gather', ['categories', a.ints('col', [cat++])], [intAttr('axis', 1)]);
    const code = a.node('LabelEncoder', [cell], [stringsAttr('keys_strings', categories),
      intsAttr('values_int64s', categories.map((_, k) => k)), intAttr('default_int64', -1)], undefined, 'ai.onnx.ml');
    const hot = a.node('Equal', [code, a.ints('range', categories.map((_, k) => k))]);
    parts.push(a.node('Cast', [hot], [intAttr('to', FLOAT)]));
  }
  const x = parts.length === 1 ? parts[0] : a.node('Concat', parts, [intAttr('axis', 1)]);
  const zs = a.node('Div', [a.node('Sub', [x, a.floats('mean', d.mean)]), a.floats('std', d.std)]);
  a.node('Where', [a.node('IsNaN', [zs]), a.floats('zero', [0]), zs], [], out);
}

/**
 * A regression model's `value` [N, 1] = prob * std + mean: the network learnt the z-scored target (so one learning rate suits any
 * unit), a hospital wants the target's own units. `prob` stays (the z-scored prediction). Without a scale the export is refused:
 * a bare z-score would be read as a value.
 */
function appendValue(a: Appender, graph: onnx.onnx.GraphProto, target: TargetScale | undefined): string[] {
  const prob = graph.output.find((v) => v.name === 'prob');
  const dims = prob?.type?.tensorType?.shape?.dim ?? [];
  if (!prob || dims.length !== 2 || Number(dims[1]?.dimValue ?? 0) !== 1) throw new CohortError('EXPORT_NOT_REGRESSION', 'the model has no prob output [N, 1]', 'a regression model has one output (mse loss)');
  if (!target || !Number.isFinite(target.mean) || !(target.std > 0)) {
    throw new CohortError('EXPORT_NO_TARGET_SCALE', 'a regression export needs the target\'s training mean and sd', 'pass the target scale the model was trained with');
  }
  const head = headNode(a);
  head('Add', [head('Mul', ['prob', a.floats('target_std', [target.std])]), a.floats('target_mean', [target.mean])], [], 'value');
  graph.output.push({ name: 'value', type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 1 }] } } } });
  return [...graph.output.map((v) => v.name ?? '')];
}

/** label and class outputs after prob (classification); a survival or regression model keeps its outputs as they are. */
function appendLabels(a: Appender, graph: onnx.onnx.GraphProto, o: Pick<TabularExportOptions, 'input' | 'task'>): string[] {
  const names = graph.output.map((v) => v.name ?? '');
  if (o.task.kind !== 'classification') return names;
  const prob = graph.output.find((v) => v.name === 'prob');
  const C = Number(prob?.type?.tensorType?.shape?.dim?.[1]?.dimValue ?? 0);
  if (!prob || C < 1) throw new CohortError('EXPORT_NOT_CLASSIFIER', 'the model has no prob output [N, C]', 'export a classifier with task kind "classification"');
  const classes = classNamesFor(graph, o.input.classes);
  if (classes.length !== Math.max(C, 2)) {
    throw new CohortError('BAD_MODEL_INPUT', `the model has ${C} output(s), the description names ${classes.length} classes`, 'pass the class names the model was trained with');
  }
  const head = headNode(a);
  if (C > 1) head('ArgMax', ['prob'], [intAttr('axis', 1), intAttr('keepdims', 0)], 'label');
  else head('Squeeze', [head('Cast', [head('Greater', ['prob', a.floats('half', [0.5])])], [intAttr('to', INT64)]), a.ints('axis', [1])], [], 'label');
  head('Gather', [a.strings('classes', classes), 'label'], [intAttr('axis', 0)], 'class');
  const dim = [{ dimParam: 'N' }];
  graph.output.push({ name: 'label', type: { tensorType: { elemType: INT64, shape: { dim } } } },
    { name: 'class', type: { tensorType: { elemType: STRING, shape: { dim } } } });
  return [...names, 'label', 'class'];
}

/** The class names a classifier's labels map to: as given, or (an image classifier whose labels carry no names) the class indices. */
function classNamesFor(graph: onnx.onnx.GraphProto, given: readonly string[]): readonly string[] {
  if (given.length) return given;
  const C = Number(graph.output.find((v) => v.name === 'prob')?.type?.tensorType?.shape?.dim?.[1]?.dimValue ?? 0);
  return Array.from({ length: Math.max(C, 2) }, (_, k) => String(k));
}

/** The Cohort metadata of an ONNX file; clear errors for a file that is no ONNX model or a model Cohort did not export. */
export function readCohortMetadata(bytes: Uint8Array, file: string): CohortModelMetadata {
  let model: onnx.onnx.ModelProto;
  try {
    model = P.ModelProto.decode(bytes);
  } catch (e) {
    throw new CohortError('NOT_ONNX', `${file} is not an ONNX model (${(e as Error).message})`, 'pass the model.onnx written by cohort train --export or cohort scenario export');
  }
  if (!model.graph || (model.graph.node ?? []).length === 0) {
    throw new CohortError('NOT_ONNX', `${file} is not an ONNX model (no graph)`, 'pass the model.onnx written by cohort train --export or cohort scenario export');
  }
  const props = new Map(model.metadataProps.map((p) => [p.key ?? '', p.value ?? '']));
  if (!props.has(`${META_PREFIX}version`) || !props.has(`${META_PREFIX}inputs`)) {
    throw new CohortError('NOT_COHORT_MODEL', `${file} is an ONNX model without Cohort's metadata (feature names, classes, task)`,
      'cohort predict needs a model exported by this Cohort version (cohort train --export, cohort scenario export); run other ONNX models with their own tools');
  }
  const json = (k: string): unknown => {
    const v = props.get(META_PREFIX + k);
    if (v === undefined) return undefined;
    try { return JSON.parse(v); } catch {
      throw new CohortError('BAD_MODEL_METADATA', `${file}: metadata ${META_PREFIX}${k} is not JSON`, 're-export the model with cohort');
    }
  };
  return {
    version: props.get(`${META_PREFIX}version`) as string, task: json('task') as ExportTask, inputs: json('inputs') as CohortModelMetadata['inputs'],
    columns: json('columns') as SourceColumn[], featureNames: json('featureNames') as string[], classes: json('classes') as string[],
    outputs: json('outputs') as string[], preprocessing: props.get(`${META_PREFIX}preprocessing`) ?? '',
    scenario: json('scenario') as CohortModelMetadata['scenario'], participants: json('participants') as string[] | undefined,
    rounds: json('rounds') as number | undefined, metric: json('metric') as CohortModelMetadata['metric'],
    image: json('image') as ImageInputMetadata | undefined, target: json('target') as TargetScale | undefined,
  };
}
