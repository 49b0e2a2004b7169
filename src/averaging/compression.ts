/**
 * Model codecs: encode a flat parameter vector to real bytes (the same bytes travel over libp2p and through the simulator),
 * and decode them back. Each codec states its error bound (checked in test/unit/compression.test.ts).
 *
 *   f64   exact (push-sum, whose exactness needs Float64 mass)        8 bytes/value
 *   f32   exact for Float32 models                                     4 bytes/value
 *   fp16  IEEE half, round to nearest even: |err| <= 2^-11 |v| (normal range), 2^-24 absolute near 0     2 bytes/value
 *   int8  stochastic rounding, one scale per block of B values: |err| <= max|block|/127, unbiased (E[decode] = v)   ~1 byte/value
 *         (rounding draws: one Rng.nextU32() per block seeds a local xorshift32, for speed; reproducible from the Rng)
 *   topk  the k largest |v| as (index, value): exact on those, ||v - c||^2 <= (1 - k/d) ||v||^2 (needs error feedback or CHOCO)
 *
 * ErrorFeedback keeps what top-k (or any codec) dropped and adds it to the next vector (e <- e + delta; c = Q(e); e <- e - c).
 */
import { CohortError } from '../util/errors.ts';
import type { Rng } from '../util/random.ts';

export type Vec = Float32Array | Float64Array;
export type CodecName = 'f64' | 'f32' | 'fp16' | 'int8' | 'topk';
export const CODEC_NAMES: readonly CodecName[] = ['f64', 'f32', 'fp16', 'int8', 'topk'];

export interface CodecOptions {
  /** int8: values per scale block (default 256). */
  readonly blockSize?: number;
  /** topk: fraction of values kept (default 0.1). */
  readonly topkFraction?: number;
}

export interface Codec {
  readonly name: CodecName;
  /** True when decode(encode(v)) == v bit for bit (for the vector's own precision). */
  readonly lossless: boolean;
  /** int8 uses `rng` for stochastic rounding; the others ignore it. */
  encode(v: Vec, rng?: Rng): Uint8Array;
  /** Decodes to a dense vector of `length` values; throws CohortError on a malformed payload. */
  decode(bytes: Uint8Array, length: number): Vec;
}

export function makeCodec(name: CodecName, opts: CodecOptions = {}): Codec {
  switch (name) {
    case 'f64': return f64Codec;
    case 'f32': return f32Codec;
    case 'fp16': return fp16Codec;
    case 'int8': return int8Codec(opts.blockSize ?? 256);
    case 'topk': return topkCodec(opts.topkFraction ?? 0.1);
    default: throw new CohortError('UNKNOWN_CODEC', `unknown compression "${String(name)}"`, `use one of ${CODEC_NAMES.join(', ')}`);
  }
}

function malformed(codec: string, why: string): CohortError {
  return new CohortError('MALFORMED_PAYLOAD', `${codec} payload is malformed: ${why}`, 'the sender runs a different codec or version');
}

/** A copy of the bytes into a fresh, aligned buffer (payloads may sit at any offset of a network frame). */
function aligned(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer;
}

const f64Codec: Codec = {
  name: 'f64',
  lossless: true,
  encode: (v) => new Uint8Array(Float64Array.from(v).buffer),
  decode(bytes, length) {
    if (bytes.byteLength !== length * 8) throw malformed('f64', `${bytes.byteLength} bytes for ${length} values`);
    return new Float64Array(aligned(bytes));
  },
};

const f32Codec: Codec = {
  name: 'f32',
  lossless: true,
  encode: (v) => new Uint8Array(Float32Array.from(v).buffer),
  decode(bytes, length) {
    if (bytes.byteLength !== length * 4) throw malformed('f32', `${bytes.byteLength} bytes for ${length} values`);
    return new Float32Array(aligned(bytes));
  },
};

// ---- fp16 (manual conversion: Node 20 has no Float16Array) ----
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function toHalf(x: number): number {
  f32buf[0] = x;
  const b = u32buf[0] as number;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN stay Inf / NaN (rejected downstream)
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> Inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) { m = 0; e++; if (e >= 0x1f) return sign | 0x7c00; }
  }
  return sign | (e << 10) | m;
}

