/**
 * A Cohort peer in its own process, driven by its parent over IPC (bench/net.ts and the e2e tests).
 * argv[2]: JSON { seed, n, index, psk? (hex of the key file), chunkBytes?, maxStreamWindowSize?, initialStreamWindowSize? }
 * Parent -> child: {op:'dial', addrs} | {op:'subscribe', topic} | {op:'receive'} | {op:'trickle', to, bytes, delayMs} |
 *                  {op:'raw-server'} | {op:'stop'}
 * Child -> parent: {ev:'ready', addr, peerId} | {ev:'dialed'} | {ev:'subscribed'} | {ev:'gossip', at, bytes} |
 *                  {ev:'model', at, bytes, ok, decodeMs?} | {ev:'check', codec, ok, worst} | {ev:'raw-port', port, plainPort} | {ev:'header-accepted'} | {ev:'error', message}
 * `at` is performance.timeOrigin + performance.now(): a wall clock with sub-millisecond resolution shared by processes on one host.
 */
import '../../src/util/polyfills.ts';
import { createServer } from 'node:net';
import { peerIdFromString } from '@libp2p/peer-id';
import { makeConsortium, startLocalNodes } from '../../src/net/local-consortium.ts';
import { encodeFrame } from '../../src/net/stream-io.ts';
import { MODEL_PROTOCOL, makeHeader } from '../../src/net/model-exchange.ts';
import { openBodySink, type BodySink } from '../../src/net/body-sink.ts';
import type { CohortNode } from '../../src/net/node.ts';
import { makeCodec, type CodecName } from '../../src/averaging/compression.ts';
import type { ModelHeader } from '../../src/net/model-exchange.ts';
import { benchModel, checkBound } from './model.ts';

interface Args { seed: number; n: number; index: number; psk?: string; chunkBytes?: number; maxStreamWindowSize?: number; initialStreamWindowSize?: number }
type Cmd =
  | { op: 'dial'; addrs: string[] }
  | { op: 'subscribe'; topic: string }
  | { op: 'receive' }
  | { op: 'trickle'; to: string; bytes: number; delayMs: number; layoutHash?: string }
  | { op: 'raw-server' }
  | { op: 'stop' };

const now = (): number => performance.timeOrigin + performance.now();
const tell = (msg: Record<string, unknown>): void => { process.send?.(msg); };

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const consortium = await makeConsortium(args.n, args.seed);
const [node] = await startLocalNodes(consortium, {
  only: [args.index],
  psk: args.psk ? new Uint8Array(Buffer.from(args.psk, 'hex')) : undefined,
  net: { limits: { chunkBytes: args.chunkBytes ?? 1024 * 1024, maxModelBytes: 1024 * 1024 * 1024, maxGossipBytes: 4 * 1024 * 1024 } },
  node: args.maxStreamWindowSize ? { yamux: { streamOptions: { maxStreamWindowSize: args.maxStreamWindowSize, initialStreamWindowSize: args.initialStreamWindowSize } } } : {},
}) as [CohortNode];

process.on('message', (cmd: Cmd) => {
  handle(cmd).catch((e: unknown) => tell({ ev: 'error', message: (e as Error).message }));
});
tell({ ev: 'ready', addr: node.multiaddrs()[0], peerId: node.peerId.toString() });

async function handle(cmd: Cmd): Promise<void> {
  switch (cmd.op) {
    case 'dial':
      await Promise.all(cmd.addrs.map((a) => node.dial(a)));
      tell({ ev: 'dialed' });
      return;
    case 'subscribe':
      node.pubsub.subscribe(cmd.topic, (m) => tell({ ev: 'gossip', at: now(), type: m.type, sentAt: m.sentAt, rep: (m.body as { rep?: number }).rep }));
      tell({ ev: 'subscribed' });
      return;
    case 'receive':
      node.models.onModel({
        check: () => { tell({ ev: 'header-accepted' }); return { ok: true }; },
        receive: (h, bytes) => {
          const decodeMs = decodeCompressed(h, bytes);
          tell({ ev: 'model', at: now(), bytes: bytes.byteLength, decodeMs });
        },
      });
      tell({ ev: 'receiving' });
      return;
    case 'trickle':
      await trickle(cmd.to, cmd.bytes, cmd.delayMs, cmd.layoutHash ?? 'L1');
      return;
    case 'raw-server':
      tell({ ev: 'raw-port', port: await rawServer(true), plainPort: await rawServer(false) });
      return;
    case 'stop':
      await node.stop();
      process.exit(0);
  }
}

/**
 * A compressed model (header.compression != 'none', meta.params values) is decoded before the receiver answers, so the sender's
 * timing includes the decode. meta.checkSeed asks for a check of the decoded vector against the seeded original (not timed:
 * the bench sends such a transfer only as its warm-up).
 */
function decodeCompressed(h: ModelHeader, bytes: Uint8Array): number | undefined {
  if (h.compression === 'none') return undefined;
  const t0 = performance.now();
  const decoded = makeCodec(h.compression as CodecName).decode(bytes, Number(h.meta?.params));
  const ms = performance.now() - t0;
  if (h.meta?.checkSeed !== undefined) {
    const r = checkBound(h.compression, benchModel(Number(h.meta.checkSeed), decoded.length), decoded);
    tell({ ev: 'check', codec: h.compression, ok: r.ok, worst: r.worst });
  }
  return ms;
}

/** A sender that announces `bytes` and then sends them slowly, so that the parent can kill it mid-transfer. */
async function trickle(to: string, total: number, delayMs: number, layoutHash: string): Promise<void> {
  const body = new Uint8Array(total).fill(3);
  const header = makeHeader({ scenarioId: 'kill', round: 1, sender: node.peerId.toString(), layoutHash, dtype: 'float32' }, body);
  const stream = await node.libp2p.dialProtocol(peerIdFromString(to), MODEL_PROTOCOL);
  stream.send(encodeFrame({ op: 'push', header }));
  for (let off = 0; off < total; off += 64 * 1024) {
    if (!stream.send(body.subarray(off, off + 64 * 1024))) await stream.onDrain();
    tell({ ev: 'sent', bytes: off + 64 * 1024 });
    await new Promise((r) => setTimeout(r, delayMs));
  }
}

/**
 * Raw TCP baseline: read the announced length, put the body into the same body sink the model receiver uses (preallocated
 * buffer + sha256, src/net/body-sink.ts), ack 1 byte once the digest is ready. With work=false it only counts bytes: the
 * transport alone. (COHORT_NET_BODY_WORKER=0 makes both receivers copy and hash inline, as before the worker existed.)
 */
function rawServer(work: boolean): Promise<number> {
  const server = createServer((sock) => {
    let expected = -1;
    let sink: BodySink | undefined;
    let filled = 0;
    let head = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      if (expected < 0) {
        head = Buffer.concat([head, chunk]);
        if (head.length < 8) return;
        expected = Number(head.readBigUInt64BE(0));
        sink = work ? openBodySink(expected) : undefined;
        chunk = head.subarray(8);
      }
      sink?.write(chunk);
      filled += chunk.length;
      if (filled >= expected) {
        const done = sink ? sink.digest() : Promise.resolve('');
        expected = -1; filled = 0; head = Buffer.alloc(0); sink = undefined;
        void done.then(() => sock.write(Buffer.from([1])));
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}
