/**
 * Seeded inverted dropout: y = x * mask / (1 - ratio). The mask is a pure function of (seed input, salt, element
 * index), computed in the graph with exact int64 arithmetic (values stay below 2^62, so no overflow and the same
 * bits on every machine and provider). The caller feeds a fresh seed per step from its seeded Rng; backward reuses
 * the very same mask through Mul's rule. With seed = null (eval) dropout is the identity.
 *
 * Hash (M = 2^31 - 1, a prime): h = (i + seed*K1 + salt*K2) mod M; h = h^2 mod M; h = (h*A + i) mod M; h = h^2 mod M.
 * The squarings make it non-linear in i, so the mask shows no lattice pattern.
 */
import type { GraphBuilder } from '../builder.ts';
import { shapeError, sizeOf } from '../shape.ts';
import type { Tensor } from '../types.ts';

const M = 2147483647;

export function dropout(g: GraphBuilder, x: Tensor, ratio: number, seed: Tensor | null, salt = 0): Tensor {
  if (!(ratio >= 0 && ratio < 1)) throw shapeError('Dropout', g.peekName('Dropout'), `ratio ${ratio} must be in [0, 1)`);
  if (seed === null || ratio === 0) return x;
  if (seed.dtype !== 'int64' || sizeOf(seed.shape) !== 1) {
    throw shapeError('Dropout', g.peekName('Dropout'), `seed must be an int64 scalar, got ${seed.dtype} [${seed.shape.join(',')}]`);
  }
  const n = sizeOf(x.shape);
  const i64 = (v: number): Tensor => g.constant(v, 'int64');
  const bin = (op: 'Add' | 'Mul' | 'Mod', a: Tensor, b: Tensor): Tensor =>
    g.emit1(op, [a, b], a.shape.length >= b.shape.length ? a.shape : b.shape, 'int64', op === 'Mod' ? { fmod: { i: 0 } } : undefined);
  const idx = g.emit1('Range', [i64(0), i64(n), i64(1)], [n], 'int64');
  const s = bin('Mod', g.reshape(seed, []), i64(M));
  let h = bin('Mod', bin('Add', idx, bin('Mod', bin('Add', bin('Mul', s, i64(48271)), i64(salt * 69621 + 12345)), i64(M))), i64(M));
  h = bin('Mod', bin('Mul', h, h), i64(M));
  h = bin('Mod', bin('Add', bin('Mul', h, i64(16807)), idx), i64(M));
  h = bin('Mod', bin('Mul', h, h), i64(M));
  const keep = g.less(g.cast(h, 'float32'), g.constant(Math.floor((1 - ratio) * M)));
  const mask = g.mul(g.cast(keep, 'float32'), g.constant(1 / (1 - ratio)));
  return g.mul(x, g.reshape(mask, x.shape));
}