export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? Number.NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

const fp16Codec: Codec = {
  name: 'fp16',
  lossless: false,
  encode(v) {
    // Works on the float32 bit patterns directly: the same halves as toHalf per value (checked on 4 Mi bit patterns), ~2x faster.
    const f = v instanceof Float32Array ? v : Float32Array.from(v);
    const bits = new Int32Array(f.buffer, f.byteOffset, f.length);
    const out = new Uint16Array(v.length);
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i] as number;
      const e = ((b >>> 23) & 0xff) - 112; // exponent rebased from 127 to 15
      if (e > 0 && e < 0x1f) {
        // normal range, inline (the hot path): rebase the exponent in place, then round the low 13 bits away, nearest even,
        // without a branch (random mantissas made the rounding branch mispredict half the time); a carry into the exponent is
        // what IEEE wants, and one into 0x7c00 is overflow to Infinity
        const x = (b & 0x7fffffff) - (112 << 23);
        const h = (x + 0xfff + ((x >>> 13) & 1)) >>> 13;
        out[i] = ((b >>> 16) & 0x8000) | (h >= 0x7c00 ? 0x7c00 : h);
      } else {
        out[i] = toHalf(f[i] as number); // zero, subnormal, underflow, overflow, Inf, NaN
      }
    }
    return new Uint8Array(out.buffer);
  },
  decode(bytes, length) {
    if (bytes.byteLength !== length * 2) throw malformed('fp16', `${bytes.byteLength} bytes for ${length} values`);
    // a view when the payload sits at an even offset (the usual case), a copy otherwise
    const h = bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, length) : new Uint16Array(aligned(bytes));
    const table = halfTable();
    const out = new Float32Array(length);
    for (let i = 0; i < length; i++) out[i] = table[h[i] as number] as number;
    return out;
  },
};

/** fromHalf for all 65536 halves, built once: decoding is a table lookup. */
let halfTableCache: Float32Array | undefined;
function halfTable(): Float32Array {
  if (!halfTableCache) {
    halfTableCache = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTableCache[h] = fromHalf(h);
  }
  return halfTableCache;
}

// ---- int8 with stochastic rounding and per-block scales: [f32 scale per block][int8 per value] ----
function int8Codec(blockSize: number): Codec {
  if (!Number.isInteger(blockSize) || blockSize < 1) {
    throw new CohortError('BAD_CODEC_OPTION', `int8 block size must be a positive integer, got ${blockSize}`, 'use e.g. 256');
  }
  return {
    name: 'int8',
    lossless: false,
    encode(v, rng) {
      if (!rng) throw new CohortError('CODEC_NEEDS_RNG', 'int8 stochastic rounding needs a seeded Rng', 'pass the peer\'s Rng to encode()');
      const blocks = Math.ceil(v.length / blockSize);
      const out = new Uint8Array(blocks * 4 + v.length);
      const scales = new Float32Array(out.buffer, 0, blocks);
      const q = new Int8Array(out.buffer, blocks * 4);
      for (let b = 0; b < blocks; b++) {
        const lo = b * blockSize;
        const hi = Math.min(v.length, lo + blockSize);
        let max = 0;
        for (let i = lo; i < hi; i++) {
          const a = Math.abs(v[i] as number);
          if (a > max) max = a;
          else if (a !== a) { max = a; break; } // NaN poisons the block's scale, as Math.max did
        }
        const s = Math.fround(max / 127);
        scales[b] = s;
        // s = 0: all zero. s NaN or Infinity: every v/s is 0 or NaN, which the old per-value code stored as 0, as here
        if (s === 0 || !Number.isFinite(s)) continue;
        // One Rng draw per block seeds a xorshift32 stream for the block's rounding noise: a call into the Rng per value cost
        // ~80% of the encode time. Still seeded (same Rng, same bytes), u uniform in (0, 1) (never 0: the state is never 0), so
        // still unbiased to within 2^-32 of a step.
        let t = rng.nextU32() | 1;
        for (let i = lo; i < hi; i++) {
          t ^= t << 13; t ^= t >>> 17; t ^= t << 5;
          const u = (t >>> 0) * 2.3283064365386963e-10; // / 2^32
          // floor(y) for y = v/s + u in (-128, 129): truncation of y + 128 (positive) is its floor, and much cheaper than Math.floor
          const r = (((v[i] as number) / s + u + 128) | 0) - 128; // unbiased: E[r] = v / s
          q[i] = r < -127 ? -127 : r > 127 ? 127 : r;
        }
      }
      return out;
    },
    decode(bytes, length) {
      const blocks = Math.ceil(length / blockSize);
      if (bytes.byteLength !== blocks * 4 + length) throw malformed('int8', `${bytes.byteLength} bytes for ${length} values`);
      // only the scales need 4-byte alignment: copy those (1/blockSize of the payload), read the int8 values in place
      const scales = new Float32Array(aligned(bytes.subarray(0, blocks * 4)));
      const q = new Int8Array(bytes.buffer, bytes.byteOffset + blocks * 4, length);
      const out = new Float32Array(length);
      for (let b = 0; b < blocks; b++) {
        const s = scales[b] as number;
        const hi = Math.min(length, (b + 1) * blockSize);
        for (let i = b * blockSize; i < hi; i++) out[i] = (q[i] as number) * s;
      }
      return out;
    },
  };
}

