/**
 * Conv and ConvTranspose in 1D/2D/3D with strides, pads, dilations and groups (NC<spatial> layout, static shapes).
 * Conv weight: [Cout, Cin/group, k...]; ConvTranspose weight: [Cin, Cout/group, k...] (ONNX conventions).
 */
import type { GraphCore } from '../core.ts';
import { fmt, perAxis, shapeError } from '../shape.ts';
import type { Tensor } from '../types.ts';
import type { GraphBuilder } from '../builder.ts';

export interface ConvOpts {
  strides?: readonly number[] | number;
  /** [begin per spatial axis..., end per spatial axis...], or one number for all. */
  pads?: readonly number[] | number;
  dilations?: readonly number[] | number;
  group?: number;
}

export interface ConvTransposeOpts extends ConvOpts {
  outputPadding?: readonly number[] | number;
}

/** Fully resolved conv geometry, as stored in the node's meta for the backward rule. */
export interface ConvGeom {
  readonly strides: number[];
  readonly pads: number[];
  readonly dilations: number[];
  readonly group: number;
  readonly kernel: number[];
  readonly outputPadding: number[];
}

function resolve(op: string, name: string, x: Tensor, w: Tensor, o: ConvTransposeOpts): ConvGeom {
  const nd = x.shape.length - 2;
  if (nd < 1 || nd > 3 || w.shape.length !== nd + 2) {
    throw shapeError(op, name, `input ${fmt(x.shape)} and weight ${fmt(w.shape)} must be N,C + 1-3 spatial dims of equal rank`);
  }
  const g: ConvGeom = {
    strides: perAxis(o.strides, nd, 1),
    pads: typeof o.pads === 'number' || o.pads === undefined ? perAxis(o.pads, 2 * nd, 0) : [...o.pads],
    dilations: perAxis(o.dilations, nd, 1),
    group: o.group ?? 1,
    kernel: w.shape.slice(2),
    outputPadding: perAxis(o.outputPadding, nd, 0),
  };
  const bad = [...g.strides, ...g.dilations, g.group].some((v) => !Number.isInteger(v) || v < 1)
    || g.pads.length !== 2 * nd || g.pads.some((p) => !Number.isInteger(p) || p < 0);
  if (bad) throw shapeError(op, name, `strides/dilations/group must be >= 1 and pads 2x${nd} non-negative integers`);
  return g;
}

function checkBias(op: string, name: string, b: Tensor | null | undefined, channels: number): void {
  if (b && (b.shape.length !== 1 || b.shape[0] !== channels)) {
    throw shapeError(op, name, `bias ${fmt(b.shape)} must be [${channels}]`);
  }
}

function attrs(geo: ConvGeom, transpose: boolean) {
  return {
    strides: { ints: geo.strides }, pads: { ints: geo.pads }, dilations: { ints: geo.dilations },
    group: { i: geo.group }, kernel_shape: { ints: geo.kernel },
    ...(transpose ? { output_padding: { ints: geo.outputPadding } } : {}),
  };
}

export function conv(g: GraphCore, x: Tensor, w: Tensor, b: Tensor | null | undefined, o: ConvOpts = {}): Tensor {
  const name = g.peekName('Conv');
  const geo = resolve('Conv', name, x, w, o);
  const nd = geo.kernel.length;
  const [n, c] = x.shape;
  if (c !== w.shape[1] * geo.group || w.shape[0] % geo.group !== 0) {
    throw shapeError('Conv', name, `input ${fmt(x.shape)} and weight ${fmt(w.shape)}: ${c} channels vs ${w.shape[1]} x group ${geo.group}`);
  }
  checkBias('Conv', name, b, w.shape[0]);
  const spatial = x.shape.slice(2).map((d, i) => {
    const span = geo.dilations[i] * (geo.kernel[i] - 1) + 1;
    const out = Math.floor((d + geo.pads[i] + geo.pads[i + nd] - span) / geo.strides[i]) + 1;
    if (out < 1) throw shapeError('Conv', name, `input ${fmt(x.shape)} is smaller than kernel ${fmt(geo.kernel)} on axis ${i + 2}`);
    return out;
  });
  return g.emit1('Conv', b ? [x, w, b] : [x, w], [n, w.shape[0], ...spatial], x.dtype, attrs(geo, false), { geo });
}

