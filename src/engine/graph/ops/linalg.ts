/** MatMul (numpy semantics, batch dims broadcast) and Gemm (2-D, optional transposes, alpha/beta, broadcast C). */
import type { GraphCore } from '../core.ts';
import { broadcastShapes, fmt, shapeError } from '../shape.ts';
import type { Tensor } from '../types.ts';

export function matmul(g: GraphCore, a: Tensor, b: Tensor): Tensor {
  const n = g.peekName('MatMul');
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw shapeError('MatMul', n, `shapes ${fmt(a.shape)} and ${fmt(b.shape)}: both operands need rank >= 2`);
  }
  const [m, k] = a.shape.slice(-2);
  const [k2, p] = b.shape.slice(-2);
  if (k !== k2) throw shapeError('MatMul', n, `shapes ${fmt(a.shape)} and ${fmt(b.shape)}: inner dimensions ${k} and ${k2} differ`);
  const batch = broadcastShapes('MatMul', n, a.shape.slice(0, -2), b.shape.slice(0, -2));
  return g.emit1('MatMul', [a, b], [...batch, m, p], a.dtype);
}

export interface GemmOpts { transA?: boolean; transB?: boolean; alpha?: number; beta?: number }

export function gemm(g: GraphCore, a: Tensor, b: Tensor, c?: Tensor | null, o: GemmOpts = {}): Tensor {
  const n = g.peekName('Gemm');
  if (a.shape.length !== 2 || b.shape.length !== 2) {
    throw shapeError('Gemm', n, `shapes ${fmt(a.shape)} and ${fmt(b.shape)}: Gemm needs 2-D operands`);
  }
  const [m, k] = o.transA ? [a.shape[1], a.shape[0]] : a.shape;
  const [k2, p] = o.transB ? [b.shape[1], b.shape[0]] : b.shape;
  if (k !== k2) throw shapeError('Gemm', n, `shapes ${fmt(a.shape)} and ${fmt(b.shape)}: inner dimensions ${k} and ${k2} differ`);
  if (c) {
    const bc = broadcastShapes('Gemm', n, c.shape, [m, p]);
    if (bc[0] !== m || bc[1] !== p) throw shapeError('Gemm', n, `bias ${fmt(c.shape)} does not broadcast to [${m},${p}]`);
  }
  const attrs = {
    alpha: { f: o.alpha ?? 1 }, beta: { f: o.beta ?? 1 },
    transA: { i: o.transA ? 1 : 0 }, transB: { i: o.transB ? 1 : 0 },
  };
  return g.emit1('Gemm', c ? [a, b, c] : [a, b], [m, p], a.dtype, attrs);
}