// ---- top-k: [u32 k][u32 index * k][f32 value * k] ----
function topkCodec(fraction: number): Codec {
  if (!(fraction > 0 && fraction <= 1)) {
    throw new CohortError('BAD_CODEC_OPTION', `top-k fraction must be in (0, 1], got ${fraction}`, 'use e.g. 0.1 (10% of the values)');
  }
  return {
    name: 'topk',
    lossless: false,
    encode(v) {
      const k = Math.max(1, Math.min(v.length, Math.round(v.length * fraction)));
      const idx = topIndices(v, k);
      const out = new Uint8Array(4 + 8 * k);
      const view = new DataView(out.buffer);
      view.setUint32(0, k, true);
      idx.forEach((j, n) => {
        view.setUint32(4 + 4 * n, j, true);
        view.setFloat32(4 + 4 * k + 4 * n, v[j] as number, true);
      });
      return out;
    },
    decode(bytes, length) {
      if (bytes.byteLength < 4) throw malformed('topk', 'shorter than its header');
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const k = view.getUint32(0, true);
      if (bytes.byteLength !== 4 + 8 * k || k > length) throw malformed('topk', `${bytes.byteLength} bytes for k=${k} of ${length}`);
      const out = new Float32Array(length);
      for (let n = 0; n < k; n++) {
        const j = view.getUint32(4 + 4 * n, true);
        if (j >= length) throw malformed('topk', `index ${j} out of range ${length}`);
        out[j] = view.getFloat32(4 + 4 * k + 4 * n, true);
      }
      return out;
    },
  };
}

/** Indices of the k largest |v| (ties broken by the lower index, so it is deterministic). */
function topIndices(v: Vec, k: number): number[] {
  const order = Array.from({ length: v.length }, (_, i) => i);
  order.sort((a, b) => Math.abs(v[b] as number) - Math.abs(v[a] as number) || a - b);
  return order.slice(0, k).sort((a, b) => a - b);
}

/**
 * Error feedback (Stich et al. 2018; Karimireddy et al. 2019): what the codec dropped is added to the next vector,
 * so nothing is lost for good — the sum of everything decoded tracks the sum of everything given, up to the residual e.
 */
export class ErrorFeedback {
  private readonly residual: Float64Array;

  constructor(private readonly codec: Codec, readonly length: number) {
    this.residual = new Float64Array(length);
  }

  /** Encode delta + residual; keep what the encoding lost. */
  encode(delta: Vec, rng?: Rng): Uint8Array {
    const e = this.residual;
    for (let i = 0; i < e.length; i++) e[i] = (e[i] as number) + (delta[i] as number);
    const bytes = this.codec.encode(Float32Array.from(e), rng);
    const sent = this.codec.decode(bytes, this.length);
    for (let i = 0; i < e.length; i++) e[i] = (e[i] as number) - (sent[i] as number);
    return bytes;
  }

  residualNorm(): number {
    let s = 0;
    for (const x of this.residual) s += x * x;
    return Math.sqrt(s);
  }
}
