/**
 * `cohort bench net`: model transfer between two peer processes over Noise+Yamux and over pnet+Noise+Yamux, each against raw TCP
 * (node:net) measured in the same run, with and without the receiver work (buffer + sha256); and gossip latency (1 KiB, 1 MiB)
 * from one peer until all 15 others (separate processes) have it. Medians of several runs; raw and libp2p runs interleave so that
 * background load hits both alike.
 * Columns: MiBps (libp2p), raw_MiBps (raw TCP, receiver only counts bytes), ratio = MiBps / raw_MiBps; raw_work_MiBps (raw TCP
 * whose receiver puts the body through the same body sink as the model receiver: buffer + sha256), ratio_vs_work.
 * Compressed rows (Noise+Yamux only, interleaved with the rows above): the same 64 MiB model (16 Mi seeded normal float32 values)
 * encoded by the sender with the int8 and fp16 codecs (src/averaging/compression.ts), pushed over /cohort/model/1 with the codec
 * named in the header, decoded by the receiver before it acks; timed from encode to ack. model_MiBps = 64 MiB (fp32-equivalent) /
 * that time; vs_raw_fp32 = model_MiBps / raw_MiBps (plain raw TCP fp32, same run); vs_noise_fp32 = model_MiBps / MiBps. The warm-up
 * transfer of each codec asks the receiver to check the decoded vector against the codec's error bound (error_check).
 * Env: COHORT_BENCH_NET_SWEEP=1 adds rows for chunk sizes and yamux windows (the investigation written up in docs/network.md);
 * COHORT_BENCH_NET_REPS=N repetitions; COHORT_BENCH_NET_ONLY=transfer|gossip; COHORT_NET_BODY_WORKER=0, COHORT_NET_NOISE_FIX=0 and COHORT_NET_TCP_BATCH=0
 * switch the receive fixes off in every process (the "before" figures).
 */
import '../src/util/polyfills.ts';
import { connect } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { generateKey } from '@libp2p/pnet';
import { peerIdFromString } from '@libp2p/peer-id';
import { median, type BenchSuite } from './suite.ts';
import { makeConsortium, startLocalNodes } from '../src/net/local-consortium.ts';
import { makeHeader } from '../src/net/model-exchange.ts';
import type { CohortNode } from '../src/net/node.ts';
import { Rng } from '../src/util/random.ts';
import { makeCodec, type CodecName } from '../src/averaging/compression.ts';
import { PeerProcess } from './net/spawn.ts';
import { benchModel, MODEL_PARAMS } from './net/model.ts';

const MiB = 1024 * 1024;
const SEED = 77;
const now = (): number => performance.timeOrigin + performance.now();

interface Variant { stack: string; pnet: boolean; chunkBytes: number; window?: number; initialWindow?: number; codecs?: CodecName[] }

const DTYPE: Partial<Record<CodecName, 'int8' | 'float16'>> = { int8: 'int8', fp16: 'float16' };

interface CompressedRun { modelMiBps: number; wireBytes: number; encodeMs: number; decodeMs: number }

/** Encode (sender), push with the codec in the header, receiver decodes and acks: the whole path, timed. */
async function compressedOnce(node: CohortNode, child: PeerProcess, model: Float32Array, codec: CodecName, rng: Rng, checkSeed?: number): Promise<CompressedRun> {
  const t0 = performance.now();
  const bytes = makeCodec(codec).encode(model, rng);
  const encodeMs = performance.now() - t0;
  const meta: Record<string, number> = { params: model.length, ...(checkSeed === undefined ? {} : { checkSeed }) };
  const header = makeHeader({ scenarioId: 'bench', round: 0, sender: node.peerId.toString(), layoutHash: 'L', dtype: DTYPE[codec] ?? 'bytes', compression: codec, meta }, bytes);
  const arrived = child.wait('model', 60_000, (e) => e.bytes === bytes.byteLength);
  const ack = await node.models.send(peerIdFromString(child.peerId), header, bytes);
  const s = (performance.now() - t0) / 1000;
  if (!ack.ok) throw new Error(`compressed transfer rejected: ${ack.reason} ${ack.detail ?? ''}`);
  const ev = await arrived;
  return { modelMiBps: (model.byteLength / MiB) / s, wireBytes: bytes.byteLength, encodeMs, decodeMs: Number(ev.decodeMs) };
}

