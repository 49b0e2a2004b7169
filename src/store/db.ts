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
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
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
  readonly datasets: JsonSublevel;
  readonly meta: JsonSublevel;
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** Create the store when it does not exist (first start). When false, a missing store is an error. */
  create: boolean;
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
  const db = new Level<string, unknown>(location, { valueEncoding: 'json' });
  try {
    await db.open({ createIfMissing: opts.create });
  } catch (e) {
    throw openError(location, e);
  }
  const store = makeStore(location, db);
  try {
    await checkFormat(store, existed);
  } catch (e) {
    await db.close();
    throw e;
  }
  return store;
}

function makeStore(location: string, db: RootDb): Store {
  return {
    location,
    db,
    scenarios: db.sublevel<string, unknown>('scenarios', { valueEncoding: 'json' }),
    checkpoints: db.sublevel<string, Uint8Array>('checkpoints', { valueEncoding: 'view' }),
    audit: db.sublevel<string, unknown>('audit', { valueEncoding: 'json' }),
    datasets: db.sublevel<string, unknown>('datasets', { valueEncoding: 'json' }),
    meta: db.sublevel<string, unknown>('meta', { valueEncoding: 'json' }),
    close: () => db.close(),
  };
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
  if (/LEVEL_LOCKED|lock/i.test(text)) {
    return new CohortError('STORE_LOCKED', `store ${location} is in use by another process`,
      'another cohort peer is running with this peer directory: stop it first (one daemon per peer directory)', { cause: e });
  }
  if (/does not exist|LEVEL_DATABASE_NOT_OPEN.*missing/i.test(text) && !/corrupt/i.test(text)) {
    return new CohortError('STORE_MISSING', `no store at ${location}`,
      'restore the peer directory from backup, or start with a new one', { cause: e });
  }
  return corrupt(location, e);
}

function corrupt(location: string, e: unknown): CohortError {
  return new CohortError('STORE_CORRUPT', `store ${location} is damaged and was not opened (${errorText(e).split('\n')[0]})`,
    'restore the store from backup, or move it aside and start again (the scenario history of this peer would be lost); it was left untouched',
    { cause: e });
}

/** level wraps the real cause (LEVEL_LOCKED, Corruption: ...) in LEVEL_DATABASE_NOT_OPEN: collect the whole chain. */
function errorText(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur instanceof Error; i++) {
    const code = (cur as { code?: unknown }).code;
    parts.push(`${typeof code === 'string' ? code + ': ' : ''}${cur.message}`);
    cur = cur.cause;
  }
  return parts.length ? parts.join(' <- ') : String(e);
}
