/**
 * Averaging messages on the wire and their checks.
 *
 *   encodeMessage(msg) -> Uint8Array   [u32 LE header length][header JSON][payload bytes]  (the payload is the codec's bytes)
 *   decodeMessage(bytes) -> AveragingMessage   (zod-validated header; CohortError MALFORMED_MESSAGE otherwise)
 *   wireSize(msg)  bytes that encodeMessage would produce (the simulator counts traffic with it)
 *   checkHeader(msg, expect) -> RejectReason | null   scenario, layout hash and round acceptance
 *   allFinite(v)   NaN/Inf guard applied to every decoded model before it is averaged
 */
import { z } from 'zod';
import { CohortError } from '../util/errors.ts';
import type { AveragingMessage, RejectReason } from './types.ts';
import type { Vec } from './compression.ts';

const header = {
  scenario: z.string().min(1).max(200),
  round: z.number().int(),
  layoutHash: z.string().min(1).max(200),
};

const headerSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('model'),
    ...header,
    codec: z.string().max(32),
    weight: z.number().optional(),
    degree: z.number().int().nonnegative().optional(),
    participants: z.array(z.string().max(200)).max(10_000).optional(),
    shareId: z.string().max(200).optional(),
    purpose: z.enum(['exchange', 'pull-reply']).optional(),
    nonce: z.string().max(64).optional(),
  }),
  z.object({ kind: z.literal('ack'), ...header, shareId: z.string().max(200) }),
  z.object({ kind: z.literal('pull'), ...header, nonce: z.string().min(8).max(64) }),
  z.object({ kind: z.literal('stats'), ...header, body: z.enum(['stats', 'agreed', 'suppressed', 'masked']) }),
]);

/**
 * Not an averaging message: the pre-round exchange of preprocessing statistics (src/peer/stats-exchange.ts) on the same
 * /cohort/model/1 path (participant rule, audit). `body` says what the JSON payload is: a site's sufficient statistics, the
 * agreed standardiser (the answer to a late peer), or nothing (a site below the small-count rule).
 */
export interface StatsMessage {
  readonly kind: 'stats';
  readonly scenario: string;
  readonly round: number;
  readonly layoutHash: string;
  /** 'masked': privacy.secure, the statistics as a pairwise-masked fixed-point vector (src/averaging/secure/secure-sum.ts). */
  readonly body: 'stats' | 'agreed' | 'suppressed' | 'masked';
  readonly payload: Uint8Array;
}

function headerOf(msg: AveragingMessage | StatsMessage): Record<string, unknown> {
  if (msg.kind !== 'model' && msg.kind !== 'stats') return { ...msg };
  const { payload: _payload, ...rest } = msg;
  return rest;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeMessage(msg: AveragingMessage | StatsMessage): Uint8Array {
  const head = enc.encode(JSON.stringify(headerOf(msg)));
  const payload = msg.kind === 'model' || msg.kind === 'stats' ? msg.payload : new Uint8Array(0);
  const out = new Uint8Array(4 + head.byteLength + payload.byteLength);
  new DataView(out.buffer).setUint32(0, head.byteLength, true);
  out.set(head, 4);
  out.set(payload, 4 + head.byteLength);
  return out;
}

/** Header length is computed without copying the payload: cheap enough to call on every simulated message. */
export function wireSize(msg: AveragingMessage): number {
  const head = enc.encode(JSON.stringify(headerOf(msg))).byteLength;
  return 4 + head + (msg.kind === 'model' ? msg.payload.byteLength : 0);
}

/** An averaging message; a statistics message here is refused as malformed (it belongs to decodeWire's callers). */
export function decodeMessage(bytes: Uint8Array): AveragingMessage {
  const m = decodeWire(bytes);
  if (m.kind === 'stats') throw new CohortError('MALFORMED_MESSAGE', 'a statistics message is not an averaging message', 'the sender runs an incompatible Cohort version');
  return m;
}

/** Any message of the /cohort/model/1 body: an averaging message or a statistics message. */
export function decodeWire(bytes: Uint8Array): AveragingMessage | StatsMessage {
  const bad = (why: string) =>
    new CohortError('MALFORMED_MESSAGE', `averaging message is malformed: ${why}`, 'the sender runs an incompatible Cohort version');
  if (bytes.byteLength < 4) throw bad('shorter than its length prefix');
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  if (4 + len > bytes.byteLength) throw bad(`header length ${len} exceeds the message (${bytes.byteLength} bytes)`);
  let json: unknown;
  try {
    json = JSON.parse(dec.decode(bytes.subarray(4, 4 + len)));
  } catch {
    throw bad('header is not JSON');
  }
  const parsed = headerSchema.safeParse(json);
  if (!parsed.success) throw bad(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  const h = parsed.data;
  if (h.kind !== 'model' && h.kind !== 'stats') return h;
  return { ...h, payload: bytes.slice(4 + len) };
}

export interface HeaderExpectation {
  readonly scenario: string;
  readonly layoutHash: string;
  /** 'ok' to accept, or why the round is refused. */
  readonly round: (round: number) => 'ok' | 'stale' | 'unknown-round';
}

export function checkHeader(msg: AveragingMessage, expect: HeaderExpectation): RejectReason | null {
  if (msg.scenario !== expect.scenario) return 'wrong-scenario';
  if (msg.layoutHash !== expect.layoutHash) return 'wrong-layout';
  if (!Number.isInteger(msg.round)) return 'unknown-round';
  const r = expect.round(msg.round);
  if (r !== 'ok') return r;
  if (msg.kind === 'model' && msg.weight !== undefined && !Number.isFinite(msg.weight)) return 'non-finite';
  return null;
}

export function allFinite(v: Vec): boolean {
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i] as number)) return false;
  return true;
}
