/**
 * Reading and writing on a libp2p 3 stream without copies we do not need: a pull reader over the stream's async iterator
 * (one iterator for the stream's whole life: breaking out of a for-await would end the read side), 4-byte length-prefixed
 * JSON frames for headers and acks, and body writes that honour backpressure.
 */
import type { Stream } from '@libp2p/interface';
import type { Uint8ArrayList } from 'uint8arraylist';
import { CohortError } from '../util/errors.ts';

export class StreamReader {
  private readonly it: AsyncIterator<Uint8Array | Uint8ArrayList>;
  private readonly pending: Uint8Array[] = [];

  constructor(stream: Stream) {
    this.it = (stream as AsyncIterable<Uint8Array | Uint8ArrayList>)[Symbol.asyncIterator]();
  }

  /** The next chunk as it arrived (no copy unless it came as a list), or undefined at the end of the stream. */
  async next(): Promise<Uint8Array | undefined> {
    const queued = this.pending.shift();
    if (queued) return queued;
    const r = await this.it.next();
    if (r.done) return undefined;
    if (r.value instanceof Uint8Array) return r.value;
    // A list of buffers: hand them out one by one instead of concatenating (subarray() on a list copies).
    for (const buf of r.value) if (buf.byteLength > 0) this.pending.push(buf);
    return this.pending.shift() ?? new Uint8Array(0);
  }

  /** Put back the unread tail of a chunk. */
  unshift(chunk: Uint8Array): void {
    if (chunk.byteLength > 0) this.pending.unshift(chunk);
  }

  /** Exactly n bytes, or undefined if the stream ends first. */
  async readExactly(n: number): Promise<Uint8Array | undefined> {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = await this.next();
      if (!chunk) return undefined;
      const take = Math.min(n - filled, chunk.byteLength);
      out.set(chunk.subarray(0, take), filled);
      filled += take;
      this.unshift(chunk.subarray(take));
    }
    return out;
  }

  /** A length-prefixed JSON frame (at most maxBytes), or undefined at the end of the stream. */
  async readFrame(maxBytes = 64 * 1024): Promise<unknown> {
    const len = await this.readExactly(4);
    if (!len) return undefined;
    const n = new DataView(len.buffer, len.byteOffset, 4).getUint32(0);
    if (n > maxBytes) throw new CohortError('FRAME_TOO_LARGE', `frame of ${n} bytes exceeds ${maxBytes}`, 'the peer speaks another protocol version');
    const body = await this.readExactly(n);
    if (!body) return undefined;
    try {
      return JSON.parse(new TextDecoder().decode(body));
    } catch {
      throw new CohortError('FRAME_INVALID', 'frame is not JSON', 'the peer speaks another protocol version');
    }
  }
}

export function encodeFrame(value: unknown): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(value));
  const out = new Uint8Array(4 + json.byteLength);
  new DataView(out.buffer).setUint32(0, json.byteLength);
  out.set(json, 4);
  return out;
}

/**
 * Until the stream can take more data (at once if it can). Not `stream.onDrain()`: in @libp2p/utils 7.4.1 (the newest) its promise
 * is made once and never reset, so after the first drain every later call resolves at once and a sender queues its whole body.
 * Measured on a 64 MiB send before this: 63.8 MiB sat in the stream's write buffer and 1 of 64 waits was real; the sender's idle
 * timer then saw every chunk "sent" at once and nothing during the long flush in close(), so a slow (loaded) flush tripped it.
 * Waiting for the next 'drain' event (or the stream's end) is what onDrain means.
 */
export function waitForDrain(stream: Stream, signal?: AbortSignal): Promise<void> {
  if (!stream.writableNeedsDrain) return Promise.resolve();
  signal?.throwIfAborted();
  return new Promise<void>((resolve, reject) => {
    const settle = (err?: unknown): void => {
      stream.removeEventListener('drain', onDrain);
      stream.removeEventListener('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      if (err === undefined) resolve();
      else reject(err instanceof Error ? err : new Error(String(err)));
    };
    const onDrain = (): void => settle();
    const onClose = (evt: Event): void => settle((evt as Event & { error?: Error }).error ?? new CohortError('STREAM_CLOSED', 'the stream closed while a send waited for it to drain', 'the peer may have stopped; retry later'));
    const onAbort = (): void => settle(signal?.reason ?? new Error('aborted'));
    stream.addEventListener('drain', onDrain);
    stream.addEventListener('close', onClose);
    signal?.addEventListener('abort', onAbort);
  });
}

/** Send honouring backpressure: after each chunk, wait until the stream drains if it is full (at most ~one chunk queued). */
export async function sendAll(stream: Stream, data: Uint8Array, chunkBytes: number, onChunk?: (n: number) => void, signal?: AbortSignal): Promise<void> {
  for (let off = 0; off < data.byteLength; off += chunkBytes) {
    signal?.throwIfAborted();
    const chunk = data.subarray(off, Math.min(off + chunkBytes, data.byteLength));
    if (!stream.send(chunk)) await waitForDrain(stream, signal);
    onChunk?.(chunk.byteLength);
  }
}

export async function sendFrame(stream: Stream, value: unknown, signal?: AbortSignal): Promise<void> {
  if (!stream.send(encodeFrame(value))) await waitForDrain(stream, signal);
}

/** A timer that aborts `controller` unless touched within ms; for "no progress for N ms" timeouts. */
export class IdleTimer {
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly ms: number, private readonly onIdle: () => void) {
    this.touch();
  }
  touch(ms = this.ms): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(this.onIdle, ms);
  }
  stop(): void {
    clearTimeout(this.timer);
  }
}
