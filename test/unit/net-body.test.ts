import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { BIG_BODY, openBodySink } from '../../src/net/body-sink.ts';
import { Rng } from '../../src/util/random.ts';

const MiB = 1024 * 1024;

function randomBytes(n: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(256);
  return out;
}

/** Feed `body` in uneven chunks (as a stream delivers them), starting each chunk at a seeded random size. */
function chunks(body: Uint8Array, seed: number): Uint8Array[] {
  const rng = new Rng(seed);
  const out: Uint8Array[] = [];
  for (let off = 0; off < body.byteLength;) {
    const n = Math.min(body.byteLength - off, 1 + rng.int(300_000));
    out.push(body.subarray(off, off + n));
    off += n;
  }
  return out;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('body sink (receiver buffer + sha256 while receiving)', () => {
  afterEach(() => { delete process.env.COHORT_NET_BODY_WORKER; });

  it('a large body lands intact in shared memory and the worker hashes it right', async () => {
    const body = randomBytes(BIG_BODY + 3 * MiB + 17, 1);
    const sink = openBodySink(body.byteLength);
    expect(sink.bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
    for (const c of chunks(body, 2)) sink.write(c);
    expect(await sink.digest()).toBe(sha(body));
    expect(Buffer.compare(Buffer.from(sink.bytes), Buffer.from(body))).toBe(0);
  });

  it('keeps concurrent bodies apart, and a dropped one does not disturb the others', async () => {
    const a = randomBytes(BIG_BODY + MiB, 3);
    const b = randomBytes(BIG_BODY + 2 * MiB, 4);
    const [sa, sb, sc] = [openBodySink(a.byteLength), openBodySink(b.byteLength), openBodySink(a.byteLength)];
    const ca = chunks(a, 5);
    const cb = chunks(b, 6);
    for (let i = 0; i < Math.max(ca.length, cb.length); i++) {
      if (ca[i]) { sa.write(ca[i]!); sc.write(ca[i]!); }
      if (cb[i]) sb.write(cb[i]!);
    }
    sc.drop();
    expect(await Promise.all([sa.digest(), sb.digest()])).toEqual([sha(a), sha(b)]);
  });

  it('a changed byte changes the digest (the check can fail)', async () => {
    const body = randomBytes(BIG_BODY, 7);
    const sink = openBodySink(body.byteLength);
    for (const c of chunks(body, 8)) sink.write(c);
    sink.bytes[BIG_BODY - 1] ^= 1; // after the last hash step was sent: the worker hashes what is in memory at digest time
    const tampered = Uint8Array.from(body);
    tampered[BIG_BODY - 1] ^= 1;
    expect(await sink.digest()).toBe(sha(tampered));
    expect(sha(tampered)).not.toBe(sha(body));
  });

  it('small bodies, and COHORT_NET_BODY_WORKER=0, hash inline in an ordinary buffer', async () => {
    const small = randomBytes(100_000, 9);
    const s1 = openBodySink(small.byteLength);
    expect(s1.bytes.buffer).toBeInstanceOf(ArrayBuffer);
    for (const c of chunks(small, 10)) s1.write(c);
    expect(await s1.digest()).toBe(sha(small));

    process.env.COHORT_NET_BODY_WORKER = '0';
    const big = randomBytes(BIG_BODY, 11);
    const s2 = openBodySink(big.byteLength);
    expect(s2.bytes.buffer).toBeInstanceOf(ArrayBuffer);
    for (const c of chunks(big, 12)) s2.write(c);
    expect(await s2.digest()).toBe(sha(big));
  });
});
