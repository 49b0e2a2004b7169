/**
 * `/cohort/model/1`: models move peer to peer over one direct stream each, never over gossip.
 *
 * Push:  sender -> {op:'push', header}          receiver -> {ok} or {ok:false, reason}   (header check: size limit, sender, layout)
 *        sender -> body bytes, then half-close   receiver -> Ack {ok} | {ok:false, reason} (size, sha256, handler's verdict)
 * Pull:  asker  -> {op:'pull', request}         responder -> {ok, header} + body + close, or {ok:false, reason}
 * Frames are 4-byte length-prefixed JSON; bodies are raw bytes in chunks with backpressure (yamux flow control).
 *
 * API: new ModelExchange(node, opts)
 *   send(peer, header, bytes): Promise<Ack>        — resolves with the receiver's verdict; throws CohortError if the peer is unreachable
 *   pull(peer, request): Promise<{header, bytes}>  — throws CohortError('MODEL_PULL_REJECTED' | ...) with the reason
 *   onModel(handler): handler.check(header, from) before the body, handler.receive(header, bytes, from) after it is verified
 *   onPull(handler): (request, from) => {header, bytes} | Decision(reject)
 *   makeHeader(fields, bytes) computes byteLength and sha256.
 */
import { sha256Hex } from '../util/hash.ts';
import { z } from 'zod';
import type { Connection, PeerId, Stream } from '@libp2p/interface';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import type { NetMetrics } from './metrics.ts';
import { openBodySink, type BodySink } from './body-sink.ts';
import { IdleTimer, sendAll, sendFrame, StreamReader } from './stream-io.ts';

const log = logger('net:model');

export const MODEL_PROTOCOL = '/cohort/model/1';

export const REJECT_REASONS = [
  'too-large', 'truncated', 'oversized', 'hash-mismatch', 'wrong-layout', 'bad-header', 'wrong-sender',
  'no-handler', 'unknown-scenario', 'stale-round', 'busy', 'not-available', 'timeout', 'internal', 'rejected', 'not-participant',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

export const ModelHeaderSchema = z.object({
  scenarioId: z.string().min(1).max(200),
  round: z.number().int().nonnegative(),
  /** Peer ID of the model's sender; must be the stream's remote peer. */
  sender: z.string().min(1),
  /** Hash of the parameter layout (names, shapes, order): models with another layout cannot be averaged. */
  layoutHash: z.string().min(1).max(200),
  dtype: z.enum(['float32', 'float16', 'int8', 'uint8', 'bytes']),
  compression: z.string().min(1).max(64).default('none'),
  byteLength: z.number().int().nonnegative(),
  sha256: Sha256Hex,
  /** Small algorithm-specific fields (e.g. push-sum weight, step count). */
  meta: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).optional(),
}).strict();
export type ModelHeader = z.infer<typeof ModelHeaderSchema>;
export type ModelHeaderInput = z.input<typeof ModelHeaderSchema>;

export const PullRequestSchema = z.object({
  scenarioId: z.string().min(1).max(200),
  /** Newest round the asker already has (responder may send anything newer); absent: whatever is current. */
  afterRound: z.number().int().optional(),
  layoutHash: z.string().optional(),
}).strict();
export type PullRequest = z.infer<typeof PullRequestSchema>;

export type Decision = { readonly ok: true } | { readonly ok: false; readonly reason: RejectReason; readonly detail?: string };
export interface Ack {
  readonly ok: boolean;
  readonly reason?: RejectReason;
  readonly detail?: string;
}
const AckSchema = z.object({ ok: z.boolean(), reason: z.enum(REJECT_REASONS).optional(), detail: z.string().optional() });

