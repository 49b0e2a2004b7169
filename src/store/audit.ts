/**
 * The audit log: the hospital's proof of what left this peer. Append-only, in the store's `audit` sublevel, keyed by a zero-padded
 * sequence number (lexicographic = chronological), and hash-chained: each entry carries the sha256 of the previous entry, so a
 * deleted or edited entry shows up in verify().
 *
 *   const audit = await AuditLog.open(store, { anchor: headAnchor(peerDir, identity.privateKey, peerId) });
 *   await audit.append({ kind: 'model-sent', to: peerId, what: 'round 3 model', scenario, bytes, sha256 });
 *   await audit.page({ scenario, limit: 50, before })   newest first, O(page): the scenario index, never the whole log
 *   await audit.verify() -> { intact, entries, missing_after, missing, damaged_ranges, ... }
 *
 * Durability: every entry is a commit point. Appends are group-committed: the entries queued while one batch is being written go
 * into the next LevelDB batch, written with `sync: true`; the promise of append() resolves only once its entry is on disk. After
 * each batch the signed head file (src/store/head.ts) is rewritten with fsync, outside the store.
 *
 * Truncation: at open, a store whose last entry is behind the anchored head lost its tail. The log continues after the head (sequence
 * numbers are never reused) and records a `gap` entry naming the lost range; verify() reports "intact up to N, M missing after it".
 * Damage: a read that fails (a damaged LevelDB block) does not stop a listing or a verification: the unreadable sequence numbers
 * are reported as damaged ranges and the readable entries around them are still returned.
 *
 * Bounds (issue 16): `maxPerSecond` caps the entries written per second of the clock (routine kinds only; approvals, launches,
 * start/stop and gap records are never dropped); what is over the cap is counted and written as one `overflow` entry (count and
 * bytes per kind) when the next second begins or at flush(). Model transfers that carry their `round` are aggregated: one `round`
 * entry per round per scenario with totals and the list of transfers (peer, bytes, sha256); the open tally is kept in the store
 * (synced, overwritten in place), so a crash loses no transfer, and is written to the log when the scenario's next round begins,
 * at flush(), or at the next open. Nothing dropped or aggregated ever takes a sequence number, so the chain stays verifiable.
 */
import { sha256Hex } from '../util/hash.ts';
import { canonicalJson } from '../util/canonical.ts';
import { errorText, isCorruption, type JsonSublevel, type Store } from './db.ts';
import { readHead, signHead, writeHead, type HeadAnchor, type SignedHead } from './head.ts';

export const AUDIT_KINDS = ['gossip-sent', 'model-sent', 'model-received', 'approval', 'rejection', 'decline', 'launch', 'cancel',
  'export', 'admin', 'start', 'stop', 'refused', 'gap', 'overflow', 'round', 'suspicion', 'privacy'] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

/** Kinds the per-second cap may drop (counted in an overflow entry); every other kind is always written. */
const CAPPED: ReadonlySet<AuditKind> = new Set(['gossip-sent', 'model-sent', 'model-received', 'refused', 'admin']);

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

/** A model transfer of a training round: aggregated into one `round` entry per round per scenario (needs `scenario`). */
export interface RoundTransfer {
  readonly kind: 'model-sent' | 'model-received';
  readonly scenario: string;
  readonly round: number;
  /** The other peer (recipient or sender). */
  readonly peer: string;
  readonly what: string;
  readonly bytes: number;
  readonly sha256: string;
}

export interface AuditEntry extends AuditInput {
  readonly seq: number;
  readonly at: string;
  /** sha256 of the previous entry's canonical JSON ('' for the first). */
  readonly prev: string;
}

export interface SeqRange { readonly from: number; readonly to: number }

