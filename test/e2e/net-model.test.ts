// /cohort/model/1 between real libp2p peers on 127.0.0.1: every rejection reaches the sender with its reason,
// the receiver keeps serving, a sender killed mid-transfer (a separate process) leaves nothing behind, and pull works.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerId } from '@libp2p/interface';
import { makeConsortium, startLocalNodes, connectAll } from '../../src/net/local-consortium.ts';
import { makeHeader, MODEL_PROTOCOL, sha256Hex, type ModelHeader } from '../../src/net/model-exchange.ts';
import { encodeFrame, StreamReader } from '../../src/net/stream-io.ts';
import type { CohortNode } from '../../src/net/node.ts';
import { PeerProcess } from '../../bench/net/spawn.ts';

const MiB = 1024 * 1024;
const SEED = 21;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A misbehaving sender: writes whatever header and body it likes on a raw stream, returns the receiver's answers. */
async function rawPush(from: CohortNode, to: PeerId, header: ModelHeader, body: Uint8Array): Promise<unknown[]> {
  const stream = await from.libp2p.dialProtocol(to, MODEL_PROTOCOL);
  const reader = new StreamReader(stream);
  stream.send(encodeFrame({ op: 'push', header }));
  const answers: unknown[] = [await reader.readFrame()];
  if ((answers[0] as { ok: boolean }).ok) {
    for (let off = 0; off < body.byteLength; off += 256 * 1024) {
      if (!stream.send(body.subarray(off, off + 256 * 1024))) await stream.onDrain().catch(() => undefined);
    }
    await stream.close().catch(() => undefined);
    answers.push(await reader.readFrame());
  }
  await stream.close().catch(() => undefined);
  return answers;
}

