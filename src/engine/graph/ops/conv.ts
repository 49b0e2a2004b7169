/**
 * Conv and ConvTranspose in 1D/2D/3D with strides, pads, dilations and groups (NC<spatial> layout, static shapes).
 * Conv weight: [Cout, Cin/group, k...]; ConvTranspose weight: [Cin, Cout/group, k...] (ONNX conventions).
 */
import type { GraphCore } from '../core.ts';
import { fmt, perAxis, shapeError } from '../shape.ts';
import type { Tensor } from '../types.ts';

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

export function convTranspose(g: GraphCore, x: Tensor, w: Tensor, b: Tensor | null | undefined, o: ConvTransposeOpts = {}): Tensor {
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
  return g.emit1('ConvTranspose', b ? [x, w, b] : [x, w], [n, cout, ...spatial], x.dtype, attrs(geo, true), { geo });
}
