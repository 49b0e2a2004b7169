// Codecs round-trip within their stated bounds; the wire format round-trips and refuses garbage.
import { describe, expect, it } from 'vitest';
import { ErrorFeedback, decodeMessage, encodeMessage, fromHalf, makeCodec, toHalf, wireSize, type ModelMessage } from '../../src/averaging/index.ts';
import { CohortError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/random.ts';

function vector(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

const norm2 = (v: ArrayLike<number>): number => Array.from(v).reduce((a, x) => a + x * x, 0);

describe('codecs', () => {
  it('f32 and f64 are exact, and report 4 and 8 bytes per value', () => {
    const v = vector(1000, 1);
    for (const [name, bytes] of [['f32', 4], ['f64', 8]] as const) {
      const c = makeCodec(name);
      const enc = c.encode(v);
      expect(enc.byteLength).toBe(bytes * v.length);
      expect(Array.from(c.decode(enc, v.length))).toEqual(Array.from(v));
    }
  });

  it('fp16: relative error <= 2^-11 in the normal range, 2 bytes per value, specials kept', () => {
    const v = vector(5000, 2, 10);
    const c = makeCodec('fp16');
    const enc = c.encode(v);
    expect(enc.byteLength).toBe(2 * v.length);
    const d = c.decode(enc, v.length);
    for (let i = 0; i < v.length; i++) {
      const bound = Math.abs(v[i]!) >= 2 ** -14 ? Math.abs(v[i]!) * 2 ** -11 : 2 ** -25;
      expect(Math.abs(d[i]! - v[i]!)).toBeLessThanOrEqual(bound);
    }
    expect(fromHalf(toHalf(65504))).toBe(65504);
    expect(fromHalf(toHalf(1e6))).toBe(Infinity);
    expect(Number.isNaN(fromHalf(toHalf(Number.NaN)))).toBe(true);
    expect(fromHalf(toHalf(2 ** -24))).toBe(2 ** -24);
  });

  it('int8: per-block error <= max|block|/127, unbiased, ~1 byte per value', () => {
    const n = 1024;
    const v = vector(n, 3);
    v[7] = 40; // one large value only coarsens its own block
    const c = makeCodec('int8', { blockSize: 128 });
    const rng = new Rng(4);
    const enc = c.encode(v, rng);
    expect(enc.byteLength).toBe(n + 4 * (n / 128));
    const d = c.decode(enc, n);
    for (let b = 0; b < n / 128; b++) {
      const block = v.subarray(b * 128, (b + 1) * 128);
      const scale = Math.max(...Array.from(block, Math.abs)) / 127;
      for (let i = b * 128; i < (b + 1) * 128; i++) expect(Math.abs(d[i]! - v[i]!)).toBeLessThanOrEqual(scale * 1.000001);
    }
    // unbiased: the mean of many stochastic encodings approaches v far closer than one encoding's error
    const reps = 400;
    const acc = new Float64Array(n);
    for (let r = 0; r < reps; r++) c.decode(c.encode(v, rng), n).forEach((x, i) => { acc[i] = acc[i]! + x / reps; });
    const oneShot = norm2(d.map((x, i) => x - v[i]!)) / n;
    const averaged = norm2(acc.map((x, i) => x - v[i]!)) / n;
    expect(averaged).toBeLessThan(oneShot / 50);
    expect(() => c.encode(v)).toThrow(CohortError);
  });

  it('top-k: exact on the kept values, ||v - c||^2 <= (1 - k/d) ||v||^2, 8 bytes per kept value', () => {
    const v = vector(1000, 5);
    const c = makeCodec('topk', { topkFraction: 0.1 });
    const enc = c.encode(v);
    expect(enc.byteLength).toBe(4 + 8 * 100);
    const d = c.decode(enc, v.length);
    const kept = Array.from(d).filter((x) => x !== 0).length;
    expect(kept).toBe(100);
    d.forEach((x, i) => { if (x !== 0) expect(x).toBe(v[i]); });
    expect(norm2(d.map((x, i) => v[i]! - x))).toBeLessThanOrEqual((1 - 0.1) * norm2(v));
    const minKept = Math.min(...Array.from(d).filter((x) => x !== 0).map(Math.abs));
    const maxDropped = Math.max(...Array.from(v).filter((_, i) => d[i] === 0).map(Math.abs));
    expect(minKept).toBeGreaterThanOrEqual(maxDropped);
  });

  it('error feedback: the decoded sum tracks the sum of the deltas up to the (bounded) residual', () => {
    const n = 500;
    const ef = new ErrorFeedback(makeCodec('topk', { topkFraction: 0.05 }), n);
    const codec = makeCodec('topk', { topkFraction: 0.05 });
    const given = new Float64Array(n);
    const sent = new Float64Array(n);
    for (let r = 0; r < 60; r++) {
      const delta = vector(n, 100 + r, 0.1);
      delta.forEach((x, i) => { given[i] = given[i]! + x; });
      codec.decode(ef.encode(delta), n).forEach((x, i) => { sent[i] = sent[i]! + x; });
    }
    const gap = Math.sqrt(norm2(given.map((x, i) => x - sent[i]!)));
    expect(gap).toBeCloseTo(ef.residualNorm(), 4);
    expect(gap).toBeLessThan(0.5 * Math.sqrt(norm2(given)));
  });

  it('malformed payloads throw CohortError', () => {
    expect(() => makeCodec('f32').decode(new Uint8Array(7), 2)).toThrow(/malformed/);
    expect(() => makeCodec('topk').decode(new Uint8Array([1, 0, 0, 0, 9, 9, 9, 9, 0, 0, 0, 0]), 4)).toThrow(CohortError);
    expect(() => makeCodec('int8').decode(new Uint8Array(3), 100)).toThrow(CohortError);
    expect(() => makeCodec('zip' as never)).toThrow(/unknown compression/);
  });
});

describe('wire format', () => {
  it('round-trips a model message and counts its bytes', () => {
    const payload = makeCodec('fp16').encode(vector(64, 6));
    const msg: ModelMessage = { kind: 'model', scenario: 's1', round: 3, layoutHash: 'abc', codec: 'fp16', payload, weight: 2.5, degree: 3, participants: ['a', 'b'], purpose: 'exchange' };
    const bytes = encodeMessage(msg);
    expect(bytes.byteLength).toBe(wireSize(msg));
    const back = decodeMessage(bytes) as ModelMessage;
    expect(back).toMatchObject({ kind: 'model', scenario: 's1', round: 3, layoutHash: 'abc', weight: 2.5, participants: ['a', 'b'] });
    expect(Array.from(back.payload)).toEqual(Array.from(payload));
    expect(decodeMessage(encodeMessage({ kind: 'ack', scenario: 's', round: 1, layoutHash: 'h', shareId: 'x' }))).toMatchObject({ kind: 'ack' });
  });

  it('refuses garbage with a CohortError', () => {
    expect(() => decodeMessage(new Uint8Array([1, 2]))).toThrow(CohortError);
    expect(() => decodeMessage(new Uint8Array([200, 0, 0, 0, 1]))).toThrow(/exceeds/);
    const head = new TextEncoder().encode('{"kind":"model","round":"x"}');
    const bad = new Uint8Array(4 + head.length);
    new DataView(bad.buffer).setUint32(0, head.length, true);
    bad.set(head, 4);
    expect(() => decodeMessage(bad)).toThrow(/malformed/);
  });
});
