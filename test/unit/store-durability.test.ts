/**
 * The store under an operator's bad day, on real LevelDB stores (copy, damage, reopen): a half-truncated write-ahead log, a
 * truncated audit tail, flipped bits in an audit block and in the scenario views, a missing CURRENT, a LOCK file removed under
 * a live holder, and (where tmpfs can be mounted) a full disk.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { identityFromSeed, type Identity } from '../../src/net/identity.ts';
import { AuditLog, type AuditVerdict } from '../../src/store/audit.ts';
import { openStore, storeError, storePath, type Store } from '../../src/store/db.ts';
import { headAnchor, headFile, recordWitness, witnessed } from '../../src/store/head.ts';
import { loadRound, saveRound } from '../../src/store/checkpoints.ts';
import { freeBytes } from '../../src/store/space.ts';
import { CohortError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/random.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dirs: string[] = [];
const open: Store[] = [];
const children: ChildProcess[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'cohort-dur-'));
  dirs.push(d);
  return d;
}
async function openTracked(dir: string, create = false): Promise<Store> {
  const s = await openStore(dir, { create });
  open.push(s);
  return s;
}
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const s of open.splice(0)) if (s.db.status === 'open') await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

let ident: Identity | undefined;
async function identity(): Promise<Identity> {
  ident ??= await identityFromSeed(new Rng(7));
  return ident;
}
async function signedLog(dir: string, store: Store): Promise<AuditLog> {
  const id = await identity();
  return AuditLog.open(store, { anchor: headAnchor(dir, id.privateKey, id.peerId.toString()) });
}
async function fill(log: AuditLog, n: number, scenario = 'sc1'): Promise<void> {
  for (let i = 0; i < n; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => log.append({ kind: 'gossip-sent', to: 'gossip:cohort/heartbeat', what: `heartbeat ${i + j} ${'x'.repeat(60)}`, scenario, bytes: 100 + i + j })));
  }
}
/** A copy of a peer directory's store and head file, as a backup tool or a power cut would leave it (the source stays open). */
function copyPeer(from: string): string {
  const to = tempDir();
  cpSync(storePath(from), storePath(to), { recursive: true });
  if (existsSync(headFile(from))) copyFileSync(headFile(from), headFile(to));
  return to;
}
function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, COHORT_LOG_LEVEL: 'warn' }, timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
async function code(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) {
    expect(e).toBeInstanceOf(CohortError);
    return (e as CohortError).code;
  }
  return 'no error';
}
function tables(dir: string): string[] {
  return readdirSync(storePath(dir)).filter((f) => f.endsWith('.ldb')).map((f) => join(storePath(dir), f));
}
function flipBit(file: string, at: number): void {
  const b = readFileSync(file);
  b[at] = (b[at] as number) ^ 0x10;
  writeFileSync(file, b);
}

/** 3000 entries with a fixed clock (the bytes on disk, hence what a given flip does, are the same at every run), in a table file. */
async function auditTable(): Promise<{ dir: string; table: string }> {
  const dir = tempDir();
  let s = await openTracked(dir, true);
  const id = await identity();
  const log = await AuditLog.open(s, { anchor: headAnchor(dir, id.privateKey, id.peerId.toString()), now: () => Date.UTC(2026, 0, 1) });
  await fill(log, 3000);
  await s.close();
  s = await openTracked(dir);        // reopening turns the write-ahead log into a table file
  await s.close();
  const [table] = tables(dir).sort((a, b) => statSync(b).size - statSync(a).size);
  expect(table).toBeDefined();
  return { dir, table: table! };
}
async function damagedVerdict(dir: string): Promise<{ v: AuditVerdict; log: AuditLog }> {
  const s = await openTracked(dir);
  const log = await AuditLog.open(s, { anchor: headAnchor(dir), readOnly: true });
  return { v: await log.verify(), log };
}

