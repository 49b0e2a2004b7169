/**
 * The self-contained model a hospital gets (issue 13.2): one ONNX file that starts from RAW table columns and ends with class
 * probabilities and labels, with everything needed to use it in ModelProto.metadata_props. Any ONNX runtime runs it without
 * Cohort code. One place builds it, for `cohort train --export` and for a scenario's final model.
 *
 *   selfContainedTabular(modelBytes, { input, task, provenance? })   wrap Trainer.exportOnnx()'s graph (input `features`, z-scored)
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
 */
import onnx from 'onnx-proto';
import { CohortError } from '../util/errors.ts';
import { sourceColumns, type ModelInputDescription, type SourceColumn } from '../data/model-input.ts';

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
}

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
  const outputs = appendLabels(a, graph, o);
  graph.node = [...a.nodes.filter((n) => !isHead(n)), ...graph.node, ...a.nodes.filter(isHead)];
  graph.initializer.push(...a.initializers);
  graph.input = [tensorInfo('features', FLOAT, numeric.length), ...(categorical.length ? [tensorInfo('categories', STRING, categorical.length)] : [])];
  if (categorical.length) model.opsetImport.push({ domain: 'ai.onnx.ml', version: 2 });
  const meta: CohortModelMetadata = {
    version: COHORT_VERSION, task: o.task, inputs: { features: numeric, categories: categorical }, columns: cols,
    featureNames: [...o.input.featureNames], classes: [...o.input.classes], outputs, preprocessing: describePreprocessing(categorical.length > 0),
    ...o.provenance,
  };
  model.metadataProps = Object.entries(meta).filter(([, v]) => v !== undefined)
    .map(([k, v]) => ({ key: META_PREFIX + k, value: typeof v === 'string' ? v : JSON.stringify(v) }));
  model.docString = `Cohort ${COHORT_VERSION} ${o.task.kind} model: raw columns in (see metadata cohort.inputs), ${outputs.join(', ')} out.`;
  return P.ModelProto.encode(model).finish();
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

/** label and class outputs after prob (classification); a survival or regression model keeps its outputs as they are. */
function appendLabels(a: Appender, graph: onnx.onnx.GraphProto, o: TabularExportOptions): string[] {
  const names = graph.output.map((v) => v.name ?? '');
  if (o.task.kind !== 'classification') return names;
  const prob = graph.output.find((v) => v.name === 'prob');
  const C = Number(prob?.type?.tensorType?.shape?.dim?.[1]?.dimValue ?? 0);
  if (!prob || C < 1) throw new CohortError('EXPORT_NOT_CLASSIFIER', 'the model has no prob output [N, C]', 'export a classifier with task kind "classification"');
  const classes = o.input.classes;
  if (classes.length !== Math.max(C, 2)) {
    throw new CohortError('BAD_MODEL_INPUT', `the model has ${C} output(s), the description names ${classes.length} classes`, 'pass the class names the model was trained with');
  }
  const head = (op: string, inputs: string[], attrs: onnx.onnx.IAttributeProto[] = [], out?: string): string => {
    const r = a.node(op, inputs, attrs, out);
    a.nodes[a.nodes.length - 1].name = `${HEAD}${a.nodes.length}`;
    return r;
  };
  if (C > 1) head('ArgMax', ['prob'], [intAttr('axis', 1), intAttr('keepdims', 0)], 'label');
  else head('Squeeze', [head('Cast', [head('Greater', ['prob', a.floats('half', [0.5])])], [intAttr('to', INT64)]), a.ints('axis', [1])], [], 'label');
  head('Gather', [a.strings('classes', classes), 'label'], [intAttr('axis', 0)], 'class');
  const dim = [{ dimParam: 'N' }];
  graph.output.push({ name: 'label', type: { tensorType: { elemType: INT64, shape: { dim } } } },
    { name: 'class', type: { tensorType: { elemType: STRING, shape: { dim } } } });
  return [...names, 'label', 'class'];
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
  };
}
