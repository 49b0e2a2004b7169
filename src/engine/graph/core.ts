/**
 * GraphCore: the bookkeeping half of GraphBuilder. It owns names, graph inputs, initializers, small constants,
 * outputs and the ordered node list; ops (./ops) append nodes through `emit`. Names are unique across inputs,
 * initializers and node outputs, so an initializer can never shadow a graph input (ORT would silently prefer one).
 */
import { CohortError } from '../../util/errors.ts';
import type { Attrs, ConstTensor, DType, NodeRecord, Tensor, TensorData } from './types.ts';
import { fmt, sizeOf } from './shape.ts';

export interface EmitSpec {
  readonly attrs?: Attrs;
  readonly meta?: Readonly<Record<string, unknown>>;
  /** Output shapes and dtypes, one per output; computed by the op's static shape inference. */
  readonly outputs: readonly { readonly shape: readonly number[]; readonly dtype: DType }[];
}

export class GraphCore {
  readonly graphName: string;
  readonly nodes: NodeRecord[] = [];
  readonly inputs: Tensor[] = [];
  readonly outputs: Tensor[] = [];
  readonly initializers = new Map<string, ConstTensor>();
  /**
   * Pool each channel image on its own ([N*C, 1, ...] views) in 2D. For graphs whose weights are inputs (train, eval):
   * there no Conv runs in ORT's NCHWc layout, so an NCHWc pool only adds a reorder in and out (CNN pool 2x2
   * [64,16,32,32]: 1.58 vs 1.10 ms CPU). Exported graphs keep plain pools (their constant-weight convs chain NCHWc).
   */
  poolsPerChannel = false;
  private readonly used = new Set<string>();
  private readonly constCache = new Map<string, Tensor>();
  private counter = 0;

  constructor(name = 'cohort') {
    this.graphName = name;
  }

  /**
   * A fresh name with the given stem that no input, initializer or node output uses yet; the caller may pass it to
   * `input`/`initializer` (the counter never repeats, so two calls never return the same name).
   */
  fresh(stem: string): string {
    let n: string;
    do n = `${stem}_${this.counter++}`;
    while (this.used.has(n));
    return n;
  }

  private claim(name: string, what: string): void {
    if (this.used.has(name)) {
      throw new CohortError('DUPLICATE_NAME', `${what} '${name}' is already defined in graph '${this.graphName}'`,
        'give every graph input, initializer and output a distinct name');
    }
    this.used.add(name);
  }

  input(name: string, shape: readonly number[], dtype: DType = 'float32'): Tensor {
    checkShape(name, shape);
    this.claim(name, 'input');
    const t: Tensor = { name, shape: [...shape], dtype };
    this.inputs.push(t);
    return t;
  }

  initializer(name: string, data: Float32Array | BigInt64Array | Int32Array, shape: readonly number[]): Tensor {
    checkShape(name, shape);
    if (data.length !== sizeOf(shape)) {
      throw new CohortError('SHAPE_MISMATCH', `initializer ${name}: ${data.length} values for shape ${fmt(shape)}`,
        'pass exactly as many values as the shape holds');
    }
    const dtype: DType = data instanceof Float32Array ? 'float32' : data instanceof BigInt64Array ? 'int64' : 'int32';
    return this.addConst(name, { dtype, shape: [...shape], data });
  }

  /** An initializer under a fresh name derived from `stem` (for constants computed while building, e.g. in rules). */
  anonymousInitializer(stem: string, data: Float32Array | BigInt64Array | Int32Array, shape: readonly number[]): Tensor {
    return this.initializer(this.fresh(stem), data, shape);
  }

  /** Register constant data under a name (any dtype, including bool). */
  addConst(name: string, c: ConstTensor): Tensor {
    this.claim(name, 'initializer');
    this.initializers.set(name, c);
    return { name, shape: [...c.shape], dtype: c.dtype };
  }

  /** A small constant: a number is a rank-0 scalar, an array is 1-D. Identical constants are shared. */
  constant(value: number | readonly number[], dtype: DType = 'float32'): Tensor {
    const key = `${dtype}:${JSON.stringify(value)}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const values = typeof value === 'number' ? [value] : value;
    const shape = typeof value === 'number' ? [] : [values.length];
    const t = this.addConst(this.fresh('const'), { dtype, shape, data: toData(values, dtype) });
    this.constCache.set(key, t);
    return t;
  }

  /** A constant tensor of any shape filled with one value (an initializer; used by backward rules). */
  filled(shape: readonly number[], value: number): Tensor {
    const key = `fill:${fmt(shape)}:${value}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const t = this.addConst(this.fresh('fill'),
      { dtype: 'float32', shape: [...shape], data: new Float32Array(sizeOf(shape)).fill(value) });
    this.constCache.set(key, t);
    return t;
  }

  output(t: Tensor, name?: string): void {
    if (name === undefined || name === t.name) {
      if (this.outputs.some((o) => o.name === t.name)) {
        throw new CohortError('DUPLICATE_NAME', `output '${t.name}' is already an output`, 'output each tensor once');
      }
      this.outputs.push(t);
      return;
    }
    this.claim(name, 'output');
    const out: Tensor = { name, shape: t.shape, dtype: t.dtype };
    this.nodes.push({ op: 'Identity', name: `${name}_id`, inputs: [t], outputs: [out], attrs: {} });
    this.outputs.push(out);
  }

  /** Append one node; returns its output tensors. Shape inference has already happened in the op. */
  emit(op: string, inputs: readonly (Tensor | null)[], spec: EmitSpec): Tensor[] {
    const name = this.fresh(op.toLowerCase());
    const outputs = spec.outputs.map((o, i): Tensor => ({
      name: spec.outputs.length === 1 ? `${name}_out` : `${name}_out${i}`,
      shape: [...o.shape],
      dtype: o.dtype,
    }));
    for (const o of outputs) this.claim(o.name, 'node output');
    this.nodes.push({ op, name, inputs, outputs, attrs: spec.attrs ?? {}, ...(spec.meta ? { meta: spec.meta } : {}) });
    return outputs;
  }

  /** Single-output shorthand for `emit`. */
  emit1(op: string, inputs: readonly (Tensor | null)[], shape: readonly number[], dtype: DType,
    attrs?: Attrs, meta?: Readonly<Record<string, unknown>>): Tensor {
    return this.emit(op, inputs, { attrs, meta, outputs: [{ shape, dtype }] })[0];
  }

  /** The name the next node of this op type will get (for error messages raised before emit). */
  peekName(op: string): string {
    return `${op.toLowerCase()}_${this.counter}`;
  }
}

function checkShape(name: string, shape: readonly number[]): void {
  if (!shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new CohortError('BAD_SHAPE', `${name}: shape ${fmt(shape)} must have positive integer dimensions`,
      'shapes are static: give every dimension as a positive integer');
  }
}

function toData(values: readonly number[], dtype: DType): TensorData {
  switch (dtype) {
    case 'float32': return Float32Array.from(values);
    case 'int64': return BigInt64Array.from(values.map((v) => BigInt(v)));
    case 'int32': return Int32Array.from(values);
    case 'bool': return Uint8Array.from(values.map((v) => (v ? 1 : 0)));
  }
}
