/**
 * Backward rules for pooling:
 *   MaxPool:           each output's gradient goes to the input cell that won (ScatterElements-add at the Indices).
 *   AveragePool:       each output's gradient is spread evenly over its window = ConvTranspose with a ones kernel,
 *                      group = C, after dividing by the window's cell count.
 *   GlobalAveragePool: dY / (spatial size), broadcast back.
 */
import type { GraphBuilder } from '../../graph/builder.ts';
import type { PoolGeom } from '../../graph/ops/pool.ts';
import { sizeOf } from '../../graph/shape.ts';
import type { Tensor } from '../../graph/types.ts';
import type { Rule } from '../types.ts';
import { inp } from '../util.ts';

const maxPool: Rule = ({ g, node, dy: [dy] }) => {
  const x = inp(node, 0);
  const indices = node.outputs[1];
  const n = sizeOf(x.shape);
  const flatIdx = g.reshape(indices, [-1]);
  const flatDy = g.reshape(dy!, [-1]);
  const scattered = g.emit1('ScatterElements', [g.zeros([n]), flatIdx, flatDy], [n], 'float32',
    { axis: { i: 0 }, reduction: { s: 'add' } });
  return [g.reshape(scattered, x.shape)];
};

/** Per-output-cell divisor when padded cells are not counted: product over axes of the in-bounds window length. */
function windowCounts(g: GraphBuilder, x: Tensor, out: readonly number[], geo: PoolGeom): Tensor {
  const nd = geo.kernel.length;
  const perAxis = out.map((o, i) => Array.from({ length: o }, (_, j) => {
    const start = j * geo.strides[i] - geo.pads[i];
    return Math.min(start + geo.kernel[i], x.shape[i + 2]) - Math.max(start, 0);
  }));
  const inv = new Float32Array(sizeOf(out));
  inv.forEach((_, flat) => {
    let rest = flat;
    let count = 1;
    for (let i = nd - 1; i >= 0; i--) {
      count *= perAxis[i][rest % out[i]];
      rest = Math.floor(rest / out[i]);
    }
    inv[flat] = 1 / count;
  });
  return g.anonymousInitializer('pool_inv_count', inv, [1, 1, ...out]);
}

const averagePool: Rule = ({ g, node, dy: [dy] }) => {
  const x = inp(node, 0);
  const geo = (node.meta as { geo: PoolGeom }).geo;
  const nd = geo.kernel.length;
  const d = dy!;
  const out = d.shape.slice(2);
  const padded = geo.pads.some((p) => p > 0);
  const scale = padded && !geo.countIncludePad ? windowCounts(g, x, out, geo) : g.constant(1 / sizeOf(geo.kernel));
  const c = x.shape[1];
  const ones = g.filled([c, 1, ...geo.kernel], 1);
  const outputPadding = x.shape.slice(2).map((xs, i) =>
    xs - ((out[i] - 1) * geo.strides[i] + geo.kernel[i] - geo.pads[i] - geo.pads[i + nd]));
  return [g.convTranspose(g.mul(d, scale), ones, null, { strides: geo.strides, pads: geo.pads, group: c, outputPadding })];
};

const globalAveragePool: Rule = ({ g, node, dy: [dy] }) => {
  const x = inp(node, 0);
  return [g.expand(g.mul(dy!, g.constant(1 / sizeOf(x.shape.slice(2)))), x.shape)];
};

export const poolRules: Record<string, Rule> = { MaxPool: maxPool, AveragePool: averagePool, GlobalAveragePool: globalAveragePool };