describe('commit points and truncation', () => {
  it('a half-truncated write-ahead log opens; the lost tail is named by verify and the numbering continues after the signed head', async () => {
    const dir = tempDir();
    const s = await openTracked(dir, true);
    const log = await signedLog(dir, s);
    await fill(log, 600);
    // the synced entries are in the log file on disk now; a copy taken while the store is open is what a power cut leaves
    const copy = copyPeer(dir);
    const wal = readdirSync(storePath(copy)).filter((f) => f.endsWith('.log')).map((f) => join(storePath(copy), f)).sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
    truncateSync(wal, Math.floor(statSync(wal).size / 2));
    const s2 = await openTracked(copy);
    const ro = await AuditLog.open(s2, { anchor: headAnchor(copy), readOnly: true });
    const before = await ro.verify();
    expect(before.intact).toBe(false);
    expect(before.missing).toBeGreaterThan(100);
    expect(before.missing_after).toBe(before.entries - 1);        // entries 0..N survive; N+1.. are gone
    expect(before.missing_after! + 1 + before.missing).toBe(600); // the head anchored entry 599
    expect(before.damaged_ranges).toEqual([]);
    // the daemon's open records the loss and never reuses a sequence number
    const log2 = await signedLog(copy, s2);
    expect(log2.recovery.lostTail).toEqual({ from: before.entries, to: 599 });
    const e = await log2.append({ kind: 'start', to: 'local', what: 'daemon started' });
    expect(e?.seq).toBe(601);                                      // 600 is the gap entry
    const after = await log2.verify();
    expect(after).toMatchObject({ intact: false, missing_after: before.missing_after, missing: before.missing, broken: [], anchor: 'ok' });
    const gap = (await log2.page({ limit: 2 })).entries[1]!;
    expect(gap.kind).toBe('gap');
    expect(JSON.parse(gap.detail!)).toEqual({ from: before.entries, to: 599, count: before.missing });
  });

  it('a truncated audit tail (entries removed behind the head) is detected; a store that never lost anything verifies intact', async () => {
    const dir = tempDir();
    const s = await openTracked(dir, true);
    const log = await signedLog(dir, s);
    await fill(log, 120);
    expect(await log.verify()).toMatchObject({ intact: true, ok: true, entries: 120, missing: 0, missing_after: null, anchor: 'ok', head: { seq: 119 } });
    for (let seq = 100; seq < 120; seq++) await s.audit.del(String(seq).padStart(16, '0'));
    const v = await log.verify();
    expect(v).toMatchObject({ intact: false, entries: 100, intact_up_to: 99, missing_after: 99, missing: 20, missing_ranges: [{ from: 100, to: 119 }] });
    // an edited head file is not believed
    const h = JSON.parse(readFileSync(headFile(dir), 'utf8')) as { seq: number };
    writeFileSync(headFile(dir), JSON.stringify({ ...h, seq: 5000 }));
    expect((await log.verify()).anchor).toBe('bad-signature');
  });

  it('a lost tail with a round tally open: the gap entry comes first, the recovered round after it; a replaced newest entry is recorded', async () => {
    const dir = tempDir();
    let s = await openTracked(dir, true);
    let log = await signedLog(dir, s);
    await fill(log, 40);
    await log.transfer({ kind: 'model-sent', scenario: 'sc1', round: 3, peer: 'pA', what: 'round 3 model', bytes: 10, sha256: 'b'.repeat(64) });
    for (let seq = 30; seq < 40; seq++) await s.audit.del(String(seq).padStart(16, '0'));
    await s.close();
    s = await openTracked(dir);
    log = await signedLog(dir, s);
    expect(log.recovery).toMatchObject({ lostTail: { from: 30, to: 39 }, recoveredRounds: 1 });
    const [round, gap] = (await log.page({ limit: 2 })).entries;
    expect([gap!.seq, gap!.kind, round!.seq, round!.kind]).toEqual([40, 'gap', 41, 'round']);
    expect(await log.verify()).toMatchObject({ intact: false, missing_after: 29, missing: 10, broken: [] });
    // the newest entry rewritten behind the head's back (same number, other content): recorded at the next open, never intact again
    const last = (await log.page({ limit: 1 })).entries[0]!;
    await s.audit.put(String(last.seq).padStart(16, '0'), { ...last, what: 'something else' });
    await s.close();
    s = await openTracked(dir);
    log = await signedLog(dir, s);
    expect(log.recovery.replaced).toBe(41);
    await fill(log, 5);
    expect((await log.verify()).broken).toContain(41);
  });

  it('cohort audit --verify --json on a stopped peer prints the verdict', async () => {
    const dir = tempDir();
    const s = await openTracked(dir, true);
    const log = await signedLog(dir, s);
    await fill(log, 60);
    for (let seq = 50; seq < 60; seq++) await s.audit.del(String(seq).padStart(16, '0'));
    await s.close();
    const r = cli(['audit', '--verify', '--json', '--peer', dir]);
    expect(r.code, r.stderr).toBe(1);
    const v = JSON.parse(r.stdout) as AuditVerdict;
    expect(v).toMatchObject({ intact: false, entries: 50, missing_after: 49, missing: 10, damaged_ranges: [] });
    expect(Object.keys(v).slice(0, 4)).toEqual(['intact', 'entries', 'missing_after', 'damaged_ranges']);
  });
});

