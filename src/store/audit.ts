/**
 * The audit log: the hospital's proof of what left this peer. Append-only, in the store's `audit` sublevel, keyed by a zero-padded
 * sequence number (lexicographic = chronological), and hash-chained: each entry carries the sha256 of the previous entry, so a
 * deleted or edited entry shows up in verify().
 *
 *   const audit = await AuditLog.open(store);
 *   await audit.append({ kind: 'model-sent', to: peerId, what: 'round 3 model', scenario, bytes, sha256 });
 *   for await (const e of audit.entries()) ...;   await audit.verify() -> { ok, entries, brokenAt? }
 *
 * Every outbound message and model transfer, and every approval or rejection, is recorded (the daemon calls append; nothing else writes).
 */
import { sha256Hex } from '../util/hash.ts';
import { canonicalJson } from '../util/canonical.ts';
import type { Store } from './db.ts';

export const AUDIT_KINDS = ['gossip-sent', 'model-sent', 'model-received', 'approval', 'rejection', 'decline', 'launch', 'cancel',
  'export', 'admin', 'start', 'stop', 'refused'] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

export interface AuditInput {
  readonly kind: AuditKind;
  /** Recipient: a peer ID, `gossip:<topic>` for a broadcast, or `local` for local actions. */
  readonly to: string;
  /** What it was, in words a person can read ("scenario announcement", "round 3 model, int8"). */
  readonly what: string;
  readonly scenario?: string;
  readonly bytes?: number;
  /** sha256 (hex) of the bytes that left. */
  readonly sha256?: string;
  readonly detail?: string;
}

export interface AuditEntry extends AuditInput {
  readonly seq: number;
  readonly at: string;
  /** sha256 of the previous entry's canonical JSON ('' for the first). */
  readonly prev: string;
}

export interface AuditVerdict { readonly ok: boolean; readonly entries: number; readonly brokenAt?: number }

const KEY_DIGITS = 16;
const keyOf = (seq: number): string => String(seq).padStart(KEY_DIGITS, '0');

export { sha256Hex };

function entryHash(e: AuditEntry): string {
  return sha256Hex(canonicalJson(e));
}

export class AuditLog {
  private nextSeq: number;
  private lastHash: string;
  /** Appends are serialised so that sequence numbers and the hash chain never fork under concurrent callers. */
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(private readonly store: Store, nextSeq: number, lastHash: string) {
    this.nextSeq = nextSeq;
    this.lastHash = lastHash;
  }

  static async open(store: Store): Promise<AuditLog> {
    for await (const [, value] of store.audit.iterator({ reverse: true, limit: 1 })) {
      const last = value as AuditEntry;
      return new AuditLog(store, last.seq + 1, entryHash(last));
    }
    return new AuditLog(store, 0, '');
  }

  append(input: AuditInput): Promise<AuditEntry> {
    const run = async (): Promise<AuditEntry> => {
      const entry: AuditEntry = { ...stripUndefined(input), seq: this.nextSeq, at: new Date().toISOString(), prev: this.lastHash };
      await this.store.audit.put(keyOf(entry.seq), entry);
      this.nextSeq = entry.seq + 1;
      this.lastHash = entryHash(entry);
      return entry;
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined);
    return p;
  }

  async *entries(opts: { scenario?: string; since?: number } = {}): AsyncGenerator<AuditEntry> {
    for await (const [, value] of this.store.audit.iterator({ gte: keyOf(opts.since ?? 0) })) {
      const e = value as AuditEntry;
      if (opts.scenario === undefined || e.scenario === opts.scenario) yield e;
    }
  }

  async list(opts: { scenario?: string; since?: number } = {}): Promise<AuditEntry[]> {
    const out: AuditEntry[] = [];
    for await (const e of this.entries(opts)) out.push(e);
    return out;
  }

  /** Walks the chain: sequence numbers without gaps and each `prev` equal to the hash of the entry before. */
  async verify(): Promise<AuditVerdict> {
    let expectSeq = 0;
    let prev = '';
    for await (const [key, value] of this.store.audit.iterator()) {
      const e = value as AuditEntry;
      if (e.seq !== expectSeq || key !== keyOf(e.seq) || e.prev !== prev) return { ok: false, entries: expectSeq, brokenAt: expectSeq };
      prev = entryHash(e);
      expectSeq++;
    }
    return { ok: true, entries: expectSeq };
  }
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
