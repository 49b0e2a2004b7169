/** MaxPool (with the Indices output its backward rule needs), AveragePool and GlobalAveragePool, 1D-3D. */
import type { GraphCore } from '../core.ts';
import { fmt, perAxis, shapeError } from '../shape.ts';
import type { Tensor } from '../types.ts';
import { reshape } from './shape-ops.ts';

export interface PoolOpts {
  kernel: readonly number[] | number;
  /** Default: the kernel (non-overlapping windows). */
  strides?: readonly number[] | number;
  /** [begin per spatial axis..., end per spatial axis...], or one number for all. */
  pads?: readonly number[] | number;
  /** AveragePool only: count padded cells in the divisor (ONNX default false; PyTorch's default is true). */
  countIncludePad?: boolean;
}

export interface PoolGeom { readonly kernel: number[]; readonly strides: number[]; readonly pads: number[]; readonly countIncludePad: boolean }

function geometry(op: string, g: GraphCore, x: Tensor, o: PoolOpts): { geo: PoolGeom; out: number[] } {
  const name = g.peekName(op);
  const nd = x.shape.length - 2;
  if (nd < 1 || nd > 3) throw shapeError(op, name, `input ${fmt(x.shape)} must be N,C + 1-3 spatial dims`);
  const kernel = perAxis(o.kernel, nd, 1);
  const geo: PoolGeom = {
    kernel,
    strides: o.strides === undefined ? [...kernel] : perAxis(o.strides, nd, 1),
    pads: typeof o.pads === 'number' || o.pads === undefined ? perAxis(o.pads, 2 * nd, 0) : [...o.pads],
    countIncludePad: o.countIncludePad ?? false,
  };
  if (geo.pads.length !== 2 * nd || geo.pads.some((p, i) => p < 0 || p >= kernel[i % nd])) {
    throw shapeError(op, name, `pads ${fmt(geo.pads)} must be 2x${nd} values, each smaller than the kernel ${fmt(kernel)}`);
  }
  const out = x.shape.slice(2).map((d, i) => Math.floor((d + geo.pads[i] + geo.pads[i + nd] - kernel[i]) / geo.strides[i]) + 1);
  if (out.some((d) => d < 1)) throw shapeError(op, name, `input ${fmt(x.shape)} is smaller than kernel ${fmt(kernel)}`);
  return { geo, out: [x.shape[0], x.shape[1], ...out] };
}

function attrs(geo: PoolGeom) {
  return { kernel_shape: { ints: geo.kernel }, strides: { ints: geo.strides }, pads: { ints: geo.pads } };
}

/** Windows that tile the input without overlap or padding: backward can then work on a reshaped view. */
export function isTiling(geo: PoolGeom): boolean {
  return geo.strides.every((s, i) => s === geo.kernel[i]) && geo.pads.every((p) => p === 0);
}

/** Process-wide switch for A/B runs and tests (false: every graph pools [N, C, H, W] as it is). */
export const poolLayoutConfig = { perChannel: true };

/** 2D pools of a graph that asked for it (GraphCore.poolsPerChannel): pooling never mixes channels. */
function perChannel(g: GraphCore, x: Tensor): boolean {
  return poolLayoutConfig.perChannel && g.poolsPerChannel && x.shape.length === 4 && x.shape[1] > 1;
}

/** pool [N, C, H, W] as [N*C, 1, H, W] and view the result as [N, C, H', W'] (reshapes are free). */
function perChannelView(g: GraphCore, x: Tensor, pool: (v: Tensor) => Tensor): Tensor {
  const [n, c, ...sp] = x.shape;
  const y = pool(reshape(g, x, [n * c, 1, ...sp]));
  return reshape(g, y, [n, c, ...y.shape.slice(2)]);
}

/**
 * MaxPool. Tiling windows emit the plain single-output op (ORT's fast kernel; backward compares X with Y per
 * window); overlapping or padded windows also emit Indices, which their backward scatters into.
 */
export function maxPool(g: GraphCore, x: Tensor, o: PoolOpts): Tensor {
  if (perChannel(g, x)) return perChannelView(g, x, (v) => maxPool(g, v, o));
  const { geo, out } = geometry('MaxPool', g, x, o);
  const outputs = [{ shape: out, dtype: x.dtype }, ...(isTiling(geo) ? [] : [{ shape: out, dtype: 'int64' as const }])];
  const [y] = g.emit('MaxPool', [x], { attrs: attrs(geo), meta: { geo }, outputs });
  return y;
}

export function averagePool(g: GraphCore, x: Tensor, o: PoolOpts): Tensor {
  if (perChannel(g, x)) return perChannelView(g, x, (v) => averagePool(g, v, o));
  const { geo, out } = geometry('AveragePool', g, x, o);
  const a = { ...attrs(geo), count_include_pad: { i: geo.countIncludePad ? 1 : 0 } };
  return g.emit1('AveragePool', [x], out, x.dtype, a, { geo });
}

export function globalAveragePool(g: GraphCore, x: Tensor): Tensor {
  if (x.shape.length < 3) throw shapeError('GlobalAveragePool', g.peekName('GlobalAveragePool'), `input ${fmt(x.shape)} has no spatial dims`);
  return g.emit1('GlobalAveragePool', [x], [x.shape[0], x.shape[1], ...x.shape.slice(2).map(() => 1)], x.dtype);
}