export interface ModelHandler {
  /** Before any body byte: reject early (wrong layout, unknown scenario, stale round, busy). */
  check?(header: ModelHeader, from: PeerId): Decision | Promise<Decision>;
  /**
   * After size and sha256 are verified. Return a rejection to refuse; the bytes are the caller's to keep. Bodies of 4 MiB and
   * more sit in a SharedArrayBuffer (hashed by a worker while they arrive: body-sink.ts); `bytes.slice()` gives an ordinary copy.
   */
  receive(header: ModelHeader, bytes: Uint8Array, from: PeerId): Decision | void | Promise<Decision | void>;
}
export type PullHandler = (request: PullRequest, from: PeerId) =>
  | { header: ModelHeader; bytes: Uint8Array } | Decision | undefined
  | Promise<{ header: ModelHeader; bytes: Uint8Array } | Decision | undefined>;

/** The part of a libp2p node that the protocol needs (keeps this module testable and the dependency explicit). */
export interface StreamHost {
  readonly peerId: PeerId;
  handle(protocol: string, handler: (stream: Stream, connection: Connection) => void | Promise<void>, opts?: { maxInboundStreams?: number; maxOutboundStreams?: number; runOnLimitedConnection?: boolean }): Promise<void>;
  dialProtocol(peer: PeerId, protocol: string, opts?: { signal?: AbortSignal; runOnLimitedConnection?: boolean }): Promise<Stream>;
}

export interface ModelExchangeOptions {
  readonly maxModelBytes: number;
  /** Sum of bodies being received at once; default: no limit beyond maxModelBytes per transfer. */
  readonly maxInflightModelBytes?: number;
  readonly chunkBytes: number;
  readonly dialMs: number;
  readonly idleMs: number;
  readonly ackMs: number;
  readonly metrics?: NetMetrics;
}

export { sha256Hex };

/** Fill in byteLength and sha256 from the bytes. */
export function makeHeader(fields: Omit<ModelHeaderInput, 'byteLength' | 'sha256'>, bytes: Uint8Array): ModelHeader {
  return ModelHeaderSchema.parse({ ...fields, byteLength: bytes.byteLength, sha256: sha256Hex(bytes) });
}

const reject = (reason: RejectReason, detail?: string): Decision => ({ ok: false, reason, detail });
const drop = <T>(sink: BodySink, result: T): T => { sink.drop(); return result; };

/** Our side is done; if the other side has not closed within a grace period (a misbehaving or stuck peer), reset the stream. */
function releaseLater(stream: Stream, graceMs = 2000): void {
  if (stream.status !== 'open' && stream.status !== 'closing') return;
  setTimeout(() => {
    if (stream.status === 'open' || stream.status === 'closing') stream.abort(new Error('model stream not closed by peer'));
  }, graceMs).unref();
}

export class ModelExchange {
  private modelHandler: ModelHandler | undefined;
  private pullHandler: PullHandler | undefined;
  /** Bytes reserved by transfers being received now (each preallocates its whole body). */
  private inflight = 0;

  constructor(private readonly host: StreamHost, private readonly opts: ModelExchangeOptions) {}

  async start(): Promise<void> {
    await this.host.handle(MODEL_PROTOCOL, (stream, conn) => this.serve(stream, conn.remotePeer), { maxInboundStreams: 32, maxOutboundStreams: 64, runOnLimitedConnection: true });
  }

  onModel(handler: ModelHandler): void { this.modelHandler = handler; }
  onPull(handler: PullHandler): void { this.pullHandler = handler; }

  // ---------------------------------------------------------------- sender side

