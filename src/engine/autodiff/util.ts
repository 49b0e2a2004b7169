/** Helpers shared by backward rules: reducing a broadcast gradient back to an operand's shape, attribute access. */
import type { GraphBuilder } from '../graph/builder.ts';
import { broadcastAxes, sameShape } from '../graph/shape.ts';
import type { NodeRecord, Tensor } from '../graph/types.ts';

/** Sum `t` over the axes along which an operand of shape `shape` was broadcast, giving exactly `shape`. */
export function reduceTo(g: GraphBuilder, t: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(t.shape, shape)) return t;
  const axes = broadcastAxes(shape, t.shape);
  // dropping the reduced axes often gives the operand's shape directly (e.g. a bias [P] under [B, P]): one node
  const dropped = t.shape.filter((_, i) => !axes.includes(i));
  if (sameShape(dropped, shape)) return g.reduceSum(t, axes, false);
  const r = g.reduceSum(t, axes, true);
  return sameShape(r.shape, shape) ? r : g.reshape(r, shape);
}

export function attrInt(n: NodeRecord, key: string, dflt: number): number {
  const v = n.attrs[key];
  return v && 'i' in v ? v.i : dflt;
}

export function attrFloat(n: NodeRecord, key: string, dflt: number): number {
  const v = n.attrs[key];
  return v && 'f' in v ? v.f : dflt;
}

export function attrInts(n: NodeRecord, key: string): number[] {
  const v = n.attrs[key];
  return v && 'ints' in v ? [...v.ints] : [];
}

/** The i-th input of a node, which the rule knows to be present. */
export function inp(n: NodeRecord, i: number): Tensor {
  const t = n.inputs[i];
  if (!t) throw new Error(`${n.op} ${n.name}: input ${i} missing`);
  return t;
}

/** Gradient of output i, or zeros of its shape when none reached it (multi-output ops like Split). */
export function dyOrZero(g: GraphBuilder, n: NodeRecord, dy: readonly (Tensor | null)[], i: number): Tensor {
  return dy[i] ?? g.zeros(n.outputs[i].shape);
}

/** Float 0/1 mask from a bool tensor. */
export function mask(g: GraphBuilder, b: Tensor): Tensor {
  return g.cast(b, 'float32');
}
