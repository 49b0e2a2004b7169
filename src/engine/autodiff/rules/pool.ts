/**
 * Backward rules for pooling:
 *   MaxPool:           each output's gradient goes to the input cell that won: for tiling windows found by comparing
 *                      X with Y per window (fast); otherwise ScatterElements-add at the Indices output.
 *   AveragePool:       each output's gradient is spread evenly over its window = ConvTranspose with a ones kernel,
 *                      group = C, after dividing by the window's cell count.
 *   GlobalAveragePool: dY / (spatial size), broadcast back.
 */
import type { GraphBuilder } from '../../graph/builder.ts';
import { isTiling, type PoolGeom } from '../../graph/ops/pool.ts';
import { sizeOf } from '../../graph/shape.ts';
import type { Tensor } from '../../graph/types.ts';
import type { Rule } from '../types.ts';
import { inp, mask } from '../util.ts';

/**
 * Tiling windows (stride = kernel, no pads): the winners are the cells where X equals Y spread over its window.
 * "Spread" is a ConvTranspose with a ones kernel (stride k, group C): measured 0.8 ms for [64,16,16,16] ->
 * [64,16,32,32] on 2 threads, against 1.3 ms for Resize, 1.9 ms for DepthToSpace and 4.8 ms for a 6-D Expand; the
 * MaxPool Indices path cost 5.6 ms (forward) + 1.6 ms (ScatterElements). Ties share the gradient equally (a valid
 * subgradient that keeps each window's total at dY). Cells that floor-mode pooling never read get zero.
 */
function maxPoolTiling(g: GraphBuilder, x: Tensor, y: Tensor, dy: Tensor, geo: PoolGeom): Tensor {
  const c = x.shape[1];
  const ones = g.filled([c, 1, ...geo.kernel], 1);
  const outputPadding = x.shape.slice(2).map((d, i) => d - y.shape[i + 2] * geo.kernel[i]);
  const spread = (t: Tensor): Tensor => g.convTranspose(t, ones, null, { strides: geo.kernel, group: c, outputPadding });
  const winners = mask(g, g.equal(x, spread(y)));
  const perWindow = g.averagePool(winners, { kernel: geo.kernel });
  const share = g.div(dy, g.mul(perWindow, g.constant(sizeOf(geo.kernel))));
  return g.mul(winners, spread(share));
}

const maxPool: Rule = ({ g, node, dy: [dy] }) => {
  const x = inp(node, 0);
  const geo = (node.meta as { geo: PoolGeom }).geo;
  if (isTiling(geo)) return [maxPoolTiling(g, x, node.outputs[0], dy!, geo)];
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