describe('model exchange', () => {
  let nodes: CohortNode[] = [];
  let received: ModelHeader[] = [];
  let sender: CohortNode, receiver: CohortNode;
  const header = (bytes: Uint8Array, over: Partial<ModelHeader> = {}): ModelHeader =>
    ({ ...makeHeader({ scenarioId: 's', round: 1, sender: sender.peerId.toString(), layoutHash: 'L1', dtype: 'float32' }, bytes), ...over });

  beforeAll(async () => {
    const c = await makeConsortium(4, SEED); // peer 3 is the child process below
    nodes = await startLocalNodes(c, { only: [0, 1, 2], net: { limits: { maxModelBytes: 8 * MiB, maxInflightModelBytes: 10 * MiB, chunkBytes: 256 * 1024 } } });
    [sender, receiver] = nodes as [CohortNode, CohortNode];
    await connectAll(nodes);
    receiver.models.onModel({
      check: (h) => (h.layoutHash === 'L1' ? { ok: true } : { ok: false, reason: 'wrong-layout', detail: `expected L1, got ${h.layoutHash}` }),
      receive: (h) => { received.push(h); },
    });
  });
  afterAll(async () => { await Promise.all(nodes.map((n) => n.stop())); });

  it('rejects a corrupted body (hash mismatch) and tells the sender', async () => {
    received = [];
    const bytes = new Uint8Array(5 * MiB).fill(1); // >= BIG_BODY: hashed by the body-sink worker
    const h = header(bytes);
    bytes[12345] = 2; // corrupted after the header was made
    expect(await sender.models.send(receiver.peerId, h, bytes)).toMatchObject({ ok: false, reason: 'hash-mismatch' });
    expect(received).toEqual([]);
  });

  it('rejects a wrong layout before reading the body', async () => {
    const bytes = new Uint8Array(1024);
    const ack = await sender.models.send(receiver.peerId, header(bytes, { layoutHash: 'L2' }), bytes);
    expect(ack).toEqual({ ok: false, reason: 'wrong-layout', detail: 'expected L1, got L2' });
  });

  it('rejects an oversized announcement (limit from config) before the body', async () => {
    const bytes = new Uint8Array(9 * MiB);
    expect(await sender.models.send(receiver.peerId, header(bytes), bytes)).toMatchObject({ ok: false, reason: 'too-large' });
  });

  it('rejects a truncated body, a body longer than announced, and a forged sender', async () => {
    received = [];
    const bytes = new Uint8Array(2 * MiB).fill(5);
    const [, truncated] = await rawPush(sender, receiver.peerId, header(bytes), bytes.subarray(0, MiB));
    expect(truncated).toMatchObject({ ok: false, reason: 'truncated' });
    const [, oversized] = await rawPush(sender, receiver.peerId, header(bytes.subarray(0, MiB)), bytes);
    expect(oversized).toMatchObject({ ok: false, reason: 'oversized' });
    const [early] = await rawPush(sender, receiver.peerId, header(bytes, { sender: nodes[2]!.peerId.toString() }), bytes);
    expect(early).toMatchObject({ ok: false, reason: 'wrong-sender' });
    expect(received).toEqual([]);
    const r = receiver.metrics().rejections;
    expect(r['model:truncated']).toBe(1);
    expect(r['model:oversized']).toBe(1);
  });

  it('refuses a push as busy while others fill the in-flight limit, and frees it when they end', async () => {
    const stalled = new Uint8Array(6 * MiB);
    const stream = await nodes[2]!.libp2p.dialProtocol(receiver.peerId, MODEL_PROTOCOL);
    const reader = new StreamReader(stream);
    stream.send(encodeFrame({ op: 'push', header: makeHeader({ scenarioId: 's', round: 1, sender: nodes[2]!.peerId.toString(), layoutHash: 'L1', dtype: 'float32' }, stalled) }));
    expect(await reader.readFrame()).toEqual({ ok: true }); // 6 MiB reserved, body never comes
    const bytes = new Uint8Array(5 * MiB);
    expect(await sender.models.send(receiver.peerId, header(bytes), bytes)).toMatchObject({ ok: false, reason: 'busy' });
    stream.abort(new Error('sender gives up'));
    await sleep(300);
    expect(await sender.models.send(receiver.peerId, header(bytes), bytes)).toEqual({ ok: true });
  });

  it('answers a malformed request with bad-header', async () => {
    for (const frame of [{ op: 'steal' }, { op: 'push', header: { scenarioId: 's', round: -1 } }, { op: 'pull', request: { nope: 1 } }]) {
      const stream = await sender.libp2p.dialProtocol(receiver.peerId, MODEL_PROTOCOL);
      const reader = new StreamReader(stream);
      stream.send(encodeFrame(frame));
      expect(await reader.readFrame()).toMatchObject({ ok: false, reason: 'bad-header' });
      await stream.close();
    }
  });

  it('still accepts a good model afterwards', async () => {
    received = [];
    const bytes = new Uint8Array(5 * MiB).map((_, i) => i % 251);
    expect(await sender.models.send(receiver.peerId, header(bytes, { round: 9 }), bytes)).toEqual({ ok: true });
    expect(received.map((h) => h.round)).toEqual([9]);
  });

  it('serves the current model to a late joiner (pull) and refuses an unknown scenario', async () => {
    const current = new Uint8Array(4 * MiB).map((_, i) => (i * 7) % 256);
    const h = makeHeader({ scenarioId: 's', round: 12, sender: receiver.peerId.toString(), layoutHash: 'L1', dtype: 'float32' }, current);
    receiver.models.onPull((req) => (req.scenarioId === 's' ? { header: h, bytes: current } : undefined));
    const late = nodes[2]!;
    const got = await late.models.pull(receiver.peerId, { scenarioId: 's' });
    expect(got.header.round).toBe(12);
    expect(sha256Hex(got.bytes)).toBe(h.sha256);
    await expect(late.models.pull(receiver.peerId, { scenarioId: 'nope' })).rejects.toMatchObject({ code: 'MODEL_PULL_REJECTED' });
    await expect(late.models.pull(receiver.peerId, { scenarioId: 's', layoutHash: 'L2' })).rejects.toMatchObject({ code: 'MODEL_PULL_INVALID', message: expect.stringContaining('wrong-layout') });
  });

  it('a sender killed mid-transfer leaves the receiver clean and serving', async () => {
    received = [];
    const child = await PeerProcess.start({ seed: SEED, n: 4, index: 3 });
    try {
      await child.request({ op: 'dial', addrs: [receiver.multiaddrs()[0]] }, 'dialed');
      const before = receiver.metrics().rejections;
      const sent = child.wait('sent', 30_000, (e) => Number(e.bytes) >= 1 * MiB);
      child.send({ op: 'trickle', to: receiver.peerId.toString(), bytes: 6 * MiB, delayMs: 20 });
      await sent;
      child.kill();
      const failures = (r: Record<string, number>) => (r['model:stream-error'] ?? 0) + (r['model:truncated'] ?? 0);
      const end = Date.now() + 15_000;
      while (failures(receiver.metrics().rejections) === failures(before) && Date.now() < end) await sleep(50);
      expect(failures(receiver.metrics().rejections)).toBe(failures(before) + 1);
      expect(received).toEqual([]);
      const modelStreams = receiver.libp2p.getConnections().flatMap((c) => c.streams).filter((s) => s.protocol === MODEL_PROTOCOL);
      expect(modelStreams).toEqual([]);
      const bytes = new Uint8Array(MiB).fill(9);
      expect(await sender.models.send(receiver.peerId, header(bytes, { round: 10 }), bytes)).toEqual({ ok: true });
      expect(received.map((h) => h.round)).toEqual([10]);
    } finally {
      child.kill();
    }
  });
});
