/** Softmax and LogSoftmax along one axis (opset 13+ semantics: a single axis, not a flattened tail). */
import type { GraphCore } from '../core.ts';
import { normAxis } from '../shape.ts';
import type { Tensor } from '../types.ts';

export function softmaxLike(g: GraphCore, op: 'Softmax' | 'LogSoftmax', x: Tensor, axis = -1): Tensor {
  const a = normAxis(op, g.peekName(op), axis, x.shape.length);
  return g.emit1(op, [x], x.shape, x.dtype, { axis: { i: a } }, { axis: a });
}