describe('attestation by neighbours', () => {
  it('a neighbour keeps the highest signed head each peer announced; forged, foreign or older heads are not kept', async () => {
    const dir = tempDir();
    const s = await openTracked(dir, true);
    const log = await signedLog(dir, s);
    await fill(log, 5);
    const head = log.head!;
    const me = (await identity()).peerId.toString();
    expect(head).toMatchObject({ peer: me, seq: 4 });
    const other = await identityFromSeed(new Rng(99));
    const w = await openTracked(tempDir(), true);
    expect(await recordWitness(w, other.peerId.toString(), head)).toBe(false);          // announced by someone else
    expect(await recordWitness(w, me, { ...head, seq: 9 })).toBe(false);                 // edited after signing
    expect(await recordWitness(w, me, head)).toBe(true);
    await fill(log, 3);
    expect(await recordWitness(w, me, log.head)).toBe(true);
    expect(await recordWitness(w, me, head)).toBe(false);                                // older than what is kept
    expect((await witnessed(w)).map((h) => [h.peer, h.seq])).toEqual([[me, 7]]);
  });
});

describe('damage is isolated and named', () => {
  it('a damaged audit block: the entries around it are listed, the damaged range is named, the newest page is unaffected', async () => {
    const { dir, table } = await auditTable();
    // audit keys sort first in the table ('!audit!' < '!audit-index!' < '!meta!'): a third of the way in is an audit block
    const b = readFileSync(table);
    b.fill(0x5a, Math.floor(b.length / 3), Math.floor(b.length / 3) + 64);
    writeFileSync(table, b);
    const { v, log } = await damagedVerdict(dir);
    expect(v.intact).toBe(false);
    expect(v.damaged_ranges.length).toBe(1);
    const [r] = v.damaged_ranges;
    expect(r!.from).toBeGreaterThan(100);
    expect(r!.to - r!.from).toBeLessThan(200);                                    // one block's worth, not the log
    const listed = await log.list();
    expect(listed.length + r!.to - r!.from + 1).toBe(3000);
    expect(listed.at(-1)?.seq).toBe(2999);                                        // what follows the damage is still listed
    expect(listed.find((e) => e.seq === r!.from - 1)).toBeDefined();
    expect(listed.find((e) => e.seq === r!.to + 1)).toBeDefined();
    // the newest page (what `cohort audit --limit 3` shows) is unaffected
    expect((await log.page({ limit: 3 })).entries.map((e) => e.seq)).toEqual([2999, 2998, 2997]);
    // and a page across the damage says which range it could not read
    const across = await log.page({ limit: 50, before: r!.to + 10 });
    expect(across.damaged_ranges.length).toBeGreaterThan(0);
    expect(across.entries.length + across.damaged_ranges.reduce((a, d) => a + d.to - d.from + 1, 0)).toBe(50);
  });

  it('one flipped bit in an audit block is found: a damaged range or an edited entry, in the middle; the rest is listed', async () => {
    const { dir, table } = await auditTable();
    flipBit(table, Math.floor(statSync(table).size / 3));
    const { v, log } = await damagedVerdict(dir);
    expect(v.intact).toBe(false);
    const bad = [...v.damaged_ranges.flatMap((r) => [r.from, r.to]), ...v.broken];
    expect(bad.length).toBeGreaterThan(0);
    expect(Math.min(...bad)).toBeGreaterThan(100);
    expect(Math.max(...bad) - Math.min(...bad)).toBeLessThan(200);
    expect((await log.list()).length).toBeGreaterThan(2800);
  });

  it('a flipped bit in the scenario views maps to STORE_CORRUPT with the repair hint', async () => {
    const dir = tempDir();
    let s = await openTracked(dir, true);
    for (let i = 0; i < 3000; i += 100) await s.scenarios.batch(Array.from({ length: 100 }, (_, j) => ({ type: 'put' as const, key: `view/${String(i + j).padStart(6, '0')}`, value: { state: 'running', approvals: { [`peer${i + j}`]: { at: new Date(0).toISOString(), sig: 'x'.repeat(80) } } } })));
    await s.close();
    s = await openTracked(dir);
    await s.close();
    const [table] = tables(dir).sort((a, b) => statSync(b).size - statSync(a).size);
    flipBit(table!, Math.floor(statSync(table!).size / 2));
    s = await openTracked(dir);
    let err: unknown;
    try { for await (const _ of s.scenarios.iterator({ gte: 'view/', lt: 'view0' })) { /* read them all, as the scenario book does */ } } catch (e) { err = storeError(s.location, e); }
    expect(err).toBeInstanceOf(CohortError);
    expect((err as CohortError).code).toBe('STORE_CORRUPT');
    expect((err as CohortError).hint).toContain('cohort store repair');
  });

  it('a missing CURRENT file says the store is damaged, not absent', async () => {
    const dir = tempDir();
    await (await openTracked(dir, true)).close();
    rmSync(join(storePath(dir), 'CURRENT'));
    const err = await openStore(dir, { create: false }).catch((e: unknown) => e);
    expect((err as CohortError).code).toBe('STORE_CORRUPT');
    expect((err as CohortError).message).toContain('CURRENT');
    // not even a creating open (cohort data add) starts a new store over it
    expect(await code(openStore(dir, { create: true }))).toBe('STORE_CORRUPT');
    expect(existsSync(join(storePath(dir), 'CURRENT'))).toBe(false);
  });
});

