// sendAll honours backpressure on a real libp2p 3 stream (TCP + Noise + Yamux on loopback): however slow the reader, the sender
// never queues more than a few chunks. Before stream-io.ts's waitForDrain, @libp2p/utils' onDrain() resolved at once after the
// first drain and a 32 MiB send queued ~31 MiB in the stream's write buffer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stream } from '@libp2p/interface';
import { connectAll, makeConsortium, startLocalNodes } from '../../src/net/local-consortium.ts';
import type { CohortNode } from '../../src/net/node.ts';
import { sendAll, StreamReader } from '../../src/net/stream-io.ts';
import { sha256Hex } from '../../src/util/hash.ts';

const MiB = 1024 * 1024;
const PROTOCOL = '/cohort-test/slow-reader/1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('sendAll backpressure', () => {
  let nodes: CohortNode[] = [];
  beforeAll(async () => {
    nodes = await startLocalNodes(await makeConsortium(2, 21));
    await connectAll(nodes);
  }, 60_000);
  afterAll(async () => { await Promise.all(nodes.map((n) => n.stop())); });

  it('keeps at most a few chunks queued for a slow reader, and the bytes arrive intact', async () => {
    const body = new Uint8Array(32 * MiB);
    for (let i = 0; i < body.length; i += 997) body[i] = (i * 31) & 255;
    const received: Uint8Array[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => { done = r; });
    await nodes[1]!.libp2p.handle(PROTOCOL, async (stream: Stream) => {
      const reader = new StreamReader(stream);
      // a slow consumer: yamux's window fills, the sender must wait for window updates instead of queueing
      for (let chunk = await reader.next(); chunk; chunk = await reader.next()) {
        received.push(chunk.slice());
        await sleep(2);
      }
      await stream.close();
      done();
    });
    const stream = await nodes[0]!.libp2p.dialProtocol(nodes[1]!.peerId, PROTOCOL);
    let maxQueued = 0;
    await sendAll(stream, body, 1 * MiB, () => { maxQueued = Math.max(maxQueued, stream.writeBufferLength); });
    await stream.close();
    await finished;
    expect(maxQueued).toBeLessThanOrEqual(4 * MiB);
    const all = Buffer.concat(received);
    expect(all.byteLength).toBe(body.byteLength);
    expect(sha256Hex(all)).toBe(sha256Hex(body));
  }, 180_000);
});
