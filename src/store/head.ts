/**
 * The audit head anchor: a small file outside the LevelDB store (`<peerDir>/audit.head`) naming the last committed audit entry
 * (sequence number and hash), signed with the peer's Ed25519 identity and written with fsync at every audit commit. A store that
 * lost its tail (a truncated write-ahead log, a second writer, a restore of an old copy) has entries behind the head: that is how
 * truncation is detected, and why sequence numbers are never reused after it (src/store/audit.ts continues after the head).
 *
 *   const anchor = headAnchor(peerDir, identity.privateKey, peerId)   // daemon (signs)
 *   const anchor = headAnchor(peerDir)                                 // CLI and tests (reads and checks only)
 *   readHead(anchor) -> { head, signature: 'ok' | 'bad' | 'unsigned' } | undefined
 *
 * The same signed head travels in the heartbeat (`auditHead`), so neighbours can attest what this peer had committed.
 */
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { peerIdFromString } from '@libp2p/peer-id';
import { canonicalJson } from '../util/canonical.ts';
import { writeSynced, type Store } from './db.ts';

export interface AuditHead {
  readonly v: 1;
  /** Peer ID of the signer ('' when unsigned). */
  readonly peer: string;
  readonly seq: number;
  /** sha256 of the entry `seq` (the `prev` of entry seq + 1). */
  readonly hash: string;
  readonly at: string;
}
export interface SignedHead extends AuditHead { readonly sig?: string }

export interface HeadSigner { sign(data: Uint8Array): Uint8Array | Promise<Uint8Array> }

export interface HeadAnchor {
  readonly file: string;
  readonly peer?: string;
  readonly signer?: HeadSigner;
}

export const headFile = (peerDir: string): string => join(peerDir, 'audit.head');

export function headAnchor(peerDir: string, signer?: HeadSigner, peer?: string): HeadAnchor {
  return { file: headFile(peerDir), signer, peer };
}

const bytesOf = (h: AuditHead): Uint8Array => new TextEncoder().encode(`cohort-audit-head-v1\n${canonicalJson({ v: h.v, peer: h.peer, seq: h.seq, hash: h.hash, at: h.at })}`);

export async function signHead(head: AuditHead, signer?: HeadSigner): Promise<SignedHead> {
  if (!signer) return head;
  return { ...head, sig: Buffer.from(await signer.sign(bytesOf(head))).toString('base64') };
}

export async function verifyHead(head: SignedHead): Promise<'ok' | 'bad' | 'unsigned'> {
  if (!head.sig || !head.peer) return 'unsigned';
  try {
    const key = peerIdFromString(head.peer).publicKey;
    return key !== undefined && (await key.verify(bytesOf(head), Buffer.from(head.sig, 'base64'))) ? 'ok' : 'bad';
  } catch {
    return 'bad';
  }
}

/** Atomic and durable: a temporary file written with fsync, then renamed over the head. */
export function writeHead(anchor: HeadAnchor, head: SignedHead): void {
  const tmp = `${anchor.file}.tmp`;
  writeSynced(tmp, JSON.stringify(head) + '\n');
  renameSync(tmp, anchor.file);
}

export async function readHead(anchor: HeadAnchor): Promise<{ head: SignedHead; signature: 'ok' | 'bad' | 'unsigned' } | undefined> {
  if (!existsSync(anchor.file)) return undefined;
  let head: SignedHead;
  try {
    head = JSON.parse(readFileSync(anchor.file, 'utf8')) as SignedHead;
  } catch {
    return { head: { v: 1, peer: '', seq: -1, hash: '', at: '' }, signature: 'bad' };
  }
  if (typeof head.seq !== 'number' || typeof head.hash !== 'string') return { head, signature: 'bad' };
  const signature = await verifyHead(head);
  // a head signed by another peer than this one is no anchor of this store
  return { head, signature: signature === 'ok' && anchor.peer && head.peer !== anchor.peer ? 'bad' : signature };
}

/**
 * Attestation: the signed heads neighbours announce in their heartbeats, kept (the highest per peer, signature checked, signer ==
 * sender) in this peer's store, so that a neighbour's lost tail can later be shown against what it had announced.
 */
export async function recordWitness(store: Store, from: string, head: unknown): Promise<boolean> {
  const h = head as SignedHead | undefined;
  if (!h || typeof h.seq !== 'number' || h.peer !== from || (await verifyHead(h)) !== 'ok') return false;
  const key = `witness/${from}`;
  const cur = await store.meta.get(key) as SignedHead | undefined;
  if (cur && cur.seq >= h.seq) return false;
  await store.meta.put(key, { ...h, witnessedAt: new Date().toISOString() });
  return true;
}

export async function witnessed(store: Store): Promise<(SignedHead & { witnessedAt: string })[]> {
  const out: (SignedHead & { witnessedAt: string })[] = [];
  for await (const [, v] of store.meta.iterator({ gte: 'witness/', lt: 'witness0' })) out.push(v as SignedHead & { witnessedAt: string });
  return out;
}
