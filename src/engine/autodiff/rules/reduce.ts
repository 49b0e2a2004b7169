/** Backward rules for reductions and softmax. */
import type { GraphBuilder } from '../../graph/builder.ts';
import { sameShape, sizeOf } from '../../graph/shape.ts';
import type { Tensor } from '../../graph/types.ts';
import type { Rule } from '../types.ts';
import { inp, mask } from '../util.ts';

function keptShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** dY in keepdims form (a reshape only when the forward dropped the axes). */
function keep(g: GraphBuilder, t: Tensor, kept: readonly number[]): Tensor {
  return sameShape(t.shape, kept) ? t : g.reshape(t, kept);
}

export const reduceRules: Record<string, Rule> = {
  // every summed element receives dY (returned with size-1 axes; the driver broadcasts it)
  ReduceSum: ({ g, node, dy: [dy] }) => {
    const x = inp(node, 0);
    const { axes } = node.meta as { axes: number[] };
    return [keep(g, dy!, keptShape(x.shape, axes)), null];
  },
  // every averaged element receives dY / count
  ReduceMean: ({ g, node, dy: [dy] }) => {
    const x = inp(node, 0);
    const { axes } = node.meta as { axes: number[] };
    const count = sizeOf(axes.map((a) => x.shape[a]));
    return [keep(g, g.mul(dy!, g.constant(1 / count)), keptShape(x.shape, axes)), null];
  },
  // max: the gradient goes to the maximal elements, shared equally between ties
  ReduceMax: ({ g, node, dy: [dy] }) => {
    const x = inp(node, 0);
    const { axes } = node.meta as { axes: number[] };
    const kept = keptShape(x.shape, axes);
    const winners = mask(g, g.equal(x, keep(g, node.outputs[0], kept)));
    const share = g.div(keep(g, dy!, kept), g.reduceSum(winners, axes, true));
    return [g.mul(winners, share), null];
  },
  // softmax: dX = Y * (dY - sum(dY * Y))
  Softmax: ({ g, node, dy: [dy] }) => {
    const y = node.outputs[0];
    const axis = (node.meta as { axis: number }).axis;
    return [g.mul(y, g.sub(dy!, g.reduceSum(g.mul(dy!, y), [axis], true)))];
  },
  // log-softmax: dX = dY - softmax(X) * sum(dY)
  LogSoftmax: ({ g, node, dy: [dy] }) => {
    const y = node.outputs[0];
    const axis = (node.meta as { axis: number }).axis;
    return [g.sub(dy!, g.mul(g.exp(y), g.reduceSum(dy!, [axis], true)))];
  },
};
