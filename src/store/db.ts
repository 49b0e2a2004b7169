/**
 * A peer's persistent store: one LevelDB (level 10) in `<peerDir>/store`, split into sublevels.
 *
 *   const store = await openStore(dir, { create: true });   // create: false when the store must already exist (restart)
 *   store.scenarios / store.audit / store.meta / store.datasets   JSON values, string keys
 *   store.checkpoints                                          binary values (Uint8Array), string keys
 *   await store.db.batch([...])                                atomic across sublevels (use `sublevel` in each op)
 *   await store.close();
 *
 * Opening never silently resets: a missing store (when it should exist), a store locked by another process, a corrupt store
 * or one written by an unknown format version each throw a CohortError that says what to do.
 *
 * Single writer: besides LevelDB's LOCK file, `<peerDir>/store.instance` names the process holding the store (pid, host, process
 * start time, a random instance id). It is checked before LevelDB is touched, so a second daemon is refused even when someone
 * deleted LOCK; a file left by a dead process is taken over. A missing CURRENT file (with the other files present) is damage,
 * not an absent store. storeError(location, e) maps any LevelDB corruption met later (a read in a damaged block) to
 * STORE_CORRUPT with the same hint.
 *
 * Commit points (written with `sync: true`, so they survive a power cut once the call returns): audit entries (src/store/audit.ts,
 * group-committed) and per-round checkpoints with their round state (src/store/checkpoints.ts). LevelDB appends every write to
 * one log in order, so a synced write also makes every earlier write durable (lifecycle views and approvals written before the
 * audit entry that records them).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';
import { CohortError } from '../util/errors.ts';

/** Bumped when the on-disk layout changes incompatibly; a store with another version is refused, never rewritten. */
export const STORE_FORMAT_VERSION = 1;

export type RootDb = Level<string, unknown>;
export type JsonSublevel<V = unknown> = AbstractSublevel<RootDb, string | Buffer | Uint8Array, string, V>;
export type BinarySublevel = AbstractSublevel<RootDb, string | Buffer | Uint8Array, string, Uint8Array>;

export interface Store {
  readonly location: string;
  readonly db: RootDb;
  readonly scenarios: JsonSublevel;
  readonly checkpoints: BinarySublevel;
  readonly audit: JsonSublevel;
  /** `<scenario>/<audit key>` -> seq: pages of one scenario's audit entries without reading the whole log. */
  readonly auditIndex: JsonSublevel;
  readonly datasets: JsonSublevel;
  readonly meta: JsonSublevel;
  /** Free-space floor for bulk writes (see checkSpace in src/store/space.ts). */
  readonly minFreeBytes: number;
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** Create the store when it does not exist (first start). When false, a missing store is an error. */
  create: boolean;
  /** Free-space floor for bulk writes (checkpoints, final models): checkSpace() refuses below it (0: no floor). */
  minFreeBytes?: number;
}

interface FormatMarker { version: number; createdAt: string }

/** Where a peer directory keeps its LevelDB. */
export function storePath(peerDir: string): string {
  return join(peerDir, 'store');
}

