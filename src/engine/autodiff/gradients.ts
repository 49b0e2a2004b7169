/**
 * Reverse-mode autodiff over a GraphBuilder's recorded nodes. `gradients(g, loss, wrt)` walks the nodes from the
 * loss back to `wrt`, calls one backward rule per node (rules/), sums gradients of tensors used more than once,
 * and appends all backward nodes to `g`. Only nodes between `wrt` and the loss are differentiated, and a rule is
 * told which input gradients are needed, so e.g. the first layer never computes a gradient for the data.
 */
import { CohortError } from '../../util/errors.ts';
import type { GraphBuilder } from '../graph/builder.ts';
import { fmt, sameShape, sizeOf } from '../graph/shape.ts';
import type { NodeRecord, Tensor } from '../graph/types.ts';
import { RULES, STOP_GRADIENT } from './rules/index.ts';
import type { GraphView } from './types.ts';

/** Names of the float tensors that depend on any of `wrt` (forward sweep). */
function dependents(nodes: readonly NodeRecord[], wrt: readonly Tensor[]): Set<string> {
  const dep = new Set(wrt.map((t) => t.name));
  for (const n of nodes) {
    if (STOP_GRADIENT.has(n.op)) continue;
    if (!n.inputs.some((t) => t && dep.has(t.name))) continue;
    for (const o of n.outputs) if (o.dtype === 'float32') dep.add(o.name);
  }
  return dep;
}

/**
 * Gradient contributions per tensor, summed when first read. A contribution may be broadcastable (same rank, size-1
 * axes: e.g. a reduction's gradient); Sum broadcasts it for free, and only a lone broadcast contribution is expanded.
 */
class Accumulator {
  private readonly parts = new Map<string, Tensor[]>();
  constructor(private readonly g: GraphBuilder) {}

  add(name: string, t: Tensor): void {
    const list = this.parts.get(name);
    if (list) list.push(t);
    else this.parts.set(name, [t]);
  }

  take(target: Tensor): Tensor | null {
    const list = this.parts.get(target.name);
    if (!list) return null;
    const shape = list.reduce<readonly number[]>((acc, t) => acc.map((v, k) => Math.max(v, t.shape[k])), list[0].shape);
    let sum = list.length === 1 ? list[0] : this.g.emit1('Sum', list, shape, 'float32');
    if (!sameShape(sum.shape, target.shape)) sum = this.g.expand(sum, target.shape);
    this.parts.set(target.name, [sum]);
    return sum;
  }
}

/** Same rank and every axis equal or 1 (so that Sum/Expand can broadcast it to `full`). */
function broadcastable(d: readonly number[], full: readonly number[]): boolean {
  return d.length === full.length && d.every((v, k) => v === full[k] || v === 1);
}

/** Producer and consumer counts of the forward graph, plus the set of nodes whose backward a neighbour absorbed. */
class ForwardView implements GraphView {
  private readonly producers = new Map<string, NodeRecord>();
  private readonly uses = new Map<string, number>();
  readonly absorbed = new Set<string>();

  constructor(nodes: readonly NodeRecord[]) {
    for (const n of nodes) {
      for (const o of n.outputs) this.producers.set(o.name, n);
      for (const t of n.inputs) if (t) this.uses.set(t.name, (this.uses.get(t.name) ?? 0) + 1);
    }
  }

  producer(t: Tensor): NodeRecord | undefined { return this.producers.get(t.name); }
  consumers(t: Tensor): number { return this.uses.get(t.name) ?? 0; }
  absorb(node: NodeRecord): void { this.absorbed.add(node.name); }
}

function backwardNode(g: GraphBuilder, n: NodeRecord, dep: Set<string>, acc: Accumulator, view: ForwardView): void {
  const dy = n.outputs.map((o) => acc.take(o));
  if (dy.every((d) => d === null)) return;
  const needs = n.inputs.map((t) => t !== null && t.dtype === 'float32' && dep.has(t.name));
  if (!needs.some(Boolean)) return;
  if (view.absorbed.has(n.name)) {
    acc.add(n.inputs[0]!.name, dy[0]!); // its consumer's rule already applied this node's backward
    return;
  }
  const rule = RULES[n.op];
  if (!rule) {
    throw new CohortError('NO_GRADIENT', `${n.op} ${n.name}: no backward rule for op ${n.op}`,
      'build the model from differentiable GraphBuilder ops, or keep this op off the path from the parameters to the loss');
  }
  const dx = rule({ g, node: n, dy, needs, graph: view });
  n.inputs.forEach((t, i) => {
    const d = dx[i];
    if (!t || !needs[i] || !d) return;
    if (!broadcastable(d.shape, t.shape)) {
      throw new Error(`${n.op} ${n.name}: rule produced gradient ${fmt(d.shape)} for input ${fmt(t.shape)}`);
    }
    acc.add(t.name, d);
  });
}

/** Gradients of the scalar `loss` w.r.t. each of `wrt` (zeros for a tensor the loss does not depend on). */
export function gradients(g: GraphBuilder, loss: Tensor, wrt: readonly Tensor[]): Tensor[] {
  if (sizeOf(loss.shape) !== 1 || loss.dtype !== 'float32') {
    throw new CohortError('BAD_LOSS', `gradients: loss ${loss.name} has shape ${fmt(loss.shape)} (${loss.dtype})`,
      'reduce the loss to a single float32 value (e.g. reduceMean) before differentiating');
  }
  const forward = [...g.nodes];
  const dep = dependents(forward, wrt);
  const acc = new Accumulator(g);
  const view = new ForwardView(forward);
  acc.add(loss.name, g.filled(loss.shape, 1));
  for (let i = forward.length - 1; i >= 0; i--) backwardNode(g, forward[i], dep, acc, view);
  return wrt.map((w) => acc.take(w) ?? g.zeros(w.shape));
}
