/**
 * Convolution weight gradients as im2col + one matrix product (the prototype measured ~4x faster than a Conv on
 * transposed tensors). For Conv, outer = dY and src = X; for ConvTranspose, outer = X and src = dY:
 *
 *   dW[a, b, k] = sum_n sum_o outer[n, a, o] * srcPadded[n, b, o*stride + k*dilation]
 *
 * src is moved to channels-first [B, N, ...] once, zero-padded, and for each kernel offset one strided Slice
 * extracts the patch plane; Concat stacks them to cols [B*K, N*P] (rows ordered (b, k), so the product reshapes
 * straight to [A, B/G, k...] with no weight transpose). Very large cols (3D) are built in chunks of kernel offsets,
 * one Gemm per chunk. group > 1 uses a batched MatMul over groups.
 */
import type { GraphBuilder } from '../graph/builder.ts';
import { sizeOf } from '../graph/shape.ts';
import type { Tensor } from '../graph/types.ts';

export interface Im2colGeom {
  readonly kernel: readonly number[];
  readonly strides: readonly number[];
  readonly dilations: readonly number[];
  /** Begin pads of src per spatial axis. */
  readonly padBegin: readonly number[];
  readonly group: number;
}

/** Move the channel axis in front of the batch axis: [N, C, ...] -> [C, N, ...] (a reshape when N or C is 1). */
function channelsFirst(g: GraphBuilder, t: Tensor): Tensor {
  const [n, c, ...sp] = t.shape;
  if (n === 1 || c === 1) return g.reshape(t, [c, n, ...sp]);
  return g.transpose(t, [1, 0, ...sp.map((_, i) => i + 2)]);
}

/** All kernel offsets in row-major order. */
function offsets(kernel: readonly number[]): number[][] {
  let acc: number[][] = [[]];
  for (const k of kernel) acc = acc.flatMap((p) => Array.from({ length: k }, (_, i) => [...p, i]));
  return acc;
}

/** src channels-first and zero-padded so that every window fits: [B, 1, N, Sp...]. */
function paddedSource(g: GraphBuilder, src: Tensor, outSpatial: readonly number[], geo: Im2colGeom): Tensor {
  const srcSp = src.shape.slice(2);
  const endPad = outSpatial.map((o, i) =>
    Math.max(0, (o - 1) * geo.strides[i] + (geo.kernel[i] - 1) * geo.dilations[i] + 1 - (srcSp[i] + geo.padBegin[i])));
  let t = channelsFirst(g, src); // [B, N, S...]
  if ([...geo.padBegin, ...endPad].some((p) => p > 0)) t = g.pad(t, [0, 0, ...geo.padBegin, 0, 0, ...endPad]);
  return g.reshape(t, [t.shape[0], 1, ...t.shape.slice(1)]);
}

/**
 * Patch planes [B, 1, N, O...]: one strided slice of the padded src per kernel offset. With `fullFirst` the first
 * spatial axis is not sliced (offsets over the remaining axes only; see shiftedWeightGradient).
 */
function planes(g: GraphBuilder, src: Tensor, outSpatial: readonly number[], geo: Im2colGeom, fullFirst = false): Tensor[] {
  const t = paddedSource(g, src, outSpatial, geo);
  const nd = geo.kernel.length;
  const axes = Array.from({ length: nd }, (_, i) => i + 3);
  // with fullFirst, axis 0 keeps every row any window reaches: [0, O0 + d0 (k0 - 1))
  const firstLen = outSpatial[0] + geo.dilations[0] * (geo.kernel[0] - 1);
  return offsets(fullFirst ? geo.kernel.slice(1) : geo.kernel).map((kr) => {
    const k = fullFirst ? [0, ...kr] : kr;
    const starts = k.map((ki, i) => ki * geo.dilations[i]);
    const ends = starts.map((st, i) => (fullFirst && i === 0 ? firstLen : st + (outSpatial[i] - 1) * geo.strides[i] + 1));
    const steps = geo.strides.map((st, i) => (fullFirst && i === 0 ? 1 : st));
    const whole = starts.every((st, i) => st === 0 && ends[i] === t.shape[i + 3] && steps[i] === 1);
    return whole ? t : g.slice(t, { starts, ends, axes, steps });
  });
}

/**
 * Largest cols block (floats) built at once. Beyond it the kernel offsets are split into chunks, one Gemm each:
 * a 27x cols matrix of a 3D layer (100+ MB) costs more in Concat memory traffic than the extra Gemm calls.
 */
export const im2colConfig = {
  maxColsFloats: 4 * 1024 * 1024,
  /** Move the first axis's kernel offsets to the outer side when that moves less data ('auto'); tests force it. */
  shift: 'auto' as 'auto' | 'always' | 'never',
  /** Conv bias gradient from the weight gradient's channels-first dY (weightAndOuterSum); false: ReduceSum of dY itself (A/B). */
  biasFromOuter: true,
};

/**
 * Shifted variant for stride 1 along the first spatial axis: instead of k0 shifted copies of src (per first-axis
 * offset), make k0 shifted, zero-padded copies of `outer` and keep src's first axis whole:
 *   dW[a, b, (j, r)] = sum outer[a, n, i, q] src[b, n, i + j*d0, q + r...] = sum outerShift_j[a, n, i', q] src_r[b, n, i', q]
 * so one Gemm of [k0*A, L] x [B*K/k0, L]^T gives every offset. For a 3x3x3 conv with A = B this moves
 * 9B + 3A planes instead of 27B (~2x less memory traffic); the ~6-12% longer L (padded first axis) is cheaper.
 */