export interface AuditVerdict {
  /** Same as `intact` (kept for older clients). */
  readonly ok: boolean;
  readonly intact: boolean;
  /** Entries read (readable) from the store. */
  readonly entries: number;
  /** Last sequence number of the unbroken prefix (-1: none). */
  readonly intact_up_to: number;
  /** When entries are missing (lost tail, recorded gap): the last good sequence number before the first loss; else null. */
  readonly missing_after: number | null;
  /** How many sequence numbers are missing (lost tail behind the head + recorded gaps). */
  readonly missing: number;
  readonly missing_ranges: readonly SeqRange[];
  /** Sequence numbers whose entries could not be read (damaged blocks). */
  readonly damaged_ranges: readonly SeqRange[];
  /** Entries whose link to the previous one does not hold (edited, replaced or reordered). */
  readonly broken: readonly number[];
  /** First sequence number with a problem (older clients). */
  readonly brokenAt?: number;
  /** The head file: 'ok' (signed by this peer and matching), 'none', 'unsigned', 'bad-signature', 'mismatch' (store differs at the head). */
  readonly anchor: 'ok' | 'none' | 'unsigned' | 'bad-signature' | 'mismatch';
  readonly head?: { readonly seq: number; readonly hash: string };
}

export interface AuditPage {
  readonly entries: AuditEntry[];
  /** Pass as `before` for the next (older) page; undefined when this was the oldest. */
  readonly next?: number;
  /** Sequence number of the newest entry in the log (-1: empty). */
  readonly head: number;
  readonly damaged_ranges: readonly SeqRange[];
}

export interface AuditOptions {
  /** The signed head file outside the store (the daemon passes one; read-only tools pass one without a signer). */
  readonly anchor?: HeadAnchor;
  /** Hard cap on routine entries per second (0 or undefined: none). */
  readonly maxPerSecond?: number;
  /** Clock in ms (tests inject one; default Date.now). */
  readonly now?: () => number;
  /** Inspect only (`cohort store verify`, `cohort audit` on a stopped peer): writes nothing, records no gap. */
  readonly readOnly?: boolean;
}

/** What open() found and did about it (the daemon logs it). */
export interface AuditRecovery {
  readonly lostTail?: SeqRange;
  /** The newest entry differs from the one the head committed (its sequence number). */
  readonly replaced?: number;
  readonly anchor: AuditVerdict['anchor'];
  readonly recoveredRounds: number;
}

const KEY_DIGITS = 16;
export const keyOf = (seq: number): string => String(seq).padStart(KEY_DIGITS, '0');
const MAX_BATCH = 512;
const PROBE_LIMIT = 4096;
const INDEX_META = 'audit-index';
const pendingKey = (scenario: string): string => `audit-round/${scenario}`;

export { sha256Hex };

export function entryHash(e: AuditEntry): string {
  return sha256Hex(canonicalJson(e));
}

/** A write in a group commit (cast to level's batch operation type when written). */
type Op = { type: 'put'; sublevel: JsonSublevel; key: string; value: unknown } | { type: 'del'; sublevel: JsonSublevel; key: string };

interface Queued { readonly input?: AuditInput; readonly extra: Op[]; readonly resolve: (e: AuditEntry | undefined) => void; readonly reject: (e: unknown) => void }
interface Tally { round: number; sent: { to: string; what: string; bytes: number; sha256: string; at: string }[]; received: { from: string; what: string; bytes: number; sha256: string; at: string }[] }

type Read = { seq: number; entry: AuditEntry; keyOk: boolean } | { damaged: SeqRange };

export class AuditLog {
  private nextSeq: number;
  private lastHash: string;
  private queue: Queued[] = [];
  private draining: Promise<void> | undefined;
  private window = -1;
  private inWindow = 0;
  private dropped = new Map<AuditKind, { count: number; bytes: number }>();
  private droppedSince = 0;
  private readonly tallies = new Map<string, Tally>();
  /** Set when the last head write failed (disk full): entries are committed in the store, the anchor lags. */
  headError: string | undefined;
  recovery: AuditRecovery = { anchor: 'none', recoveredRounds: 0 };
  private signedHead: SignedHead | undefined;

  private constructor(private readonly store: Store, private readonly opts: AuditOptions, nextSeq: number, lastHash: string) {
    this.nextSeq = nextSeq;
    this.lastHash = lastHash;
  }

