/**
 * Backward rules for pooling:
 *   MaxPool:           each output's gradient goes to the input cell that won: for tiling windows found by comparing
 *                      X with Y per window (fast); otherwise ScatterElements-add at the Indices output.
 *   AveragePool:       each output's gradient is spread evenly over its window: for tiling windows the spread
 *                      below, otherwise a ConvTranspose with a ones kernel, group = C, after dividing by the
 *                      window's cell count.
 *   GlobalAveragePool: dY / (spatial size), broadcast back by the driver.
 */
import type { GraphBuilder } from '../../graph/builder.ts';
import { isTiling, type PoolGeom } from '../../graph/ops/pool.ts';
import { sizeOf } from '../../graph/shape.ts';
import type { Tensor } from '../../graph/types.ts';
import type { Rule, RuleCtx } from '../types.ts';
import { inp, mask } from '../util.ts';

/** Which spread implementation backward rules use (exported for benchmarks on other machines/providers). */
export const poolConfig = {
  spread: 'matmul' as 'matmul' | 'convTranspose',
  /** Spread the second-to-last axis inside the MatMul too (no Expand for 2D); false: one axis per MatMul (A/B, tests). */
  foldRows: true,
  /** Count each window's winners with the spread matrix transposed (where it folds rows); false: AveragePool (A/B). */
  countByMatmul: true,
};

/**
 * Nearest-neighbour "spread" of a pooled tensor back over its tiling windows, [N, C, O...] -> x shape (cells that
 * floor-mode pooling never read get 0). The last axis is a MatMul with a 0/1 matrix (which also repeats each row for
 * the second-to-last axis when that axis has no leftover), the other axes an Expand over contiguous runs. Measured (2 threads): 2D [64,16,16,16] -> [64,16,32,32] 0.78 ms vs 0.87 ms for a ones-kernel
 * ConvTranspose (1.3 Resize, 1.9 DepthToSpace, 4.8 6-D Expand); 3D [2,16,16^3] -> [2,16,32^3] 8 ms vs 31 ms.
 */
function spread(g: GraphBuilder, y: Tensor, xShape: readonly number[], kernel: readonly number[]): Tensor {
  if (poolConfig.spread === 'convTranspose') return spreadByConvTranspose(g, y, xShape, kernel);
  const nd = kernel.length;
  const out = y.shape.slice(2);
  const last = nd - 1;
  const cols = xShape[2 + last];
  // the second-to-last axis rides along when its windows tile it exactly: a window's k rows are its spread row
  // repeated k times, i.e. the spread matrix repeated k times side by side, and [.., O, k*cols] is [.., O*k, cols]
  const rows = poolConfig.foldRows && nd >= 2 && xShape[1 + last] === out[last - 1] * kernel[last - 1] ? kernel[last - 1] : 1;
  const u = new Float32Array(out[last] * rows * cols);
  for (let j = 0; j < out[last]; j++) {
    for (let r = 0; r < rows; r++) for (let t = 0; t < kernel[last]; t++) u[j * rows * cols + r * cols + j * kernel[last] + t] = 1;
  }
  let t = g.matmul(y, g.anonymousInitializer('spread', u, [out[last], rows * cols]));
  let post = cols; // size of the already spread trailing axes
  let first = last - 1; // the next axis still to spread
  if (rows > 1) {
    post *= xShape[1 + last];
    first -= 1;
  }
  for (let i = first; i >= 0; i--) {
    const pre = sizeOf(xShape.slice(0, 2)) * sizeOf(out.slice(0, i));
    const e = g.expand(g.reshape(t, [pre * out[i], 1, post]), [pre * out[i], kernel[i], post]);
    let r = g.reshape(e, [pre, out[i] * kernel[i], post]);
    const leftover = xShape[2 + i] - out[i] * kernel[i];
    if (leftover > 0) r = g.pad(r, [0, 0, 0, 0, leftover, 0]);
    t = r;
    post *= xShape[2 + i];
  }
  return g.reshape(t, xShape);
}

/**
 * How many cells of each window won (ties share the gradient). When the spread folds rows (2D, rows tile exactly) this is the
 * spread's own 0/1 matrix transposed: one MatMul [.., Oh, k·W] x U^T sums each window (CNN layer [64,16,32,32] on per-channel views:
 * 0.33 ms AveragePool kernel); otherwise an AveragePool times the window size.
 */
