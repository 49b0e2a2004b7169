/**
 * Where a received model body goes: one preallocated buffer plus its sha256, computed while the body arrives.
 *
 * API: openBodySink(byteLength): BodySink
 *   sink.bytes               — the destination (exactly byteLength bytes)
 *   sink.write(chunk)        — append the next chunk (the caller checks the size limit first)
 *   await sink.digest()      — sha256 hex of everything written
 *   sink.drop()              — abandon (truncated, oversized, stream error)
 *
 * Why a worker: on the receiving peer one thread does TCP, Noise decryption, yamux and the copy. Profiles of a 64 MiB transfer
 * showed two costs that need not be on that thread: sha256 (~7% of it) and the page faults of the first write into a fresh
 * 64 MiB buffer (~14%: the copy into never-touched memory ran at ~0.7 GB/s, into touched memory at ~4 GB/s). Bodies from
 * BIG_BODY bytes up therefore live in a SharedArrayBuffer: a background worker touches its pages ahead of the writer (with an
 * atomic compare-and-swap of 0 by 0, which never changes a byte the writer already stored) and hashes each range once it is
 * written. Smaller bodies, or a process where the worker cannot start, use an ordinary buffer and hash inline;
 * COHORT_NET_BODY_WORKER=0 forces that (for comparisons, or where worker threads are unwelcome).
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { logger } from '../util/log.ts';

const log = logger('net:body');

/** Bodies at least this large go to the worker; below it the messaging costs more than it saves. */
export const BIG_BODY = 4 * 1024 * 1024;
/** Tell the worker about new bytes at most this often (8 messages for a 64 MiB body: each message costs ~0.3 ms on a busy machine). */
const HASH_STEP = 8 * 1024 * 1024;

export interface BodySink {
  readonly bytes: Uint8Array;
  write(chunk: Uint8Array): void;
  digest(): Promise<string>;
  drop(): void;
}

export function openBodySink(byteLength: number): BodySink {
  if (byteLength >= BIG_BODY && process.env.COHORT_NET_BODY_WORKER !== '0') {
    const helper = HashHelper.get();
    if (helper) return new SharedSink(helper, byteLength);
  }
  return new InlineSink(byteLength);
}

class InlineSink implements BodySink {
  readonly bytes: Uint8Array;
  private readonly hash: Hash = createHash('sha256');
  private filled = 0;
  constructor(byteLength: number) { this.bytes = new Uint8Array(byteLength); }
  write(chunk: Uint8Array): void {
    this.bytes.set(chunk, this.filled);
    this.hash.update(chunk);
    this.filled += chunk.byteLength;
  }
  digest(): Promise<string> { return Promise.resolve(this.hash.digest('hex')); }
  drop(): void { /* nothing held outside this object */ }
}

class SharedSink implements BodySink {
  readonly bytes: Uint8Array;
  private readonly id: number;
  private filled = 0;
  private told = 0;
  constructor(private readonly helper: HashHelper, byteLength: number) {
    const sab = new SharedArrayBuffer(byteLength);
    this.bytes = new Uint8Array(sab);
    this.id = helper.open(sab);
  }
  write(chunk: Uint8Array): void {
    this.bytes.set(chunk, this.filled);
    this.filled += chunk.byteLength;
    if (this.filled - this.told >= HASH_STEP) {
      this.helper.hashTo(this.id, this.filled);
      this.told = this.filled;
    }
  }
  async digest(): Promise<string> {
    try {
      return await this.helper.digest(this.id, this.filled);
    } catch (e) {
      // the worker died: the bytes are all here, hash them on this thread
      log.warn({ err: (e as Error).message }, 'hash worker failed; hashing inline');
      return createHash('sha256').update(this.bytes.subarray(0, this.filled)).digest('hex');
    }
  }
  drop(): void { this.helper.drop(this.id); }
}

/** The worker's code (plain CommonJS: it runs without the TypeScript loader). Messages are handled in order. */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const jobs = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'open') {
    const view = new Uint8Array(m.sab);
    jobs.set(m.id, { view, hash: createHash('sha256'), at: 0 });
    // touch every page before the writer gets there; compareExchange(0 -> 0) never alters a byte already written
    for (let i = 0; i < view.length; i += 4096) Atomics.compareExchange(view, i, 0, 0);
    return;
  }
  const job = jobs.get(m.id);
  if (!job) return;
  if (m.op === 'drop') { jobs.delete(m.id); return; }
  Atomics.load(job.view, 0); // orders our reads after the writer's stores (the message was sent after them)
  if (m.end > job.at) { job.hash.update(job.view.subarray(job.at, m.end)); job.at = m.end; }
  if (m.op === 'digest') { jobs.delete(m.id); parentPort.postMessage({ id: m.id, hex: job.hash.digest('hex') }); }
});
`;

type WorkerMsg = { op: 'open'; id: number; sab: SharedArrayBuffer } | { op: 'hash' | 'digest'; id: number; end: number } | { op: 'drop'; id: number };

/** One background worker per process, started on first use and never keeping the process alive. */
class HashHelper {
  private static instance: HashHelper | undefined;
  private static failed = false;
  private nextId = 1;
  private dead: Error | undefined;
  private readonly waiting = new Map<number, { resolve: (hex: string) => void; reject: (e: Error) => void }>();

  private constructor(private readonly worker: Worker) {
    worker.unref();
    worker.on('message', (m: { id: number; hex: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (w) w.resolve(m.hex);
      if (this.waiting.size === 0) worker.unref();
    });
    const fail = (e: Error): void => {
      this.dead ??= e;
      HashHelper.instance = undefined;
      HashHelper.failed = true;
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`hash worker exited (${code})`)));
  }

  static get(): HashHelper | undefined {
    if (HashHelper.instance || HashHelper.failed) return HashHelper.instance;
    try {
      HashHelper.instance = new HashHelper(new Worker(WORKER_SOURCE, { eval: true, name: 'cohort-hash' }));
    } catch (e) {
      HashHelper.failed = true;
      log.warn({ err: (e as Error).message }, 'cannot start hash worker; hashing model bodies inline');
    }
    return HashHelper.instance;
  }

  open(sab: SharedArrayBuffer): number {
    const id = this.nextId++;
    this.post({ op: 'open', id, sab });
    return id;
  }
  hashTo(id: number, end: number): void { this.post({ op: 'hash', id, end }); }
  drop(id: number): void { this.post({ op: 'drop', id }); }

  digest(id: number, end: number): Promise<string> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.ref(); // a digest we wait for must keep the process alive until it answers
      this.post({ op: 'digest', id, end });
    });
  }

  private post(m: WorkerMsg): void { this.worker.postMessage(m); }
}