  async send(peer: PeerId, header: ModelHeader, bytes: Uint8Array): Promise<Ack> {
    if (bytes.byteLength !== header.byteLength) {
      throw new CohortError('MODEL_HEADER_MISMATCH', `header says ${header.byteLength} bytes, body has ${bytes.byteLength}`, 'build headers with makeHeader(fields, bytes)');
    }
    const stream = await this.open(peer);
    const reader = new StreamReader(stream);
    const timer = new IdleTimer(this.opts.idleMs, () => stream.abort(new Error('model send timed out')));
    try {
      await sendFrame(stream, { op: 'push', header });
      const ready = AckSchema.parse(await this.readOrFail(reader, 'ready'));
      if (!ready.ok) {
        await stream.close().catch(() => undefined);
        return this.logReject(peer, header, ready);
      }
      // Read the ack while sending: a receiver that rejects mid-body (oversized) answers early and we stop sending.
      const stop = new AbortController();
      const ackP = this.readOrFail(reader, 'ack');
      ackP.then(() => stop.abort(), () => stop.abort());
      try {
        await sendAll(stream, bytes, this.opts.chunkBytes, () => timer.touch(), stop.signal);
        await stream.close();
      } catch (e) {
        if (!stop.signal.aborted) throw e;
      }
      timer.touch(this.opts.ackMs); // the receiver hashes the body before it answers
      const ack = AckSchema.parse(await ackP);
      if (ack.ok) this.opts.metrics?.countOut(peer.toString(), MODEL_PROTOCOL, bytes.byteLength);
      return ack.ok ? ack : this.logReject(peer, header, ack);
    } catch (e) {
      stream.abort(e instanceof Error ? e : new Error(String(e)));
      if (e instanceof CohortError) throw e;
      throw new CohortError('MODEL_SEND_FAILED', `sending model (${header.scenarioId} round ${header.round}) to ${peer} failed: ${(e as Error).message}`, 'the peer may be down or overloaded; the averaging round proceeds without it', { cause: e });
    } finally {
      timer.stop();
      releaseLater(stream);
    }
  }

  async pull(peer: PeerId, request: PullRequest): Promise<{ header: ModelHeader; bytes: Uint8Array }> {
    const stream = await this.open(peer);
    const reader = new StreamReader(stream);
    const timer = new IdleTimer(this.opts.ackMs, () => stream.abort(new Error('model pull timed out')));
    try {
      await sendFrame(stream, { op: 'pull', request: PullRequestSchema.parse(request) });
      await stream.close();
      const reply = z.object({ ok: z.boolean(), reason: z.enum(REJECT_REASONS).optional(), detail: z.string().optional(), header: z.unknown().optional() })
        .parse(await this.readOrFail(reader, 'pull reply'));
      if (!reply.ok) {
        throw new CohortError('MODEL_PULL_REJECTED', `${peer} refused to send ${request.scenarioId}: ${reply.reason ?? 'rejected'}${reply.detail ? ` (${reply.detail})` : ''}`, 'ask another neighbour, or wait for the next round');
      }
      const header = this.parseHeader(reply.header);
      if (!header.ok) throw new CohortError('MODEL_PULL_INVALID', `${peer} sent a bad model header: ${header.detail ?? ''}`, 'ask another neighbour');
      const refusal = this.checkPulled(header.value, request);
      if (refusal) throw new CohortError('MODEL_PULL_INVALID', `model offered by ${peer}: ${refusal}`, 'ask another neighbour');
      const body = await this.readBody(reader, header.value, timer);
      if (!body.ok) throw new CohortError('MODEL_PULL_INVALID', `model pulled from ${peer} failed verification: ${body.reason}`, 'ask another neighbour');
      this.opts.metrics?.countIn(peer.toString(), MODEL_PROTOCOL, body.bytes.byteLength);
      return { header: header.value, bytes: body.bytes };
    } catch (e) {
      stream.abort(e instanceof Error ? e : new Error(String(e)));
      if (e instanceof CohortError) throw e;
      throw new CohortError('MODEL_PULL_FAILED', `pulling ${request.scenarioId} from ${peer} failed: ${(e as Error).message}`, 'ask another neighbour', { cause: e });
    } finally {
      timer.stop();
    }
  }

