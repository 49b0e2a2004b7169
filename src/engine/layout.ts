/**
 * Named layouts of flat Float32Array vectors: the trainable parameters (what averaging and the network move) and the
 * optimizer state. The layout hash (sha256 over names and shapes, in order) lets two peers check that their vectors
 * mean the same thing before they average them.
 */
import { createHash } from 'node:crypto';
import { CohortError } from '../util/errors.ts';

export interface LayoutEntry { name: string; shape: number[]; offset: number; length: number }
export interface ParamLayout { entries: LayoutEntry[]; length: number; hash: string }

export function makeLayout(items: readonly { name: string; shape: readonly number[] }[]): ParamLayout {
  const entries: LayoutEntry[] = [];
  let offset = 0;
  const h = createHash('sha256');
  for (const it of items) {
    const length = it.shape.reduce((a, b) => a * b, 1);
    entries.push({ name: it.name, shape: [...it.shape], offset, length });
    offset += length;
    h.update(`${it.name}:${it.shape.join('x')};`);
  }
  return { entries, length: offset, hash: h.digest('hex') };
}

/** The slice of `flat` holding one entry (a view, not a copy). */
export function view(flat: Float32Array, e: LayoutEntry): Float32Array {
  return flat.subarray(e.offset, e.offset + e.length);
}

/** Throws unless `v` has the layout's length and only finite values. */
export function checkVector(layout: ParamLayout, v: Float32Array, what: string): void {
  if (v.length !== layout.length) {
    throw new CohortError('LAYOUT_MISMATCH', `${what}: ${v.length} values, but the model has ${layout.length} parameters`,
      `the vector must come from the same model spec (layout hash ${layout.hash.slice(0, 12)})`);
  }
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) {
      const e = layout.entries.find((x) => i >= x.offset && i < x.offset + x.length);
      throw new CohortError('NON_FINITE_PARAMS', `${what}: value ${v[i]} at index ${i} (${e?.name ?? '?'}) is not finite`,
        'refuse this model: it diverged or was corrupted in transit');
    }
  }
}