  static async open(store: Store, opts: AuditOptions = {}): Promise<AuditLog> {
    const last = await lastReadable(store);
    const log = new AuditLog(store, opts, last ? last.seq + 1 : 0, last ? entryHash(last) : '');
    let lostTail: SeqRange | undefined;
    let replaced: { seq: number; hash: string } | undefined;
    let anchor: AuditVerdict['anchor'] = 'none';
    if (opts.anchor) {
      const h = await readHead(opts.anchor);
      if (h) {
        anchor = h.signature === 'ok' ? 'ok' : h.signature === 'unsigned' ? 'unsigned' : 'bad-signature';
        log.signedHead = h.head;
        // only a head this peer signed may move the sequence on (an unsigned or forged file could otherwise skip numbers)
        const trusted = h.signature === 'ok' || (h.signature === 'unsigned' && !opts.anchor.signer);
        if (trusted && h.head.seq >= log.nextSeq) {
          lostTail = { from: log.nextSeq, to: h.head.seq };
          log.nextSeq = h.head.seq + 1;
          log.lastHash = h.head.hash;
        } else if (trusted && h.head.seq === log.nextSeq - 1 && h.head.hash !== log.lastHash) {
          replaced = { seq: h.head.seq, hash: h.head.hash };   // the newest entry is not the one that was committed
        }
      }
    }
    if (opts.readOnly) {
      log.recovery = { lostTail, anchor, recoveredRounds: 0 };
      return log;
    }
    await log.ensureIndex();
    // the gap record comes first: it is the entry right after the lost range
    if (lostTail) {
      const count = lostTail.to - lostTail.from + 1;
      await log.append({ kind: 'gap', to: 'local', what: `${count} audit entr${count === 1 ? 'y' : 'ies'} (${lostTail.from}..${lostTail.to}) lost: the store ends before the signed head; numbering continues after it`,
        detail: JSON.stringify({ from: lostTail.from, to: lostTail.to, count }) });
    } else if (replaced) {
      await log.append({ kind: 'gap', to: 'local', what: `audit entry ${replaced.seq} differs from the one the signed head committed: the store's tail was replaced`,
        detail: JSON.stringify({ replaced: replaced.seq, headHash: replaced.hash, count: 0 }) });
    } else if (opts.anchor?.signer && (anchor === 'none' || log.signedHead?.seq !== log.nextSeq - 1)) {
      await log.anchorHead();
    }
    const recoveredRounds = await log.recoverTallies();
    log.recovery = { lostTail, anchor, recoveredRounds, ...(replaced ? { replaced: replaced.seq } : {}) };
    return log;
  }

  /** Sequence number the next entry will take. */
  get next(): number {
    return this.nextSeq;
  }

  /** The current signed head (what the heartbeat announces); undefined without an anchor or before the first entry. */
  get head(): SignedHead | undefined {
    return this.signedHead;
  }

  /**
   * Appends one entry; resolves once it is committed (synced). Resolves undefined when the per-second cap dropped it (it is
   * counted in the next overflow entry).
   */
  append(input: AuditInput): Promise<AuditEntry | undefined> {
    const overflow = this.rollWindow();
    if (overflow) void this.enqueue(overflow).catch(() => undefined);
    if (this.opts.maxPerSecond && CAPPED.has(input.kind)) {
      if (this.inWindow >= this.opts.maxPerSecond) {
        const d = this.dropped.get(input.kind) ?? { count: 0, bytes: 0 };
        d.count++;
        d.bytes += input.bytes ?? 0;
        this.dropped.set(input.kind, d);
        return Promise.resolve(undefined);
      }
      this.inWindow++;
    }
    return this.enqueue(input);
  }

  /**
   * A model transfer of a training round: added to the scenario's open round tally (kept in the store, synced); the tally of the
   * previous round becomes one `round` entry when a later round begins.
   */
  async transfer(t: RoundTransfer): Promise<void> {
    let tally = this.tallies.get(t.scenario);
    let closed: AuditInput | undefined;
    if (!tally || t.round > tally.round) {
      if (tally) closed = roundEntry(t.scenario, tally);
      tally = { round: t.round, sent: [], received: [] };
      this.tallies.set(t.scenario, tally);
    }
    const at = new Date((this.opts.now ?? Date.now)()).toISOString();
    if (t.kind === 'model-sent') tally.sent.push({ to: t.peer, what: t.what, bytes: t.bytes, sha256: t.sha256, at });
    else tally.received.push({ from: t.peer, what: t.what, bytes: t.bytes, sha256: t.sha256, at });
    // the open tally is written (synced) in the same group commit as the entry that closes the previous round, if any
    const pending = { type: 'put' as const, sublevel: this.store.meta, key: pendingKey(t.scenario), value: structuredClone(tally) };
    await this.enqueue(closed, [pending]);
  }

