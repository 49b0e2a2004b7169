/**
 * Store maintenance for a stopped peer (`cohort store verify|backup|repair`): each holds the store like a daemon would (the
 * instance file and LevelDB's LOCK), so it refuses while the daemon runs.
 *
 *   await verifyStore(peerDir, anchor)          every sublevel read to the end, the audit chain, every checkpoint against its state
 *   await backupStore(peerDir, outDir, anchor)  a file copy of the store and the audit head, verified after the copy
 *   await repairStore(peerDir, anchor)          keeps a copy of the damaged store, runs LevelDB's repair, reports what was lost
 */
import { cpSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { AuditLog, type AuditVerdict } from './audit.ts';
import { loadRound } from './checkpoints.ts';
import { errorText, holdStore, openStore, storePath, type Store } from './db.ts';
import { headFile, type HeadAnchor } from './head.ts';

export interface SublevelReport { readonly entries: number; readonly damaged: boolean; readonly error?: string }
export interface StoreReport {
  readonly ok: boolean;
  readonly location: string;
  readonly sublevels: Readonly<Record<string, SublevelReport>>;
  readonly audit: AuditVerdict;
  readonly checkpoints: { readonly checked: number; readonly bad: readonly string[] };
}

const SUBLEVELS = ['scenarios', 'checkpoints', 'audit', 'auditIndex', 'datasets', 'meta'] as const;

async function scan(store: Store): Promise<Record<string, SublevelReport>> {
  const out: Record<string, SublevelReport> = {};
  for (const name of SUBLEVELS) {
    let entries = 0;
    try {
      // values too: a value that does not decode is damage as much as an unreadable block
      for await (const _ of (store[name] as Store['meta']).iterator()) entries++;
      out[name] = { entries, damaged: false };
    } catch (e) {
      out[name] = { entries, damaged: true, error: errorText(e).split('\n')[0] };
    }
  }
  return out;
}

async function inspect(store: Store, anchor: HeadAnchor | undefined): Promise<StoreReport> {
  const sublevels = await scan(store);
  const audit = await (await AuditLog.open(store, { anchor, readOnly: true })).verify();
  const bad: string[] = [];
  let checked = 0;
  try {
    for await (const key of store.scenarios.keys({ gte: 'run/', lt: 'run0' })) {
      checked++;
      try { await loadRound(store, key.slice(4)); } catch { bad.push(key.slice(4)); }
    }
  } catch { /* the scenarios sublevel is damaged: reported above */ }
  const damaged = Object.values(sublevels).some((s) => s.damaged);
  return { ok: !damaged && audit.intact && bad.length === 0, location: store.location, sublevels, audit, checkpoints: { checked, bad } };
}

export async function verifyStore(peerDir: string, anchor?: HeadAnchor): Promise<StoreReport> {
  const store = await openStore(peerDir, { create: false });
  try {
    return await inspect(store, anchor);
  } finally {
    await store.close();
  }
}

export interface BackupReport { readonly out: string; readonly files: number; readonly bytes: number; readonly verify: StoreReport }

/** Copies the held (hence quiescent) store file by file, with the audit head; then verifies the copy by opening it. */
export async function backupStore(peerDir: string, outDir: string, anchor?: HeadAnchor): Promise<BackupReport> {
  const target = storePath(outDir);
  if (existsSync(target) && readdirSync(target).length > 0) throw new Error(`${target} exists and is not empty: choose a new --out folder`);
  const store = await openStore(peerDir, { create: false });
  let files = 0;
  let bytes = 0;
  try {
    cpSync(store.location, target, { recursive: true, filter: (src) => !src.endsWith('/LOCK') });
    for (const f of readdirSync(target)) { files++; bytes += statSync(join(target, f)).size; }
    if (existsSync(headFile(peerDir))) cpSync(headFile(peerDir), headFile(outDir));
  } finally {
    await store.close();
  }
  const verify = await verifyStore(outDir, anchor ? { ...anchor, file: headFile(outDir), signer: undefined } : undefined);
  return { out: outDir, files, bytes, verify };
}

export interface RepairReport {
  readonly location: string;
  /** The damaged store as it was, kept beside it. */
  readonly keptCopy: string;
  /** What could be read before (undefined when the store could not be opened at all). */
  readonly before?: Readonly<Record<string, SublevelReport>>;
  readonly after: StoreReport;
  /** Entries per sublevel that were readable before and are gone after (only when `before` is known). */
  readonly lost: Readonly<Record<string, number>>;
  /** Files LevelDB's repair could not use (moved to store/lost/). */
  readonly lostFiles: readonly string[];
}

export async function repairStore(peerDir: string, anchor?: HeadAnchor): Promise<RepairReport> {
  const location = storePath(peerDir);
  let before: Record<string, SublevelReport> | undefined;
  try {
    const s = await openStore(peerDir, { create: false });
    try { before = await scan(s); } finally { await s.close(); }
  } catch (e) {
    if ((e as { code?: string }).code === 'STORE_LOCKED') throw e;
    before = undefined;   // too damaged to open: the repair rebuilds what it can
  }
  const release = holdStore(location);
  const keptCopy = `${location}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  try {
    cpSync(location, keptCopy, { recursive: true, filter: (src) => !src.endsWith('/LOCK') });
    await (Level as unknown as { repair(location: string): Promise<void> }).repair(location);
  } finally {
    release();
  }
  const after = await verifyStore(peerDir, anchor);
  const lost = before ? Object.fromEntries(SUBLEVELS.map((n) => [n, Math.max(0, (before[n]?.entries ?? 0) - (after.sublevels[n]?.entries ?? 0))])) : {};
  const lostDir = join(location, 'lost');
  const lostFiles = existsSync(lostDir) ? readdirSync(lostDir) : [];
  return { location, keptCopy, before, after, lost, lostFiles };
}
