/**
 * ReduceSum / ReduceMean / ReduceMax (opset 18: axes is an int64 input). Omitted `axes` (undefined) = all axes; an explicit empty
 * list reduces over nothing (the identity: ONNX's default would read an empty axes input as "all axes", so the node sets
 * noop_with_empty_axes = 1). The empty list arises e.g. in an instance norm of [N, C], which has no spatial axes.
 */
import type { GraphCore } from '../core.ts';
import { normAxis } from '../shape.ts';
import type { Tensor } from '../types.ts';

export type ReduceOp = 'ReduceSum' | 'ReduceMean' | 'ReduceMax';

export function reduce(g: GraphCore, op: ReduceOp, x: Tensor, axes?: readonly number[], keepdims = false): Tensor {
  const n = g.peekName(op);
  const ax = axes === undefined ? x.shape.map((_, i) => i) : [...new Set(axes.map((a) => normAxis(op, n, a, x.shape.length)))].sort();
  const shape: number[] = [];
  x.shape.forEach((d, i) => {
    if (!ax.includes(i)) shape.push(d);
    else if (keepdims) shape.push(1);
  });
  const attrs = { keepdims: { i: keepdims ? 1 : 0 }, ...(ax.length === 0 ? { noop_with_empty_axes: { i: 1 } } : {}) };
  return g.emit1(op, [x, g.constant(ax, 'int64')], shape, x.dtype, attrs, { axes: ax, keepdims });
}
