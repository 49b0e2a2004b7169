/**
 * The benchmark model for `cohort bench net`: 16 Mi float32 parameters (64 MiB) of seeded standard-normal values, identical in
 * the sender and the receiving peer process (so the receiver can check a decoded vector against the original), and the
 * error bound each lossy codec states in src/averaging/compression.ts.
 *   benchModel(seed, params?) -> Float32Array          (cached per seed: building it costs ~0.5 s)
 *   checkBound(codec, original, decoded, blockSize?)   -> { ok, worst }: worst = max over values of |err| / bound (<= 1 passes)
 */
import { Rng } from '../../src/util/random.ts';

export const MODEL_PARAMS = 16 * 1024 * 1024;
const cache = new Map<string, Float32Array>();

export function benchModel(seed: number, params = MODEL_PARAMS): Float32Array {
  const key = `${seed}:${params}`;
  let v = cache.get(key);
  if (!v) {
    const rng = new Rng(seed);
    v = new Float32Array(params);
    for (let i = 0; i < params; i++) v[i] = rng.normal();
    cache.set(key, v);
  }
  return v;
}

/** The codec's documented bound, value by value: int8 |err| <= max|block|/127; fp16 |err| <= 2^-11 |v| (normal), 2^-25 near 0. */
export function checkBound(codec: string, v: Float32Array, d: ArrayLike<number>, blockSize = 256): { ok: boolean; worst: number } {
  if (d.length !== v.length) return { ok: false, worst: Number.POSITIVE_INFINITY };
  let worst = 0;
  if (codec === 'int8') {
    for (let lo = 0; lo < v.length; lo += blockSize) {
      const hi = Math.min(v.length, lo + blockSize);
      let max = 0;
      for (let i = lo; i < hi; i++) max = Math.max(max, Math.abs(v[i] as number));
      const bound = (max / 127) * 1.000001; // the scale is stored as float32
      for (let i = lo; i < hi; i++) {
        const err = Math.abs((d[i] as number) - (v[i] as number));
        worst = Math.max(worst, bound === 0 ? (err === 0 ? 0 : Number.POSITIVE_INFINITY) : err / bound);
      }
    }
  } else if (codec === 'fp16') {
    for (let i = 0; i < v.length; i++) {
      const a = Math.abs(v[i] as number);
      const bound = a >= 2 ** -14 ? a * 2 ** -11 : 2 ** -25;
      worst = Math.max(worst, Math.abs((d[i] as number) - (v[i] as number)) / bound);
    }
  } else {
    for (let i = 0; i < v.length; i++) if (d[i] !== v[i]) worst = Number.POSITIVE_INFINITY;
  }
  return { ok: worst <= 1, worst };
}
