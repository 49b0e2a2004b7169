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
]);

function headerOf(msg: AveragingMessage): Record<string, unknown> {
  if (msg.kind !== 'model') return { ...msg };
  const { payload: _payload, ...rest } = msg;
  return rest;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeMessage(msg: AveragingMessage): Uint8Array {
  const head = enc.encode(JSON.stringify(headerOf(msg)));
  const payload = msg.kind === 'model' ? msg.payload : new Uint8Array(0);
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

export function decodeMessage(bytes: Uint8Array): AveragingMessage {
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
  if (h.kind !== 'model') return h;
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
