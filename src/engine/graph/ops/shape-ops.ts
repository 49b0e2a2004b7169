/** Layout ops: Reshape, Flatten, Transpose, Concat, Split, Slice, Expand, Pad. All shapes are resolved statically. */
import type { GraphCore } from '../core.ts';
import { broadcastShapes, fmt, normAxis, shapeError, sizeOf } from '../shape.ts';
import type { Tensor } from '../types.ts';

/** Reshape; one dimension may be -1 (inferred). */
export function reshape(g: GraphCore, x: Tensor, shape: readonly number[]): Tensor {
  const n = g.peekName('Reshape');
  const known = shape.filter((d) => d !== -1);
  const total = sizeOf(x.shape);
  const out = [...shape];
  const inferred = shape.indexOf(-1);
  if (shape.filter((d) => d === -1).length > 1 || !known.every((d) => Number.isInteger(d) && d > 0)) {
    throw shapeError('Reshape', n, `target ${fmt(shape)} must be positive integers with at most one -1`);
  }
  if (inferred >= 0) out[inferred] = total / sizeOf(known);
  if (!Number.isInteger(out[inferred] ?? 0) || sizeOf(out) !== total) {
    throw shapeError('Reshape', n, `shapes ${fmt(x.shape)} (${total} values) and ${fmt(shape)} hold different sizes`);
  }
  return g.emit1('Reshape', [x, g.constant(out, 'int64')], out, x.dtype);
}

/** Flatten to 2-D: [prod(dims < axis), prod(dims >= axis)]. */
export function flatten(g: GraphCore, x: Tensor, axis = 1): Tensor {
  const a = axis === x.shape.length ? axis : normAxis('Flatten', g.peekName('Flatten'), axis, x.shape.length);
  const shape = [sizeOf(x.shape.slice(0, a)), sizeOf(x.shape.slice(a))];
  return g.emit1('Flatten', [x], shape, x.dtype, { axis: { i: a } });
}

export function transpose(g: GraphCore, x: Tensor, perm?: readonly number[]): Tensor {
  const p = perm ?? x.shape.map((_, i) => x.shape.length - 1 - i);
  const sorted = [...p].sort((a, b) => a - b);
  if (p.length !== x.shape.length || !sorted.every((v, i) => v === i)) {
    throw shapeError('Transpose', g.peekName('Transpose'), `perm ${fmt(p)} is not a permutation of the axes of ${fmt(x.shape)}`);
  }
  return g.emit1('Transpose', [x], p.map((i) => x.shape[i]), x.dtype, { perm: { ints: p } });
}

export function concat(g: GraphCore, xs: readonly Tensor[], axis: number): Tensor {
  const n = g.peekName('Concat');
  if (xs.length === 0) throw shapeError('Concat', n, 'needs at least one input');
  const a = normAxis('Concat', n, axis, xs[0].shape.length);
  const out = [...xs[0].shape];
  out[a] = 0;
  for (const x of xs) {
    const ok = x.dtype === xs[0].dtype && x.shape.length === out.length && x.shape.every((d, i) => i === a || d === xs[0].shape[i]);
    if (!ok) {
      throw shapeError('Concat', n, `shapes ${fmt(xs[0].shape)} ${xs[0].dtype} and ${fmt(x.shape)} ${x.dtype} differ outside axis ${a}`);
    }
    out[a] += x.shape[a];
  }
  return g.emit1('Concat', xs, out, xs[0].dtype, { axis: { i: a } });
}

export function split(g: GraphCore, x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
  const n = g.peekName('Split');
  const a = normAxis('Split', n, axis, x.shape.length);
  if (sizes.reduce((s, v) => s + v, 0) !== x.shape[a] || !sizes.every((s) => Number.isInteger(s) && s > 0)) {
    throw shapeError('Split', n, `sizes ${fmt(sizes)} do not add up to ${x.shape[a]} (axis ${a} of ${fmt(x.shape)})`);
  }
  const outputs = sizes.map((s) => ({ shape: x.shape.map((d, i) => (i === a ? s : d)), dtype: x.dtype }));
  return g.emit('Split', [x, g.constant(sizes, 'int64')], { attrs: { axis: { i: a } }, outputs });
}

export interface SliceSpec { starts: readonly number[]; ends: readonly number[]; axes?: readonly number[]; steps?: readonly number[] }

/** ONNX Slice with positive steps; negative starts/ends count from the end, out-of-range values clamp. */
export function slice(g: GraphCore, x: Tensor, s: SliceSpec): Tensor {
  const n = g.peekName('Slice');
  const axes = (s.axes ?? s.starts.map((_, i) => i)).map((a) => normAxis('Slice', n, a, x.shape.length));
  const steps = s.steps ?? axes.map(() => 1);
  if (s.starts.length !== axes.length || s.ends.length !== axes.length || steps.length !== axes.length) {
    throw shapeError('Slice', n, 'starts, ends, axes and steps must have the same length');
  }
  const out = [...x.shape];
  const starts: number[] = [];
  const ends: number[] = [];
  axes.forEach((a, i) => {
    const d = x.shape[a];
    if (!(steps[i] > 0)) throw shapeError('Slice', n, `step ${steps[i]} must be positive`);
    const clampIdx = (v: number): number => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
    starts.push(clampIdx(s.starts[i]));
    ends.push(clampIdx(s.ends[i]));
    out[a] = Math.ceil((ends[i] - starts[i]) / steps[i]);
    if (out[a] <= 0) throw shapeError('Slice', n, `axis ${a} of ${fmt(x.shape)} sliced [${s.starts[i]}:${s.ends[i]}] is empty`);
  });
  const inputs = [x, g.constant(starts, 'int64'), g.constant(ends, 'int64'), g.constant(axes, 'int64'), g.constant(steps, 'int64')];
  return g.emit1('Slice', inputs, out, x.dtype, undefined, { starts, ends, axes, steps });
}

export function expand(g: GraphCore, x: Tensor, shape: readonly number[]): Tensor {
  const out = broadcastShapes('Expand', g.peekName('Expand'), x.shape, shape);
  return g.emit1('Expand', [x, g.constant(out, 'int64')], out, x.dtype);
}

/** Constant zero padding: pads = [begin_0.., end_0..] over all axes (non-negative). */
export function pad(g: GraphCore, x: Tensor, pads: readonly number[]): Tensor {
  const r = x.shape.length;
  if (pads.length !== 2 * r || pads.some((p) => !Number.isInteger(p) || p < 0)) {
    throw shapeError('Pad', g.peekName('Pad'), `pads ${fmt(pads)} must be 2*rank non-negative integers for ${fmt(x.shape)}`);
  }
  const out = x.shape.map((d, i) => d + pads[i] + pads[i + r]);
  return g.emit1('Pad', [x, g.constant(pads, 'int64')], out, x.dtype, { mode: { s: 'constant' } }, { pads: [...pads] });
}