  /** What the asker checks before allocating a pulled body. */
  private checkPulled(header: ModelHeader, request: PullRequest): string | undefined {
    if (header.byteLength > this.opts.maxModelBytes) return `too-large (${header.byteLength} bytes > limit ${this.opts.maxModelBytes})`;
    if (header.scenarioId !== request.scenarioId) return `wrong scenario ${header.scenarioId}`;
    if (request.layoutHash && header.layoutHash !== request.layoutHash) return `wrong-layout ${header.layoutHash}`;
    return undefined;
  }

  private async open(peer: PeerId): Promise<Stream> {
    try {
      return await this.host.dialProtocol(peer, MODEL_PROTOCOL, { signal: AbortSignal.timeout(this.opts.dialMs), runOnLimitedConnection: true });
    } catch (e) {
      throw new CohortError('MODEL_DIAL_FAILED', `cannot open ${MODEL_PROTOCOL} to ${peer}: ${(e as Error).message}`, 'check that the peer is running, on the roster, and reachable', { cause: e });
    }
  }

  private async readOrFail(reader: StreamReader, what: string): Promise<unknown> {
    const frame = await reader.readFrame();
    if (frame === undefined) throw new CohortError('MODEL_STREAM_CLOSED', `peer closed the stream before its ${what}`, 'the peer may have stopped; retry later');
    return frame;
  }

  private logReject(peer: PeerId, header: ModelHeader, ack: Ack): Ack {
    log.warn({ peer: peer.toString(), scenario: header.scenarioId, round: header.round, reason: ack.reason, detail: ack.detail }, 'model rejected by receiver');
    return ack;
  }

  // ---------------------------------------------------------------- receiver side

  private async serve(stream: Stream, from: PeerId): Promise<void> {
    const reader = new StreamReader(stream);
    const timer = new IdleTimer(this.opts.idleMs, () => stream.abort(new Error('model stream idle')));
    try {
      const frame = z.object({ op: z.enum(['push', 'pull']) }).passthrough().safeParse(await reader.readFrame());
      if (!frame.success) return this.answer(stream, reject('bad-header', 'expected {op:"push"|"pull"}'), from);
      if (frame.data.op === 'push') await this.servePush(stream, reader, from, frame.data.header, timer);
      else await this.servePull(stream, from, frame.data.request, timer);
    } catch (e) {
      // the sender vanished or broke protocol: drop everything, keep serving others
      log.debug({ peer: from.toString(), err: (e as Error).message }, 'model stream failed');
      this.opts.metrics?.reject('model', 'stream-error');
      stream.abort(e instanceof Error ? e : new Error(String(e)));
    } finally {
      timer.stop();
      releaseLater(stream);
    }
  }

  private async servePush(stream: Stream, reader: StreamReader, from: PeerId, rawHeader: unknown, timer: IdleTimer): Promise<void> {
    const parsed = this.parseHeader(rawHeader);
    if (!parsed.ok) return this.answer(stream, reject('bad-header', parsed.detail), from);
    const header = parsed.value;
    const early = await this.checkHeader(header, from);
    if (!early.ok) return this.answer(stream, early, from);
    const limit = this.opts.maxInflightModelBytes ?? Number.POSITIVE_INFINITY;
    if (this.inflight + header.byteLength > limit) {
      return this.answer(stream, reject('busy', `${this.inflight} bytes already being received; limit ${limit}`), from);
    }
    this.inflight += header.byteLength;
    let body: Awaited<ReturnType<ModelExchange['readBody']>>;
    try {
      await sendFrame(stream, { ok: true });
      body = await this.readBody(reader, header, timer);
    } finally {
      this.inflight -= header.byteLength;
    }
    if (!body.ok) return this.answer(stream, reject(body.reason, body.detail), from);
    this.opts.metrics?.countIn(from.toString(), MODEL_PROTOCOL, body.bytes.byteLength);
    let verdict: Decision | void;
    try {
      verdict = await this.modelHandler!.receive(header, body.bytes, from);
    } catch (e) {
      verdict = reject('internal', (e as Error).message);
    }
    await this.answer(stream, verdict ?? { ok: true }, from);
  }