function useShift(a: number, b: number, geo: Im2colGeom): boolean {
  if (geo.group !== 1 || geo.kernel.length < 2 || geo.strides[0] !== 1 || geo.kernel[0] < 2) return false;
  if (im2colConfig.shift !== 'auto') return im2colConfig.shift === 'always';
  const k0 = geo.kernel[0];
  const kk = sizeOf(geo.kernel);
  return (kk / k0) * b + k0 * a < 0.75 * kk * b;
}

function shiftedWeightGradient(g: GraphBuilder, outer: Tensor, outerT: Tensor, src: Tensor, geo: Im2colGeom): Tensor {
  const [, a, ...outSp] = outer.shape;
  const b = src.shape[1];
  const k0 = geo.kernel[0];
  const d0 = geo.dilations[0];
  const ps = planes(g, src, outSp, geo, true); // each [B, 1, N, Sp0, O1...]
  const len = sizeOf(ps[0].shape.slice(2));
  const rank = outerT.shape.length;
  const shifted = Array.from({ length: k0 }, (_, j) => {
    const pads = new Array<number>(2 * rank).fill(0);
    pads[2] = j * d0;
    pads[2 + rank] = (k0 - 1 - j) * d0;
    return g.reshape(g.pad(outerT, pads), [1, a, len]);
  });
  const lhs = g.reshape(g.concat(shifted, 0), [k0 * a, len]);
  const per = Math.max(1, Math.min(ps.length, Math.floor(im2colConfig.maxColsFloats / (b * len))));
  const chunks: Tensor[] = [];
  for (let i = 0; i < ps.length; i += per) {
    const part = ps.slice(i, i + per);
    const cols = part.length === 1 ? part[0] : g.concat(part, 1);
    const prod = g.gemm(lhs, g.reshape(cols, [part.length * b, len]), null, { transB: true }); // [(j, a), (b, r)]
    chunks.push(g.reshape(prod, [k0, a, b, part.length]));
  }
  const all = chunks.length === 1 ? chunks[0] : g.concat(chunks, 3);
  const w = g.transpose(all, [1, 2, 0, 3]); // weights only: tiny
  return g.reshape(w, [a, b, ...geo.kernel]);
}

export function weightGradient(g: GraphBuilder, outer: Tensor, src: Tensor, geo: Im2colGeom): Tensor {
  return weightAndOuterSum(g, outer, src, geo, false)[0];
}

/**
 * The weight gradient and, when `withSum`, the per-channel sum of `outer` (a Conv's bias gradient when outer = dY), taken from
 * the channels-first copy the Gemm reads anyway: a ReduceSum over the contiguous last axis of [A, N*P] instead of over axes
 * [0, 2, 3] of [N, A, ...] (CNN layer [64,16,32,32]: 0.22 ms kernel time).
 */
export function weightAndOuterSum(g: GraphBuilder, outer: Tensor, src: Tensor, geo: Im2colGeom, withSum: boolean): [Tensor, Tensor | null] {
  const [n, a, ...outSp] = outer.shape;
  const np = n * sizeOf(outSp);
  const outerT = channelsFirst(g, outer); // [A, N, O...]
  const sum = withSum ? g.reduceSum(g.reshape(outerT, [a, np]), [1]) : null;
  return [weightGradientT(g, outer, outerT, src, geo), sum];
}

function weightGradientT(g: GraphBuilder, outer: Tensor, outerT: Tensor, src: Tensor, geo: Im2colGeom): Tensor {
  const [n, a, ...outSp] = outer.shape;
  const b = src.shape[1];
  if (useShift(a, b, geo)) return shiftedWeightGradient(g, outer, outerT, src, geo);
  const np = n * sizeOf(outSp);
  const kk = sizeOf(geo.kernel);
  const G = geo.group;
  const ps = planes(g, src, outSp, geo);
  const wShape = [a, b / G, ...geo.kernel];
  const stack = (xs: Tensor[]): Tensor => (xs.length === 1 ? xs[0] : g.concat(xs, 1));
  if (G > 1) {
    const colsG = g.transpose(g.reshape(stack(ps), [G, (b / G) * kk, np]), [0, 2, 1]); // [G, NP, Bg*K]
    const prod = g.matmul(g.reshape(outerT, [G, a / G, np]), colsG); // [G, Ag, Bg*K]
    return g.reshape(prod, wShape);
  }
  const outer2 = g.reshape(outerT, [a, np]);
  const per = Math.max(1, Math.min(kk, Math.floor(im2colConfig.maxColsFloats / (b * np))));
  const chunks: Tensor[] = [];
  for (let i = 0; i < kk; i += per) {
    const part = ps.slice(i, i + per);
    const prod = g.gemm(outer2, g.reshape(stack(part), [b * part.length, np]), null, { transB: true }); // [A, B*q]
    chunks.push(g.reshape(prod, [a, b, part.length]));
  }
  return g.reshape(chunks.length === 1 ? chunks[0] : g.concat(chunks, 2), wShape);
}