  /**
   * Writes what is pending: the overflow count of the current second and (unless `rounds: false`) the open round tallies, except
   * those of the scenarios in `keep` (the heartbeat keeps the running ones; stop closes all).
   */
  async flush(opts: { rounds?: boolean; keep?: ReadonlySet<string> } = {}): Promise<void> {
    if (this.opts.readOnly) return;
    const overflow = this.takeOverflow();
    if (overflow) await this.enqueue(overflow);
    if (opts.rounds !== false) {
      for (const [scenario, tally] of [...this.tallies]) {
        if (opts.keep?.has(scenario)) continue;
        this.tallies.delete(scenario);
        await this.enqueue(roundEntry(scenario, tally), [{ type: 'del', sublevel: this.store.meta, key: pendingKey(scenario) }]);
      }
    }
    await this.draining;
  }

  private rollWindow(): AuditInput | undefined {
    const sec = Math.floor((this.opts.now ?? Date.now)() / 1000);
    if (sec === this.window) return undefined;
    this.window = sec;
    this.inWindow = 0;
    return this.takeOverflow();
  }

  private takeOverflow(): AuditInput | undefined {
    if (this.dropped.size === 0) return undefined;
    const byKind = Object.fromEntries(this.dropped);
    const count = [...this.dropped.values()].reduce((a, d) => a + d.count, 0);
    const bytes = [...this.dropped.values()].reduce((a, d) => a + d.bytes, 0);
    this.dropped = new Map();
    const since = this.droppedSince;
    this.droppedSince = (this.opts.now ?? Date.now)();
    return { kind: 'overflow', to: 'local', what: `${count} routine entr${count === 1 ? 'y' : 'ies'} over the cap of ${this.opts.maxPerSecond}/s not written individually (${bytes} B)`,
      bytes, detail: JSON.stringify({ count, bytes, byKind, since: since ? new Date(since).toISOString() : undefined }) };
  }

  /** Queues an entry (or only store operations: input undefined) for the next group commit; resolves once it is synced. */
  private enqueue(input: AuditInput, extra?: Op[]): Promise<AuditEntry>;
  private enqueue(input: AuditInput | undefined, extra?: Op[]): Promise<AuditEntry | undefined>;
  private enqueue(input: AuditInput | undefined, extra: Op[] = []): Promise<AuditEntry | undefined> {
    if (this.opts.readOnly) return Promise.reject(new Error('the audit log was opened read-only'));
    return new Promise<AuditEntry | undefined>((resolve, reject) => {
      this.queue.push({ input, extra, resolve, reject });
      this.kick();
    });
  }