/** The warm-up of each codec: receiver checks the decoded vector against the codec's bound (correctness, not timing). */
async function checkedWarmup(node: CohortNode, child: PeerProcess, model: Float32Array, codec: CodecName, rng: Rng): Promise<{ ok: boolean; worst: number }> {
  const checked = child.wait('check', 120_000, (e) => e.codec === codec);
  await compressedOnce(node, child, model, codec, rng, SEED);
  const ev = await checked;
  return { ok: Boolean(ev.ok), worst: round(Number(ev.worst), 4) };
}

function compressedRow(v: Variant, codec: CodecName, runs: CompressedRun[], check: { ok: boolean; worst: number }, fp32: { MiBps: number; plainMiBps: number }): Record<string, unknown> {
  const modelMiBps = median(runs.map((r) => r.modelMiBps));
  const wireBytes = runs[0]!.wireBytes;
  return {
    stack: `${v.stack} ${codec}`, codec, model_MiBps: round(modelMiBps), model_bytes: MODEL_PARAMS * 4, wire_bytes: wireBytes,
    wire_ratio: round(wireBytes / (MODEL_PARAMS * 4), 4),
    vs_raw_fp32: round(modelMiBps / fp32.plainMiBps, 3), vs_noise_fp32: round(modelMiBps / fp32.MiBps, 3),
    raw_fp32_MiBps: round(fp32.plainMiBps), noise_fp32_MiBps: round(fp32.MiBps),
    encode_ms: round(median(runs.map((r) => r.encodeMs))), decode_ms: round(median(runs.map((r) => r.decodeMs))),
    error_check: { ...check, bound: codec === 'int8' ? '|err| <= max|block of 256|/127' : '|err| <= 2^-11 |v| (normal), 2^-25 near 0' },
    reps: runs.length, runs_model_MiBps: runs.map((r) => round(r.modelMiBps)),
  };
}

/** Raw TCP: length prefix, body in chunkBytes writes with backpressure, wait for the receiver's 1-byte ack. MiB/s. */
async function rawOnce(port: number, body: Uint8Array, chunkBytes: number): Promise<number> {
  const sock = connect(port, '127.0.0.1');
  await new Promise<void>((r, j) => { sock.once('connect', () => r()); sock.once('error', j); });
  sock.setNoDelay(true);
  const acked = new Promise<void>((r) => sock.once('data', () => r()));
  const t0 = performance.now();
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(body.byteLength));
  sock.write(len);
  for (let off = 0; off < body.byteLength; off += chunkBytes) {
    if (!sock.write(body.subarray(off, off + chunkBytes))) await new Promise((r) => sock.once('drain', r));
  }
  await acked;
  const s = (performance.now() - t0) / 1000;
  sock.destroy();
  return body.byteLength / MiB / s;
}

async function libp2pOnce(node: CohortNode, to: string, body: Uint8Array, header: ReturnType<typeof makeHeader>): Promise<number> {
  const t0 = performance.now();
  const ack = await node.models.send(peerIdFromString(to), header, body);
  if (!ack.ok) throw new Error(`transfer rejected: ${ack.reason}`);
  return body.byteLength / MiB / ((performance.now() - t0) / 1000);
}

