/** Static shape arithmetic shared by the ops: numpy broadcasting, sizes, axis normalisation, shape errors. */
import { CohortError } from '../../util/errors.ts';

export function fmt(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

export function shapeError(op: string, node: string, detail: string): CohortError {
  return new CohortError(
    'SHAPE_MISMATCH',
    `${op} ${node}: ${detail}`,
    'check the layer sizes in the model spec: each layer must accept the shape the previous one produces',
  );
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** numpy broadcasting of two shapes, or a SHAPE_MISMATCH naming the node. */
export function broadcastShapes(op: string, node: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw shapeError(op, node, `shapes ${fmt(a)} and ${fmt(b)} do not broadcast (axis ${i}: ${da} vs ${db})`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Normalise a possibly negative axis against a rank. */
export function normAxis(op: string, node: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw shapeError(op, node, `axis ${axis} is out of range for rank ${rank}`);
  }
  return a;
}

/** The axes over which `target` was broadcast to reach `full` (leading extra axes and size-1 axes). */
export function broadcastAxes(target: readonly number[], full: readonly number[]): number[] {
  const lead = full.length - target.length;
  const axes: number[] = [];
  for (let i = 0; i < full.length; i++) {
    if (i < lead || (target[i - lead] === 1 && full[i] !== 1)) axes.push(i);
  }
  return axes;
}

/** Per-axis tuple attribute with a default, e.g. strides for an N-d conv. */
export function perAxis(v: readonly number[] | number | undefined, n: number, dflt: number): number[] {
  if (v === undefined) return new Array<number>(n).fill(dflt);
  if (typeof v === 'number') return new Array<number>(n).fill(v);
  return [...v];
}