  /** Starts a drain unless one runs; one that is finishing restarts for what was queued after its last batch. */
  private kick(): void {
    if (this.draining) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      if (this.queue.length) this.kick();
    });
  }

  /** Group commit: everything queued while the previous batch was written goes into one synced batch. */
  private async drain(): Promise<void> {
    while (this.queue.length) {
      const items = this.queue.splice(0, MAX_BATCH);
      let seq = this.nextSeq;
      let prev = this.lastHash;
      const at = new Date((this.opts.now ?? Date.now)()).toISOString();
      const ops: Op[] = [];
      const entries = items.map(({ input, extra }) => {
        ops.push(...extra);
        if (!input) return undefined;
        const e: AuditEntry = { ...stripUndefined(input), seq: seq++, at, prev };
        prev = entryHash(e);
        ops.push({ type: 'put', sublevel: this.store.audit, key: keyOf(e.seq), value: e });
        if (e.scenario) ops.push({ type: 'put', sublevel: this.store.auditIndex, key: `${e.scenario}/${keyOf(e.seq)}`, value: e.seq });
        return e;
      });
      try {
        await this.store.db.batch(ops as never, { sync: true });
      } catch (err) {
        for (const it of items) it.reject(err);
        continue;
      }
      const advanced = seq !== this.nextSeq;
      this.nextSeq = seq;
      this.lastHash = prev;
      if (advanced) await this.anchorHead();
      items.forEach((it, i) => it.resolve(entries[i]));
    }
  }

  private async anchorHead(): Promise<void> {
    const anchor = this.opts.anchor;
    if (!anchor?.signer || this.nextSeq === 0) return;
    try {
      const head = await signHead({ v: 1, peer: anchor.peer ?? '', seq: this.nextSeq - 1, hash: this.lastHash, at: new Date((this.opts.now ?? Date.now)()).toISOString() }, anchor.signer);
      writeHead(anchor, head);
      this.signedHead = head;
      this.headError = undefined;
    } catch (e) {
      this.headError = errorText(e);
    }
  }

  /** Round tallies left open by a crash become `round` entries now (marked as recovered). */
  private async recoverTallies(): Promise<number> {
    const found: [string, Tally][] = [];
    for await (const [key, value] of this.store.meta.iterator({ gte: 'audit-round/', lt: 'audit-round0' })) found.push([key.slice('audit-round/'.length), value as Tally]);
    for (const [scenario, tally] of found) {
      await this.enqueue({ ...roundEntry(scenario, tally), what: `${roundEntry(scenario, tally).what} (written at restart)` }, [{ type: 'del', sublevel: this.store.meta, key: pendingKey(scenario) }]);
    }
    return found.length;
  }

  /** The scenario index (audit-index sublevel) covers every entry: built once for stores written before it existed. */
  private async ensureIndex(): Promise<void> {
    const marker = await this.store.meta.get(INDEX_META) as { upTo: number } | undefined;
    if (marker && marker.upTo >= this.nextSeq - 1) return;
    let ops: Op[] = [];
    for await (const r of this.read(marker ? marker.upTo + 1 : 0)) {
      if ('damaged' in r || !r.entry.scenario) continue;
      ops.push({ type: 'put', sublevel: this.store.auditIndex, key: `${r.entry.scenario}/${keyOf(r.seq)}`, value: r.seq });
      if (ops.length >= 1000) { await this.store.db.batch(ops as never); ops = []; }
    }
    ops.push({ type: 'put', sublevel: this.store.meta, key: INDEX_META, value: { upTo: this.nextSeq - 1 } });
    await this.store.db.batch(ops as never, { sync: true });
  }

  /**
   * Every readable entry from `from` on, in order; an unreadable stretch (a damaged block) is reported as one damaged range and
   * reading goes on after it (probing key by key up to `end`, the last sequence number known from the head).
   */
  private async *read(from: number, end = this.nextSeq - 1): AsyncGenerator<Read> {
    let cursor = from;
    let lastFailure = -1;
    for (;;) {
      try {
        for await (const [key, value] of this.store.audit.iterator({ gte: keyOf(cursor) })) {
          const seq = Number(key);
          // LevelDB's iterator steps over a block it cannot read (and reports it later, or never): a jump is probed key by key
          if (seq > cursor) for (const d of await this.probe(cursor, seq - 1)) yield { damaged: d };
          const entry = value as AuditEntry;
          cursor = seq + 1;
          yield { seq, entry, keyOk: entry.seq === seq };
        }
        return;
      } catch (e) {
        if (!isCorruption(e)) throw e;
      }
      // the error may be the late report of a block skipped before: start again at the cursor; a second failure there is damage
      if (lastFailure === cursor) {
        const upTo = Math.max(end, cursor);
        let s = cursor;
        const ranges = await this.probe(cursor, Math.min(upTo, cursor + PROBE_LIMIT));
        const first = ranges[0];
        if (first && first.from === cursor) s = first.to + 1;
        else s = cursor + 1;
        yield { damaged: { from: cursor, to: s - 1 } };
        if (s > upTo) return;
        cursor = s;
      }
      lastFailure = cursor;
    }
  }

  /** Which of the sequence numbers from..to fail to read (damaged), as ranges; absent keys are not damage. */
  private async probe(from: number, to: number): Promise<SeqRange[]> {
    const out: SeqRange[] = [];
    for (let s = from; s <= Math.min(to, from + PROBE_LIMIT); s++) {
      try {
        await this.store.audit.get(keyOf(s));
      } catch (e) {
        if (!isCorruption(e)) throw e;
        const last = out.at(-1);
        if (last && last.to === s - 1) out[out.length - 1] = { from: last.from, to: s };
        else out.push({ from: s, to: s });
      }
    }
    return out;
  }

  async *entries(opts: { scenario?: string; since?: number } = {}): AsyncGenerator<AuditEntry> {
    for await (const r of this.read(opts.since ?? 0)) {
      if ('damaged' in r) continue;
      if (opts.scenario === undefined || r.entry.scenario === opts.scenario) yield r.entry;
    }
  }

  async list(opts: { scenario?: string; since?: number } = {}): Promise<AuditEntry[]> {
    const out: AuditEntry[] = [];
    for await (const e of this.entries(opts)) out.push(e);
    return out;
  }

  /**
   * One page, newest first: at most `limit` entries with seq < `before` (default: from the newest), of one scenario or of all.
   * Reads O(limit) keys (the scenario index for a scenario); a damaged stretch is skipped and named in damaged_ranges.
   */
  async page(opts: { scenario?: string; limit?: number; before?: number } = {}): Promise<AuditPage> {
    const limit = Math.max(1, Math.min(opts.limit ?? 100, 10_000));
    const before = Math.min(opts.before ?? this.nextSeq, this.nextSeq);
    const damaged: SeqRange[] = [];
    let seqs: number[] = [];
    if (opts.scenario !== undefined) {
      for await (const [key] of this.store.auditIndex.iterator({ gte: `${opts.scenario}/`, lt: `${opts.scenario}/${keyOf(before)}`, reverse: true, limit: limit + 1 })) seqs.push(Number(key.slice(opts.scenario.length + 1)));
    } else {
      for (let s = before - 1; s >= 0 && seqs.length < limit + 1; s--) seqs.push(s);
    }
    const more = seqs.length > limit;
    seqs = seqs.slice(0, limit);
    const entries: AuditEntry[] = [];
    let values: (unknown)[] = [];
    try {
      values = await this.store.audit.getMany(seqs.map(keyOf));
    } catch (e) {
      if (!isCorruption(e)) throw e;
      values = [];
      for (const s of seqs) {
        try { values.push(await this.store.audit.get(keyOf(s))); } catch (e2) {
          if (!isCorruption(e2)) throw e2;
          values.push(null);
          const last = damaged.at(-1);
          if (last && last.from === s + 1) damaged[damaged.length - 1] = { from: s, to: last.to };
          else damaged.push({ from: s, to: s });
        }
      }
    }
    for (const v of values) if (v) entries.push(v as AuditEntry);
    const oldest = seqs.at(-1);
    return { entries, next: more && oldest !== undefined ? oldest : undefined, head: this.nextSeq - 1, damaged_ranges: damaged };
  }

  /** Number of entries of one scenario (index keys only) or of the whole log (sequence numbers taken). */
  async count(scenario?: string): Promise<number> {
    if (scenario === undefined) return this.nextSeq;
    let n = 0;
    for await (const _k of this.store.auditIndex.keys({ gte: `${scenario}/`, lt: `${scenario}0` })) n++;
    return n;
  }

  /**
   * Walks the chain: each key equal to its entry's seq, each `prev` the hash of the entry before; unreadable entries are damaged
   * ranges, recorded gaps and a tail behind the signed head are missing ranges. Intact means none of these.
   */
  async verify(): Promise<AuditVerdict> {
    return (await this.walk()).verdict;
  }

  /**
   * verify() for a live log, amortised: an intact verdict is extended over the entries appended since (concurrent callers share
   * one walk); a verdict that was not intact is recomputed in full.
   */
  verifyCached(): Promise<AuditVerdict> {
    this.checking ??= (async () => {
      const from = this.checked?.verdict.intact ? this.checked : undefined;
      const r = await this.walk(from);
      this.checked = r;
      return r.verdict;
    })().finally(() => { this.checking = undefined; });
    return this.checking;
  }

  private checked: { verdict: AuditVerdict; seq: number; hash: string } | undefined;
  private checking: Promise<AuditVerdict> | undefined;

  private async walk(from?: { verdict: AuditVerdict; seq: number; hash: string }): Promise<{ verdict: AuditVerdict; seq: number; hash: string }> {
    const damaged: SeqRange[] = [];
    const missing: SeqRange[] = [];
    const broken: number[] = [];
    let expect = from ? from.seq + 1 : 0;
    let prevHash: string | undefined = from ? from.hash : '';
    let entries = from ? from.verdict.entries : 0;
    let lastSeq = from ? from.seq : -1;
    let headHash: string | undefined;
    const headInfo = this.opts.anchor ? await readHead(this.opts.anchor) : undefined;
    for await (const r of this.read(expect)) {
      if ('damaged' in r) {
        damaged.push(r.damaged);
        expect = r.damaged.to + 1;
        prevHash = undefined;
        continue;
      }
      const { seq, entry } = r;
      entries++;
      if (seq > expect) {
        missing.push({ from: expect, to: seq - 1 });
        // a gap entry is the log's own account of exactly that lost range (written at the next start): missing, not edited
        const gap = entry.kind === 'gap' ? parseRange(entry.detail) : undefined;
        if (!gap || gap.to !== seq - 1) broken.push(seq);
        prevHash = undefined;   // the entry before is gone: its hash cannot be checked here (the gap entry carries it)
      }
      if (!r.keyOk || (prevHash !== undefined && entry.prev !== prevHash)) broken.push(seq);
      if (entry.kind === 'gap') {
        let replacedSeq: unknown;
        try { replacedSeq = (JSON.parse(entry.detail ?? '{}') as { replaced?: unknown }).replaced; } catch { replacedSeq = undefined; }
        if (typeof replacedSeq === 'number') broken.push(replacedSeq);
      }
      prevHash = entryHash(entry);
      if (headInfo?.head.seq === seq) headHash = prevHash;
      lastSeq = seq;
      expect = seq + 1;
    }
    let anchor: AuditVerdict['anchor'] = 'none';
    if (headInfo) {
      anchor = headInfo.signature === 'ok' ? 'ok' : headInfo.signature === 'unsigned' ? 'unsigned' : 'bad-signature';
      const h = headInfo.head;
      if (h.seq > lastSeq && anchor !== 'bad-signature') missing.push({ from: lastSeq + 1, to: h.seq });
      else if (headHash !== undefined && headHash !== h.hash) anchor = 'mismatch';
    }
    const firstProblem = Math.min(...[...missing.map((m) => m.from), ...damaged.map((d) => d.from), ...broken].filter((x) => x >= 0), Number.POSITIVE_INFINITY);
    const intact = missing.length === 0 && damaged.length === 0 && broken.length === 0 && anchor !== 'mismatch' && anchor !== 'bad-signature';
    const intactUpTo = Number.isFinite(firstProblem) ? firstProblem - 1 : lastSeq;
    const missingCount = missing.reduce((a, m) => a + m.to - m.from + 1, 0);
    const verdict: AuditVerdict = {
      ok: intact, intact, entries, intact_up_to: intactUpTo,
      missing_after: missing.length ? (missing[0] as SeqRange).from - 1 : null,
      missing: missingCount, missing_ranges: missing, damaged_ranges: damaged, broken: [...new Set(broken)],
      ...(Number.isFinite(firstProblem) ? { brokenAt: firstProblem } : {}),
      anchor, ...(headInfo ? { head: { seq: headInfo.head.seq, hash: headInfo.head.hash } } : {}),
    };
    return { verdict, seq: lastSeq, hash: prevHash ?? '' };
  }
}