async function transferRows(v: Variant, reps: number, model: Float32Array, log: (s: string) => void): Promise<Record<string, unknown>[]> {
  const body = new Uint8Array(model.buffer, model.byteOffset, model.byteLength);
  const pskBytes = v.pnet ? (() => { const k = new Uint8Array(95); generateKey(k); return k; })() : undefined;
  const child = await PeerProcess.start({ seed: SEED, n: 2, index: 1, psk: pskBytes ? Buffer.from(pskBytes).toString('hex') : undefined, chunkBytes: v.chunkBytes, maxStreamWindowSize: v.window, initialStreamWindowSize: v.initialWindow });
  const c = await makeConsortium(2, SEED);
  const [node] = await startLocalNodes(c, {
    only: [0], psk: pskBytes,
    net: { limits: { chunkBytes: v.chunkBytes, maxModelBytes: 1024 * MiB } },
    node: v.window ? { yamux: { streamOptions: { maxStreamWindowSize: v.window, initialStreamWindowSize: v.initialWindow } } } : {},
  });
  try {
    await child.request({ op: 'receive' }, 'receiving');
    const ports = await child.request({ op: 'raw-server' }, 'raw-port');
    const port = Number(ports.port);
    const plainPort = Number(ports.plainPort);
    await node!.dial(child.addr);
    const header = makeHeader({ scenarioId: 'bench', round: 0, sender: node!.peerId.toString(), layoutHash: 'L', dtype: 'float32' }, body);
    await libp2pOnce(node!, child.peerId, body.subarray(0, 8 * MiB), makeHeader({ ...header, compression: 'none' }, body.subarray(0, 8 * MiB))); // warm-up
    const codecs = v.codecs ?? [];
    const encRng = new Rng(SEED + 2);
    const checks = new Map<CodecName, { ok: boolean; worst: number }>();
    for (const c of codecs) {
      checks.set(c, await checkedWarmup(node!, child, model, c, encRng));
      log(`  ${c} warm-up: decoded vector within the codec's bound: ${checks.get(c)!.ok} (worst |err|/bound ${checks.get(c)!.worst})`);
    }
    const raw: number[] = [];
    const p2p: number[] = [];
    const plain: number[] = [];
    const comp = new Map<CodecName, CompressedRun[]>(codecs.map((c) => [c, []]));
    for (let i = 0; i < reps; i++) {
      raw.push(await rawOnce(port, body, v.chunkBytes));
      p2p.push(await libp2pOnce(node!, child.peerId, body, header));
      for (const c of codecs) comp.get(c)!.push(await compressedOnce(node!, child, model, c, encRng));
      plain.push(await rawOnce(plainPort, body, v.chunkBytes));
      const compLog = codecs.map((c) => { const r = comp.get(c)!.at(-1)!; return `, ${c} ${r.modelMiBps.toFixed(0)} model-MiB/s (enc ${r.encodeMs.toFixed(0)} ms, dec ${r.decodeMs.toFixed(0)} ms)`; }).join('');
      log(`  ${v.stack} rep ${i + 1}/${reps}: libp2p ${p2p.at(-1)!.toFixed(0)} MiB/s, raw ${plain.at(-1)!.toFixed(0)} MiB/s, raw with receiver work ${raw.at(-1)!.toFixed(0)} MiB/s${compLog}`);
    }
    const MiBps = median(p2p);
    const plainMiBps = median(plain);
    const workMiBps = median(raw);
    return [{
      // ratio: against raw TCP whose receiver does nothing (the bare transport, the target)
      stack: v.stack, MiBps: round(MiBps), raw_MiBps: round(plainMiBps), ratio: round(MiBps / plainMiBps, 3),
      // against raw TCP whose receiver does the model receiver's work (same body sink: buffer + sha256): the transport's own cost
      raw_work_MiBps: round(workMiBps), ratio_vs_work: round(MiBps / workMiBps, 3),
      bytes: body.byteLength, reps, chunkBytes: v.chunkBytes, maxStreamWindowSize: v.window ?? 16 * MiB, initialStreamWindowSize: v.initialWindow ?? 256 * 1024,
      runs_MiBps: p2p.map((x) => round(x)), runs_raw_MiBps: plain.map((x) => round(x)), runs_raw_work_MiBps: raw.map((x) => round(x)),
    }, ...codecs.map((c) => compressedRow(v, c, comp.get(c)!, checks.get(c)!, { MiBps, plainMiBps }))];
  } finally {
    await Promise.all([node!.stop(), child.stop()]);
  }
}

