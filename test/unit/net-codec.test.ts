// Wire formats without a network: gossip envelopes, canonical JSON, frames, and the pnet cipher slicing fix.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import xsalsa20 from 'xsalsa20';
import { decodeGossip, registerGossipType, scenarioTopic, topics } from '../../src/net/pubsub.ts';
import { canonicalJson } from '../../src/util/canonical.ts';
import { encodeFrame } from '../../src/net/stream-io.ts';
import { slicedCipher } from '../../src/net/pnet.ts';
import { Rng } from '../../src/util/random.ts';

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

describe('gossip envelopes', () => {
  it('accepts registered, valid messages and names the reason for the rest', () => {
    expect(decodeGossip(enc({ v: 1, type: 'progress', body: { scenarioId: 's', round: 3, loss: 0.2, extra: 'kept' }, sentAt: 1 })))
      .toEqual({ ok: true, msg: { type: 'progress', body: { scenarioId: 's', round: 3, loss: 0.2, extra: 'kept' }, sentAt: 1 } });
    expect(decodeGossip(enc('{'))).toEqual({ ok: false, reason: 'not-json' });
    expect(decodeGossip(enc({ v: 2, type: 'progress', body: {}, sentAt: 1 }))).toEqual({ ok: false, reason: 'envelope' });
    expect(decodeGossip(enc({ v: 1, type: 'gossip-of-the-day', body: {}, sentAt: 1 }))).toEqual({ ok: false, reason: 'unknown-type' });
    expect(decodeGossip(enc({ v: 1, type: 'progress', body: { scenarioId: 's', round: -1 }, sentAt: 1 }))).toEqual({ ok: false, reason: 'schema' });
  });

  it('lets another layer register its own types', () => {
    registerGossipType('test-ping', z.object({ n: z.number() }));
    expect(decodeGossip(enc({ v: 1, type: 'test-ping', body: { n: 1 }, sentAt: 1 })).ok).toBe(true);
    expect(decodeGossip(enc({ v: 1, type: 'test-ping', body: { n: 'x' }, sentAt: 1 }))).toEqual({ ok: false, reason: 'schema' });
  });

  it('namespaces topics by consortium and scenario', () => {
    expect(topics('c1').announce).toBe('/cohort/c1/announce/1');
    expect(scenarioTopic('c1', 's9')).toBe('/cohort/c1/scenario/s9/1');
  });
});

describe('encodings', () => {
  it('canonical JSON sorts keys at every depth and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: undefined, b: 'x' }] })).toBe('{"a":[{"b":"x","d":2}],"b":1}');
  });

  it('frames carry a big-endian length prefix', () => {
    const f = encodeFrame({ ok: true });
    expect(new DataView(f.buffer).getUint32(0)).toBe(f.byteLength - 4);
    expect(JSON.parse(new TextDecoder().decode(f.subarray(4)))).toEqual({ ok: true });
  });
});

describe('pnet cipher slicing', () => {
  it('is byte-identical to feeding the whole buffer at once, whatever the boundaries', () => {
    const rng = new Rng(5);
    const nonce = Uint8Array.from({ length: 24 }, () => rng.int(256));
    const key = Uint8Array.from({ length: 32 }, () => rng.int(256));
    const data = Uint8Array.from({ length: 300_001 }, () => rng.int(256));
    const whole = xsalsa20(nonce, key).update(data);
    const sliced = slicedCipher(xsalsa20(nonce, key));
    const parts = [sliced.update(data.subarray(0, 7)), sliced.update(data.subarray(7, 200_003)), sliced.update(data.subarray(200_003))];
    expect(Buffer.concat(parts).equals(Buffer.from(whole))).toBe(true);
  });
});