export async function openStore(peerDir: string, opts: OpenStoreOptions): Promise<Store> {
  const location = storePath(peerDir);
  const existed = hasLevelFiles(location);
  if (!existed && !opts.create) {
    throw new CohortError('STORE_MISSING', `no store at ${location}`,
      'this peer was started before, so its store should exist: restore it from backup, or start with a new peer directory');
  }
  if (existed && statSync(location).isDirectory() && !existsSync(join(location, 'CURRENT'))) {
    throw corrupt(location, new Error('its CURRENT file is missing (the store is damaged, not absent)'));
  }
  const release = claimInstance(location);
  const db = new Level<string, unknown>(location, { valueEncoding: 'json' });
  try {
    await db.open({ createIfMissing: opts.create });
  } catch (e) {
    release();
    throw openError(location, e);
  }
  const store = makeStore(location, db, release, opts.minFreeBytes ?? 0);
  try {
    await checkFormat(store, existed);
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}

function makeStore(location: string, db: RootDb, release: () => void, minFreeBytes: number): Store {
  return {
    location,
    db,
    minFreeBytes,
    scenarios: db.sublevel<string, unknown>('scenarios', { valueEncoding: 'json' }),
    checkpoints: db.sublevel<string, Uint8Array>('checkpoints', { valueEncoding: 'view' }),
    audit: db.sublevel<string, unknown>('audit', { valueEncoding: 'json' }),
    auditIndex: db.sublevel<string, unknown>('audit-index', { valueEncoding: 'json' }),
    datasets: db.sublevel<string, unknown>('datasets', { valueEncoding: 'json' }),
    meta: db.sublevel<string, unknown>('meta', { valueEncoding: 'json' }),
    close: async () => {
      try { await db.close(); } finally { release(); }
    },
  };
}

/** Where the single-writer instance file of a store lives (beside the store, in the peer directory). */
export function instanceFile(location: string): string {
  return join(dirname(location), 'store.instance');
}

interface InstanceRecord { pid: number; host: string; started?: string; instance: string; at: string }
const openHere = new Set<string>();

/** Start time of a process (Linux /proc; undefined elsewhere): tells a live holder from a reused pid. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Refuses when a live process (this one included) holds the store; otherwise writes this process's record (synced).
 * Returns the release function (removes the file when it is still ours).
 */
function claimInstance(location: string): () => void {
  const file = instanceFile(location);
  if (openHere.has(location)) throw locked(location, `it is already open in this process (pid ${process.pid})`);
  if (existsSync(file)) {
    let rec: Partial<InstanceRecord> | undefined;
    try { rec = JSON.parse(readFileSync(file, 'utf8')) as Partial<InstanceRecord>; } catch { rec = undefined; }
    if (rec && typeof rec.pid === 'number' && rec.host === hostname() && rec.pid !== process.pid && alive(rec.pid)
      && (rec.started === undefined || processStart(rec.pid) === undefined || processStart(rec.pid) === rec.started)) {
      throw locked(location, `process ${rec.pid} holds it (${file}, since ${rec.at ?? '?'})`);
    }
  }
  if (existsSync(dirname(location))) {
    const rec: InstanceRecord = { pid: process.pid, host: hostname(), started: processStart(process.pid), instance: randomBytes(8).toString('hex'), at: new Date().toISOString() };
    writeSynced(file, JSON.stringify(rec) + '\n');
    openHere.add(location);
    return () => {
      openHere.delete(location);
      try {
        const cur = JSON.parse(readFileSync(file, 'utf8')) as InstanceRecord;
        if (cur.instance === rec.instance) rmSync(file, { force: true });
      } catch { /* gone or unreadable: nothing of ours to remove */ }
    };
  }
  openHere.add(location);
  return () => { openHere.delete(location); };
}

/**
 * Holds a store for exclusive use without opening LevelDB (repair): refuses while a live process holds it; returns the release.
 */
export function holdStore(location: string): () => void {
  return claimInstance(location);
}

/** Write a small file and fsync it before returning (the instance file, the audit head). */
export function writeSynced(file: string, text: string): void {
  const fd = openSync(file, 'w', 0o644);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function locked(location: string, why: string): CohortError {
  return new CohortError('STORE_LOCKED', `store ${location} is in use by another process: ${why}`,
    'another cohort peer is running with this peer directory: stop it first (one daemon per peer directory); nothing in the store was touched');
}

/** A new store gets the marker; an existing one must carry the current marker (its absence means damage, not "new"). */
async function checkFormat(store: Store, existed: boolean): Promise<void> {
  let marker: unknown;
  try {
    marker = await store.meta.get('format');
  } catch (e) {
    throw corrupt(store.location, e);
  }
  if (marker === undefined) {
    if (existed && (await hasAnyKey(store))) throw corrupt(store.location, new Error('format marker missing'));
    const m: FormatMarker = { version: STORE_FORMAT_VERSION, createdAt: new Date().toISOString() };
    await store.meta.put('format', m);
    return;
  }
  const version = (marker as Partial<FormatMarker>).version;
  if (version !== STORE_FORMAT_VERSION) {
    throw new CohortError('STORE_FORMAT', `store ${store.location} has format version ${String(version)}, this cohort reads ${STORE_FORMAT_VERSION}`,
      'run the cohort version that wrote this store, or migrate it; the store was left untouched');
  }
}

async function hasAnyKey(store: Store): Promise<boolean> {
  for await (const _k of store.db.keys({ limit: 1 })) return true;
  return false;
}

function hasLevelFiles(location: string): boolean {
  if (!existsSync(location)) return false;
  if (!statSync(location).isDirectory()) return true;   // something else sits there: let open() report it
  return readdirSync(location).length > 0;
}

function openError(location: string, e: unknown): CohortError {
  const text = errorText(e);
  if (/no space left|ENOSPC/i.test(text)) {
    return new CohortError('DISK_FULL', `store ${location} could not be opened: the disk is full`,
      'free space on that disk and start again; nothing committed was lost (opening needs a little room to write its log into a table)', { cause: e });
  }
  if (/LEVEL_LOCKED|\block\b|locked/i.test(text) && !/corrupt/i.test(text)) {
    return new CohortError('STORE_LOCKED', `store ${location} is in use by another process`,
      'another cohort peer is running with this peer directory: stop it first (one daemon per peer directory)', { cause: e });
  }
  if (/does not exist|LEVEL_DATABASE_NOT_OPEN.*missing/i.test(text) && !/corrupt/i.test(text)) {
    return new CohortError('STORE_MISSING', `no store at ${location}`,
      'restore the peer directory from backup, or start with a new one', { cause: e });
  }
  return corrupt(location, e);
}

const CORRUPT_HINT = 'stop the daemon and restore the store from backup (`cohort store backup` makes one), or run `cohort store repair --peer DIR` '
  + '(LevelDB repair; it keeps a copy of the damaged store and reports what was lost); `cohort store verify` says what is damaged';

function corrupt(location: string, e: unknown, opened = false): CohortError {
  return new CohortError('STORE_CORRUPT', `store ${location} is damaged${opened ? '' : ' and was not opened'} (${errorText(e).split('\n')[0]})`,
    CORRUPT_HINT, { cause: e });
}

/** True when an error from LevelDB (or from decoding one of its values) means damaged data. */
export function isCorruption(e: unknown): boolean {
  return /corrupt|LEVEL_DECODE_ERROR|checksum|bad block|truncated|unexpected end of json|in json at position/i.test(errorText(e));
}

/**
 * Maps an error met while using an open store: LevelDB corruption (or an undecodable value) becomes STORE_CORRUPT with the
 * repair/backup hint; a CohortError or any other error is returned unchanged.
 */
export function storeError(location: string, e: unknown): unknown {
  if (e instanceof CohortError) return e;
  return isCorruption(e) ? corrupt(location, e, true) : e;
}

/** level wraps the real cause (LEVEL_LOCKED, Corruption: ...) in LEVEL_DATABASE_NOT_OPEN: collect the whole chain. */
export function errorText(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur instanceof Error; i++) {
    const code = (cur as { code?: unknown }).code;
    parts.push(`${typeof code === 'string' ? code + ': ' : ''}${cur.message}`);
    cur = cur.cause;
  }
  return parts.length ? parts.join(' <- ') : String(e);
}