  private async checkHeader(header: ModelHeader, from: PeerId): Promise<Decision> {
    if (!this.modelHandler) return reject('no-handler', 'this peer does not accept models now');
    if (header.sender !== from.toString()) return reject('wrong-sender', `header sender ${header.sender} is not the connection's peer`);
    if (header.byteLength > this.opts.maxModelBytes) return reject('too-large', `${header.byteLength} bytes > limit ${this.opts.maxModelBytes}`);
    try {
      return (await this.modelHandler.check?.(header, from)) ?? { ok: true };
    } catch (e) {
      return reject('internal', (e as Error).message);
    }
  }

  /** Reads exactly header.byteLength bytes until the sender half-closes; checks size, and sha256 while reading (body-sink.ts). */
  private async readBody(reader: StreamReader, header: ModelHeader, timer: IdleTimer):
    Promise<{ ok: true; bytes: Uint8Array } | { ok: false; reason: RejectReason; detail?: string }> {
    const sink = openBodySink(header.byteLength);
    let filled = 0;
    try {
      for (let chunk = await reader.next(); chunk; chunk = await reader.next()) {
        timer.touch();
        if (filled + chunk.byteLength > header.byteLength) return drop(sink, { ok: false, reason: 'oversized', detail: `more than the ${header.byteLength} bytes announced` });
        sink.write(chunk);
        filled += chunk.byteLength;
      }
    } catch (e) {
      sink.drop();
      throw e;
    }
    if (filled < header.byteLength) return drop(sink, { ok: false, reason: 'truncated', detail: `${filled} of ${header.byteLength} bytes` });
    const digest = await sink.digest();
    if (digest !== header.sha256) return { ok: false, reason: 'hash-mismatch', detail: `sha256 ${digest.slice(0, 12)}… != ${header.sha256.slice(0, 12)}…` };
    const bytes = sink.bytes;
    return { ok: true, bytes };
  }

  private async servePull(stream: Stream, from: PeerId, rawRequest: unknown, timer: IdleTimer): Promise<void> {
    const req = PullRequestSchema.safeParse(rawRequest);
    if (!req.success) return this.answer(stream, reject('bad-header', 'malformed pull request'), from);
    if (!this.pullHandler) return this.answer(stream, reject('not-available', 'this peer serves no models'), from);
    const result = await this.pullHandler(req.data, from);
    if (!result) return this.answer(stream, reject('not-available', `no model for ${req.data.scenarioId}`), from);
    if ('ok' in result) return this.answer(stream, result.ok ? reject('internal', 'pull handler returned ok without a model') : result, from);
    await sendFrame(stream, { ok: true, header: result.header });
    await sendAll(stream, result.bytes, this.opts.chunkBytes, () => timer.touch());
    this.opts.metrics?.countOut(from.toString(), MODEL_PROTOCOL, result.bytes.byteLength);
    await stream.close();
  }

  private async answer(stream: Stream, decision: Decision, from: PeerId): Promise<void> {
    if (!decision.ok) {
      this.opts.metrics?.reject('model', decision.reason);
      log.info({ peer: from.toString(), reason: decision.reason, detail: decision.detail }, 'model transfer rejected');
    }
    try {
      await sendFrame(stream, decision);
      await stream.close();
    } catch {
      stream.abort(new Error('peer gone before our answer')); // e.g. a sender killed mid-transfer: nothing left to tell
    }
  }

  private parseHeader(raw: unknown): { ok: true; value: ModelHeader } | { ok: false; detail: string } {
    const r = ModelHeaderSchema.safeParse(raw);
    if (r.success) return { ok: true, value: r.data };
    const i = r.error.issues[0];
    return { ok: false, detail: `${i?.path.join('.') ?? ''}: ${i?.message ?? ''}` };
  }
}
