/** Elementwise ops: numpy-broadcasting binaries, unaries, comparisons, Where, Cast, Clip, Pow. */
import type { GraphCore } from '../core.ts';
import { broadcastShapes, fmt, shapeError } from '../shape.ts';
import type { Attrs, DType, Tensor } from '../types.ts';

export type BinaryOp = 'Add' | 'Sub' | 'Mul' | 'Div' | 'Max' | 'Min';
export type CompareOp = 'Greater' | 'Less' | 'Equal' | 'GreaterOrEqual' | 'LessOrEqual';
export type UnaryOp = 'Neg' | 'Sqrt' | 'Relu' | 'Sigmoid' | 'Tanh' | 'Exp' | 'Log' | 'Abs' | 'Sign' | 'Identity'
  | 'Softplus' | 'Reciprocal' | 'Floor' | 'Not';

function sameDtype(g: GraphCore, op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) {
    throw shapeError(op, g.peekName(op), `dtypes ${a.dtype} ${fmt(a.shape)} and ${b.dtype} ${fmt(b.shape)} differ`);
  }
}

export function binary(g: GraphCore, op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  sameDtype(g, op, a, b);
  const shape = broadcastShapes(op, g.peekName(op), a.shape, b.shape);
  return g.emit1(op, [a, b], shape, a.dtype);
}

export function compare(g: GraphCore, op: CompareOp, a: Tensor, b: Tensor): Tensor {
  sameDtype(g, op, a, b);
  return g.emit1(op, [a, b], broadcastShapes(op, g.peekName(op), a.shape, b.shape), 'bool');
}

export function unary(g: GraphCore, op: UnaryOp, x: Tensor, attrs?: Attrs): Tensor {
  return g.emit1(op, [x], x.shape, x.dtype, attrs);
}

export function leakyRelu(g: GraphCore, x: Tensor, alpha: number): Tensor {
  return g.emit1('LeakyRelu', [x], x.shape, x.dtype, { alpha: { f: alpha } });
}

/** x ** p for a constant exponent p. */
export function pow(g: GraphCore, x: Tensor, p: number): Tensor {
  return g.emit1('Pow', [x, g.constant(p)], x.shape, x.dtype, undefined, { exponent: p });
}

export function where(g: GraphCore, cond: Tensor, a: Tensor, b: Tensor): Tensor {
  if (cond.dtype !== 'bool') throw shapeError('Where', g.peekName('Where'), `condition must be bool, got ${cond.dtype}`);
  sameDtype(g, 'Where', a, b);
  const n = g.peekName('Where');
  const shape = broadcastShapes('Where', n, cond.shape, broadcastShapes('Where', n, a.shape, b.shape));
  return g.emit1('Where', [cond, a, b], shape, a.dtype);
}

const CAST_TO: Readonly<Record<DType, number>> = { float32: 1, int32: 6, int64: 7, bool: 9 };

export function cast(g: GraphCore, x: Tensor, to: DType): Tensor {
  return g.emit1('Cast', [x], x.shape, to, { to: { i: CAST_TO[to] } });
}

/** Clip to [min, max]; either bound may be omitted. */
export function clip(g: GraphCore, x: Tensor, min?: number, max?: number): Tensor {
  const lo = min === undefined ? null : g.constant(min);
  const hi = max === undefined ? null : g.constant(max);
  return g.emit1('Clip', [x, lo, hi], x.shape, x.dtype, undefined, { min, max });
}