/** One model transfer as recorded: an individual entry, or one of the transfers listed in a `round` entry. */
export interface TransferRecord {
  readonly kind: 'model-sent' | 'model-received';
  readonly scenario?: string;
  /** The other peer: recipient (sent) or sender (received). */
  readonly peer: string;
  readonly what: string;
  readonly bytes?: number;
  readonly sha256?: string;
  readonly at: string;
  /** Sequence number of the entry that records it. */
  readonly seq: number;
}

/** Every model transfer in `entries`, individual entries and the lists of `round` entries alike (for reports and checks). */
export function transfers(entries: readonly AuditEntry[]): TransferRecord[] {
  const out: TransferRecord[] = [];
  for (const e of entries) {
    if (e.kind === 'model-sent') out.push({ kind: 'model-sent', scenario: e.scenario, peer: e.to, what: e.what, bytes: e.bytes, sha256: e.sha256, at: e.at, seq: e.seq });
    else if (e.kind === 'model-received') out.push({ kind: 'model-received', scenario: e.scenario, peer: /^from (\S+)/.exec(e.detail ?? '')?.[1] ?? e.to, what: e.what, bytes: e.bytes, sha256: e.sha256, at: e.at, seq: e.seq });
    else if (e.kind === 'round') {
      let d: Partial<Tally> = {};
      try { d = JSON.parse(e.detail ?? '{}') as Partial<Tally>; } catch { d = {}; }
      for (const x of d.sent ?? []) out.push({ kind: 'model-sent', scenario: e.scenario, peer: x.to, what: x.what, bytes: x.bytes, sha256: x.sha256, at: x.at ?? e.at, seq: e.seq });
      for (const x of d.received ?? []) out.push({ kind: 'model-received', scenario: e.scenario, peer: x.from, what: x.what, bytes: x.bytes, sha256: x.sha256, at: x.at ?? e.at, seq: e.seq });
    }
  }
  return out;
}