describe('cohort store backup | repair', () => {
  it('backup copies the store and the signed head and verifies the copy; the copy opens with every entry', async () => {
    const dir = tempDir();
    const s = await openTracked(dir, true);
    const log = await signedLog(dir, s);
    await fill(log, 300);
    await saveRound(s, 'sc1', { round: 4 }, new Uint8Array([4, 4, 4]));
    await s.close();
    const out = join(tempDir(), 'backup');
    const r = cli(['store', 'backup', '--out', out, '--json', '--peer', dir]);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as { files: number; bytes: number; verify: { ok: boolean; audit: AuditVerdict; checkpoints: { checked: number } } };
    expect(rep.files).toBeGreaterThan(2);
    expect(rep.verify).toMatchObject({ ok: true, audit: { intact: true, entries: 300, anchor: 'ok' }, checkpoints: { checked: 1 } });
    const b = await openTracked(out);
    expect((await loadRound(b, 'sc1'))?.state.round).toBe(4);
    expect((await (await AuditLog.open(b, { anchor: headAnchor(out), readOnly: true })).verify()).entries).toBe(300);
    // while a daemon holds the store, backup is refused before anything is copied
    await openTracked(dir);
    const held = cli(['store', 'backup', '--out', join(tempDir(), 'b2'), '--peer', dir]);
    expect(held.code).toBe(2);
    expect(held.stderr).toContain('in use');
  });

  it('repair keeps the damaged store, rebuilds what it can, and reports the audit range it lost', async () => {
    const { dir, table } = await auditTable();
    const b = readFileSync(table);
    b.fill(0x5a, Math.floor(b.length / 3), Math.floor(b.length / 3) + 64);
    writeFileSync(table, b);
    const before = (await damagedVerdict(dir)).v.damaged_ranges;
    for (const s of open.splice(0)) await s.close();
    expect(before).toHaveLength(1);
    const r = cli(['store', 'repair', '--json', '--peer', dir]);
    expect(r.code, r.stderr).toBe(1);                                  // repaired, but the lost entries stay lost: not intact
    const rep = JSON.parse(r.stdout) as { keptCopy: string; after: { audit: AuditVerdict } };
    expect(existsSync(rep.keptCopy)).toBe(true);
    expect(rep.after.audit.damaged_ranges).toEqual([]);                // nothing unreadable is left ...
    expect(rep.after.audit.missing_ranges).toEqual(before);            // ... and what was in the damaged block is named as lost
    expect(rep.after.audit.entries).toBe(3000 - (before[0]!.to - before[0]!.from + 1));
    const s = await openTracked(dir);
    expect((await (await AuditLog.open(s, { anchor: headAnchor(dir), readOnly: true })).list()).at(-1)?.seq).toBe(2999);
  });
});