export function convTranspose(g: GraphBuilder, x: Tensor, w: Tensor, b: Tensor | null | undefined, o: ConvTransposeOpts = {}): Tensor {
  const name = g.peekName('ConvTranspose');
  const geo = resolve('ConvTranspose', name, x, w, o);
  const nd = geo.kernel.length;
  const [n, c] = x.shape;
  if (c !== w.shape[0] || c % geo.group !== 0) {
    throw shapeError('ConvTranspose', name, `input ${fmt(x.shape)} and weight ${fmt(w.shape)}: ${c} channels vs ${w.shape[0]}`);
  }
  const cout = w.shape[1] * geo.group;
  checkBias('ConvTranspose', name, b, cout);
  // ONNX allows output_padding < max(stride, dilation), but onnxruntime rejects output_padding >= stride at run time
  if (geo.outputPadding.some((p, i) => p >= geo.strides[i])) {
    throw shapeError('ConvTranspose', name, `output padding ${fmt(geo.outputPadding)} must be smaller than the stride ${fmt(geo.strides)}`);
  }
  const spatial = x.shape.slice(2).map((d, i) =>
    geo.strides[i] * (d - 1) + geo.outputPadding[i] + geo.dilations[i] * (geo.kernel[i] - 1) + 1 - geo.pads[i] - geo.pads[i + nd]);
  if (spatial.some((d) => d < 1)) throw shapeError('ConvTranspose', name, `pads ${fmt(geo.pads)} leave no output`);
  if (isPatchUpsampling(geo, nd)) return patchUpsample(g, x, w, b);
  return g.emit1('ConvTranspose', b ? [x, w, b] : [x, w], [n, cout, ...spatial], x.dtype, attrs(geo, true), { geo });
}

/** Kernel = stride, no padding/dilation/groups: every input cell writes its own k^d output patch (U-Net up-sampling). */
function isPatchUpsampling(geo: ConvGeom, nd: number): boolean {
  return nd === 3 && geo.group === 1 && geo.kernel.every((k, i) => k === geo.strides[i])
    && [...geo.pads, ...geo.outputPadding].every((p) => p === 0) && geo.dilations.every((d) => d === 1);
}

/**
 * 3D patch up-sampling as Gemm + layout moves (ORT's 3D ConvTranspose measured 12.6 ms against 3.4 ms for this on
 * [2,32,16^3] -> [2,16,32^3], 2 threads; in 2D ORT's own kernel is faster, so only 3D takes this path):
 *   Z[o, kappa, n, i] = sum_c W[c, o, kappa] X[n, c, i]             one Gemm
 *   Y[n, o, i0 k0 + a, i1 k1 + b, i2 k2 + c] = Z[o, (a, b, c), n, (i0, i1, i2)]
 * The interleave moves whole rows with one Transpose (inner run I2) and interleaves the last axis with a MatMul by
 * a 0/1 permutation matrix. All parts are differentiable primitives, so no rule of its own.
 */
function patchUpsample(g: GraphBuilder, x: Tensor, w: Tensor, b: Tensor | null | undefined): Tensor {
  const [n, c, ...sp] = x.shape;
  const o = w.shape[1];
  const k = w.shape.slice(2);
  const nd = sp.length;
  const kk = k.reduce((p, v) => p * v, 1);
  const xt = g.reshape(g.transpose(x, [1, 0, ...sp.map((_, i) => i + 2)]), [c, -1]); // [C, N*P]
  const z = g.reshape(g.gemm(g.reshape(w, [c, o * kk]), xt, null, { transA: true }), [o, ...k, n, ...sp]);
  const kAx = (i: number): number => 1 + i;
  const iAx = (i: number): number => 2 + nd + i;
  const perm = [1 + nd, 0, ...sp.slice(0, -1).flatMap((_, i) => [iAx(i), kAx(i)]), kAx(nd - 1), iAx(nd - 1)];
  const moved = g.transpose(z, perm); // [N, O, I0, k0, ..., k_last, I_last]
  const last = sp[nd - 1];
  const kl = k[nd - 1];
  const pm = new Float32Array(kl * last * kl * last);
  for (let t = 0; t < kl; t++) for (let i = 0; i < last; i++) pm[(t * last + i) * kl * last + i * kl + t] = 1;
  const rows = g.matmul(g.reshape(moved, [-1, kl * last]), g.anonymousInitializer('upsample_perm', pm, [kl * last, kl * last]));
  const y = g.reshape(rows, [n, o, ...sp.map((d, i) => d * k[i])]);
  return b ? g.add(y, g.reshape(b, [1, o, ...sp.map(() => 1)])) : y;
}
