/**
 * Checkpoint format (little-endian): "CHKP" magic, u32 header length, UTF-8 JSON header
 * { version, layoutHash, stateHash, step, params, state }, padding to 4 bytes, then params and optimizer state as float32.
 * The hashes make a checkpoint of one model refuse to load into another.
 */
import { CohortError } from '../util/errors.ts';

const MAGIC = 0x504b4843; // "CHKP" read as little-endian u32

export interface CheckpointData {
  layoutHash: string;
  stateHash: string;
  step: number;
  params: Float32Array;
  state: Float32Array;
}

export function encodeCheckpoint(c: CheckpointData): Uint8Array {
  const header = new TextEncoder().encode(JSON.stringify({
    version: 1, layoutHash: c.layoutHash, stateHash: c.stateHash, step: c.step, params: c.params.length, state: c.state.length,
  }));
  const dataStart = Math.ceil((8 + header.length) / 4) * 4;
  const out = new Uint8Array(dataStart + 4 * (c.params.length + c.state.length));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, header.length, true);
  out.set(header, 8);
  new Float32Array(out.buffer, dataStart, c.params.length).set(c.params);
  new Float32Array(out.buffer, dataStart + 4 * c.params.length, c.state.length).set(c.state);
  return out;
}

export function decodeCheckpoint(bytes: Uint8Array): CheckpointData {
  const bad = (why: string): CohortError =>
    new CohortError('BAD_CHECKPOINT', `not a valid Cohort checkpoint: ${why}`, 'pass bytes produced by Trainer.checkpoint()');
  if (bytes.length < 8) throw bad('too short');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) throw bad('wrong magic number');
  const hlen = dv.getUint32(4, true);
  if (8 + hlen > bytes.length) throw bad('truncated header');
  let h: { version: number; layoutHash: string; stateHash: string; step: number; params: number; state: number };
  try { h = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen))); } catch { throw bad('unreadable header'); }
  if (h.version !== 1) throw bad(`unsupported version ${h.version}`);
  const dataStart = Math.ceil((8 + hlen) / 4) * 4;
  if (bytes.length !== dataStart + 4 * (h.params + h.state)) throw bad('length does not match the header');
  const body = bytes.slice(dataStart); // copy: aligned, and independent of the caller's buffer
  const all = new Float32Array(body.buffer, 0, h.params + h.state);
  return { layoutHash: h.layoutHash, stateHash: h.stateHash, step: h.step,
    params: all.slice(0, h.params), state: all.slice(h.params) };
}