describe('single writer', () => {
  it('a live holder keeps the store even when its LOCK file was removed; the second opener exits 2 before touching it', async () => {
    const dir = tempDir();
    await (await openTracked(dir, true)).close();
    const script = join(dir, 'holder.mts');
    writeFileSync(script, `import { openStore } from ${JSON.stringify(join(ROOT, 'src/store/db.ts'))};\nawait openStore(${JSON.stringify(dir)}, { create: false });\nprocess.stdout.write('open\\n');\nsetInterval(() => undefined, 1000);\n`);
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    await new Promise<void>((res, rej) => {
      child.stdout!.on('data', (b: Buffer) => { if (b.toString().includes('open')) res(); });
      child.once('exit', (c) => rej(new Error(`holder exited ${c}`)));
    });
    rmSync(join(storePath(dir), 'LOCK'));
    const listing = readdirSync(storePath(dir)).sort();
    const err = await openStore(dir, { create: false }).catch((e: unknown) => e);
    expect((err as CohortError).code).toBe('STORE_LOCKED');
    expect((err as CohortError).message).toContain(`process ${child.pid}`);
    const r = cli(['store', 'verify', '--peer', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('in use by another process');
    expect(readdirSync(storePath(dir)).sort()).toEqual(listing);                // no LOCK recreated, nothing compacted
    child.kill('SIGKILL');
    await new Promise((res) => child.once('exit', res));
    // a dead holder's file is taken over
    const s = await openTracked(dir);
    expect(s.db.status).toBe('open');
  });
});

describe('disk full (tmpfs)', () => {
  it('the free-space floor stops checkpoints before the disk is full; audit commits go on; a full disk fails writes, not the store; all committed survives', async (ctx) => {
    const mnt = tempDir();
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=5m', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) {
      console.warn(`disk-full test skipped: cannot mount a tmpfs here (${(m.stderr || m.error?.message || `exit ${m.status}`).trim()}); it needs root or CAP_SYS_ADMIN`);
      ctx.skip();
      return;
    }
    let s: Store | undefined;
    try {
      const dir = join(mnt, 'peer');
      mkdirSync(dir);
      s = await openStore(dir, { create: true, minFreeBytes: 1024 * 1024 });
      const log = await signedLog(dir, s);
      await fill(log, 100);
      // checkpoints of 256 KiB, one per scenario (each kept), until the floor refuses one
      let rounds = 0;
      let refused: unknown;
      for (; rounds < 100; rounds++) {
        try {
          await saveRound(s, `sc${rounds}`, { round: 1 }, new Uint8Array(256 * 1024).fill(rounds + 1));
        } catch (e) { refused = e; break; }
        await log.append({ kind: 'gossip-sent', to: 'gossip:x', what: `progress ${rounds}` });
      }
      expect((refused as CohortError).code).toBe('DISK_FULL');
      expect((refused as CohortError).message).toMatch(/free on the store's disk \(floor 1\.0 MB\)/);
      expect(rounds).toBeGreaterThan(3);
      expect(freeBytes(dir)).toBeGreaterThan(512 * 1024);       // refused before it hurt: room is left
      // the small commit points still fit
      for (let i = 0; i < 20; i++) await log.append({ kind: 'gossip-sent', to: 'gossip:x', what: `heartbeat after the floor ${i}` });
      const committed = log.next;
      // now fill the disk for real: a write that does not fit fails (its promise rejects), the process goes on
      const filler = join(mnt, 'filler');
      spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k', 'count=200'], { encoding: 'utf8' });
      let failed: unknown;
      try {
        for (let i = 0; i < 2000; i++) await log.append({ kind: 'gossip-sent', to: 'gossip:x', what: `on a full disk ${i} ${'y'.repeat(2000)}` });
      } catch (e) { failed = e; }
      expect(failed).toBeDefined();
      const beforeClose = log.next;
      await s.close().catch(() => undefined);
      s = undefined;
      // space returns: reopen; everything committed is there and the chain is intact
      rmSync(filler);
      s = await openStore(dir, { create: false });
      const v = await (await AuditLog.open(s, { anchor: headAnchor(dir), readOnly: true })).verify();
      expect(v.entries).toBeGreaterThanOrEqual(committed);
      expect(v.entries).toBe(beforeClose);
      expect(v).toMatchObject({ intact: true, missing: 0, damaged_ranges: [] });
      for (let i = 0; i < rounds; i++) expect((await loadRound(s, `sc${i}`))?.bytes[0]).toBe(i + 1);
    } finally {
      await s?.close().catch(() => undefined);
      spawnSync('umount', ['-l', mnt]);
    }
  });
});