function parseRange(detail: string | undefined): SeqRange | undefined {
  try {
    const d = JSON.parse(detail ?? '') as { from?: unknown; to?: unknown };
    return typeof d.from === 'number' && typeof d.to === 'number' ? { from: d.from, to: d.to } : undefined;
  } catch {
    return undefined;
  }
}

function roundEntry(scenario: string, t: Tally): AuditInput {
  const sentBytes = t.sent.reduce((a, s) => a + s.bytes, 0);
  const recvBytes = t.received.reduce((a, s) => a + s.bytes, 0);
  const peers = new Set(t.sent.map((s) => s.to)).size;
  const detail = JSON.stringify({ round: t.round, sent: t.sent, received: t.received, totals: { sent: t.sent.length, sentBytes, received: t.received.length, receivedBytes: recvBytes } });
  return { kind: 'round', to: 'local', scenario, bytes: sentBytes, sha256: sha256Hex(detail), detail,
    what: `round ${t.round}: ${t.sent.length} model message(s) sent to ${peers} peer(s) (${sentBytes} B), ${t.received.length} received (${recvBytes} B)` };
}

/** The newest readable entry (a damaged tail block is skipped backwards). */
async function lastReadable(store: Store): Promise<AuditEntry | undefined> {
  try {
    for await (const [, value] of store.audit.iterator({ reverse: true, limit: 1 })) return value as AuditEntry;
    return undefined;
  } catch (e) {
    if (!isCorruption(e)) throw e;
  }
  // the newest block is damaged: walk the readable entries forward and keep the last one
  let last: AuditEntry | undefined;
  let cursor = 0;
  for (let tries = 0; tries < 64; tries++) {
    try {
      for await (const [key, value] of store.audit.iterator({ gte: keyOf(cursor) })) { last = value as AuditEntry; cursor = Number(key) + 1; }
      return last;
    } catch (e) {
      if (!isCorruption(e)) throw e;
      let s = cursor + 1;
      for (; s < cursor + PROBE_LIMIT; s++) {
        try { if ((await store.audit.get(keyOf(s))) !== undefined) break; } catch { /* still damaged */ }
      }
      if (s >= cursor + PROBE_LIMIT) return last;
      cursor = s;
    }
  }
  return last;
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