function winnersPerWindow(g: GraphBuilder, winners: Tensor, yShape: readonly number[], kernel: readonly number[]): Tensor {
  const xShape = winners.shape;
  const nd = kernel.length;
  const out = yShape.slice(2);
  const cols = xShape[1 + nd];
  const folds = poolConfig.spread === 'matmul' && poolConfig.foldRows && poolConfig.countByMatmul && nd === 2
    && xShape[nd] === out[nd - 2] * kernel[nd - 2];
  if (!folds) return g.mul(g.averagePool(winners, { kernel }), g.constant(sizeOf(kernel)));
  const rows = kernel[nd - 2];
  const u = new Float32Array(rows * cols * out[nd - 1]);
  for (let j = 0; j < out[nd - 1]; j++) {
    for (let r = 0; r < rows; r++) for (let t = 0; t < kernel[nd - 1]; t++) u[(r * cols + j * kernel[nd - 1] + t) * out[nd - 1] + j] = 1;
  }
  const view = g.reshape(winners, [...xShape.slice(0, nd), out[nd - 2], rows * cols]); // [.., Oh, k·W]
  return g.matmul(view, g.anonymousInitializer('window_sum', u, [rows * cols, out[nd - 1]])); // [N, C, Oh, Ow]
}

function spreadByConvTranspose(g: GraphBuilder, y: Tensor, xShape: readonly number[], kernel: readonly number[]): Tensor {
  const c = xShape[1];
  const outputPadding = xShape.slice(2).map((d, i) => d - y.shape[i + 2] * kernel[i]);
  return g.convTranspose(y, g.filled([c, 1, ...kernel], 1), null, { strides: kernel, group: c, outputPadding });
}

/**
 * Tiling windows (stride = kernel, no pads): the winners are the cells where X equals Y spread over its window;
 * the MaxPool Indices path instead cost 5.6 ms (forward) + 1.6 ms (ScatterElements) on [64,16,32,32]. Ties share
 * the gradient equally (a valid subgradient that keeps each window's total at dY).
 */
function maxPoolTiling(g: GraphBuilder, x: Tensor, y: Tensor, dy: Tensor, geo: PoolGeom, afterRelu: boolean): Tensor {
  const winners = mask(g, g.equal(x, spread(g, y, x.shape, geo.kernel)));
  let share = g.div(dy, winnersPerWindow(g, winners, y.shape, geo.kernel));
  // x = relu(p): a winner has x = y, so relu's mask (x > 0) equals (y > 0) spread; apply it on the small side
  if (afterRelu) share = g.mul(share, mask(g, g.greater(y, g.constant(0))));
  return g.mul(winners, spread(g, share, x.shape, geo.kernel));
}

/**
 * conv -> relu -> maxPool: when the pool is the relu's only reader, fold relu's backward (three full-size ops)
 * into the pool's backward (two pooled-size ops): 12.6 vs 13.4 ms for the CNN step in docs/engine.md.
 */
function absorbedRelu(ctx: RuleCtx, x: Tensor): boolean {
  let t = x;
  const view = ctx.graph.producer(t);
  // a per-channel pool (GraphCore.poolsPerChannel) reads the relu through a Reshape: same values, same mask
  if (view?.op === 'Reshape' && ctx.graph.consumers(t) === 1 && view.inputs[0]) t = view.inputs[0];
  const p = ctx.graph.producer(t);
  if (!p || p.op !== 'Relu' || ctx.graph.consumers(t) !== 1) return false;
  ctx.graph.absorb(p);
  return true;
}

const maxPool: Rule = (ctx) => {
  const { g, node, dy: [dy] } = ctx;
  const x = inp(node, 0);
  const geo = (node.meta as { geo: PoolGeom }).geo;
  if (isTiling(geo)) return [maxPoolTiling(g, x, node.outputs[0], dy!, geo, absorbedRelu(ctx, x))];
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
  if (isTiling(geo)) return [spread(g, g.mul(d, g.constant(1 / sizeOf(geo.kernel))), x.shape, geo.kernel)];
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
  return [g.mul(dy!, g.constant(1 / sizeOf(x.shape.slice(2))))]; // [N, C, 1...]: broadcast by the driver
};

export const poolRules: Record<string, Rule> = { MaxPool: maxPool, AveragePool: averagePool, GlobalAveragePool: globalAveragePool };