/** One publisher (this process) and 15 subscriber processes, full mesh; time until the last one has the message. */
async function gossipRows(peers: number, reps: number, log: (s: string) => void): Promise<Record<string, unknown>[]> {
  const c = await makeConsortium(peers, SEED + 1);
  const [pub] = await startLocalNodes(c, { only: [0], net: { limits: { maxGossipBytes: 4 * MiB } } });
  const kids: PeerProcess[] = [];
  try {
    for (let i = 1; i < peers; i += 4) {
      const batch = [];
      for (let j = i; j < Math.min(i + 4, peers); j++) batch.push(PeerProcess.start({ seed: SEED + 1, n: peers, index: j }));
      kids.push(...(await Promise.all(batch)));
    }
    log(`  ${kids.length} subscriber processes started`);
    const topic = pub!.topics.heartbeat;
    pub!.pubsub.subscribe(topic, () => undefined);
    for (const [i, k] of kids.entries()) {
      await k.request({ op: 'subscribe', topic }, 'subscribed');
      await k.request({ op: 'dial', addrs: [pub!.multiaddrs()[0], ...kids.slice(0, i).map((o) => o.addr)] }, 'dialed');
    }
    const end = Date.now() + 20_000;
    while (pub!.libp2p.services.pubsub.getSubscribers(topic).length < kids.length && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 2500)); // two gossipsub heartbeats: meshes settle
    log(`  publisher: ${pub!.libp2p.getConnections().length} connections, ${pub!.libp2p.services.pubsub.getSubscribers(topic).length} subscribers`);
    const rows = [];
    for (const size of [1024, MiB]) {
      const lat: number[] = [];
      let missed = 0;
      for (let r = 0; r < reps; r++) {
        const arrivals = kids.map((k) => k.wait('gossip', 20_000, (e) => e.rep === r));
        const t0 = now();
        await pub!.pubsub.publish(topic, { type: 'heartbeat', body: { name: 'bench', pad: 'x'.repeat(size), rep: r } }, { requireRecipients: true });
        const settled = await Promise.allSettled(arrivals);
        const at = settled.flatMap((x) => (x.status === 'fulfilled' ? [Number(x.value.at)] : []));
        missed += settled.length - at.length; // a peer that never got it within 20 s is reported, not hidden
        if (at.length === settled.length) lat.push(Math.max(...at) - t0);
        await new Promise((res) => setTimeout(res, 200));
      }
      log(`  gossip ${size} B to ${kids.length} peers: ${lat.map((x) => x.toFixed(1)).join(', ')} ms; missed deliveries ${missed}`);
      rows.push({ stack: `gossip ${size === 1024 ? '1 KiB' : '1 MiB'} to all of ${peers}`, latency_ms: round(median(lat), 1), runs_ms: lat.map((x) => round(x, 1)), missed_deliveries: missed, peers, reps });
    }
    return rows;
  } finally {
    await Promise.all([pub!.stop(), ...kids.map((k) => k.stop())]);
  }
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const suite: BenchSuite = {
  name: 'net',
  description: '64 MiB model over Noise+Yamux and pnet vs raw TCP (two processes); gossip latency to 16 peers',
  async run(opts) {
    const log = (s: string): void => { if (opts.verbose) process.stderr.write(s + '\n'); };
    const reps = Number(process.env.COHORT_BENCH_NET_REPS ?? (opts.quick ? 2 : 5));
    const loadBefore = loadavg();
    const model = benchModel(SEED); // 16 Mi float32 = 64 MiB, seeded normals: the fp32 rows send its bytes, the codec rows encode it
    const variants: Variant[] = [
      { stack: 'noise+yamux', pnet: false, chunkBytes: MiB, codecs: ['int8', 'fp16'] },
      { stack: 'pnet+noise+yamux', pnet: true, chunkBytes: MiB },
    ];
    if (process.env.COHORT_BENCH_NET_SWEEP === '1') {
      variants.push(
        { stack: 'noise+yamux chunk 64 KiB', pnet: false, chunkBytes: 64 * 1024 },
        { stack: 'noise+yamux chunk 4 MiB', pnet: false, chunkBytes: 4 * MiB },
        { stack: 'noise+yamux window 256 KiB fixed', pnet: false, chunkBytes: MiB, window: 256 * 1024 },
        { stack: 'noise+yamux window 64 MiB max', pnet: false, chunkBytes: MiB, window: 64 * MiB },
        { stack: 'noise+yamux window 4 MiB initial', pnet: false, chunkBytes: MiB, window: 16 * MiB, initialWindow: 4 * MiB },
        { stack: 'noise+yamux window 16 MiB initial', pnet: false, chunkBytes: MiB, window: 16 * MiB, initialWindow: 16 * MiB },
      );
    }
    const rows: Record<string, unknown>[] = [];
    const only = process.env.COHORT_BENCH_NET_ONLY; // 'gossip' | 'transfer': part of the suite, for investigations
    if (only === 'gossip') variants.length = 0;
    for (const v of variants) {
      log(`transfer: ${v.stack}`);
      rows.push(...(await transferRows(v, reps, model, log)));
    }
    if (only !== 'transfer') {
      log('gossip latency');
      rows.push(...(await gossipRows(16, opts.quick ? 2 : 5, log)));
    }
    // the machine is shared: record its load, and whether the receive fixes were switched off for a before/after comparison
    const fixes = { bodyWorker: process.env.COHORT_NET_BODY_WORKER !== '0', noiseFix: process.env.COHORT_NET_NOISE_FIX !== '0', tcpBatch: process.env.COHORT_NET_TCP_BATCH !== '0' };
    return { suite: 'net', rows, model_bytes: model.byteLength, loadavg_start: loadBefore.map((x) => round(x, 2)), loadavg_end: loadavg().map((x) => round(x, 2)), cpus: cpus().length, fixes };
  },
};

export default suite;
