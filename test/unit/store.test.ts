import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, storePath, type Store } from '../../src/store/db.ts';
import { AuditLog, sha256Hex } from '../../src/store/audit.ts';
import { loadRound, saveRound } from '../../src/store/checkpoints.ts';
import { CohortError } from '../../src/util/errors.ts';

const dirs: string[] = [];
const open: Store[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'cohort-store-'));
  dirs.push(d);
  return d;
}
async function openTracked(dir: string, create: boolean): Promise<Store> {
  const s = await openStore(dir, { create });
  open.push(s);
  return s;
}
afterEach(async () => {
  for (const s of open.splice(0)) if (s.db.status === 'open') await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(CohortError);
    expect((e as CohortError).hint).toBeTruthy();
    return (e as CohortError).code;
  }
  return 'no error';
}

describe('openStore', () => {
  it('creates, reopens and keeps values; binary checkpoints come back byte-identical', async () => {
    const dir = tempDir();
    const s = await openTracked(dir, true);
    await s.scenarios.put('a', { x: 1 });
    await s.checkpoints.put('c', new Uint8Array([1, 2, 3]));
    await s.close();
    const s2 = await openTracked(dir, false);
    expect(await s2.scenarios.get('a')).toEqual({ x: 1 });
    expect([...(await s2.checkpoints.get('c'))!]).toEqual([1, 2, 3]);
    expect(await s2.meta.get('format')).toMatchObject({ version: 1 });
  });

  it('refuses a missing store when it should exist, a locked one, a corrupt one and a foreign format', async () => {
    const dir = tempDir();
    expect(await code(openStore(dir, { create: false }))).toBe('STORE_MISSING');
    const s = await openTracked(dir, true);
    expect(await code(openStore(dir, { create: true }))).toBe('STORE_LOCKED');
    await s.meta.put('format', { version: 99 });
    await s.close();
    expect(await code(openStore(dir, { create: false }))).toBe('STORE_FORMAT');

    const dir2 = tempDir();
    await (await openTracked(dir2, true)).close();
    for (const f of readdirSync(storePath(dir2))) {
      if (f.startsWith('MANIFEST')) writeFileSync(join(storePath(dir2), f), Buffer.alloc(300, 7));
    }
    expect(await code(openStore(dir2, { create: false }))).toBe('STORE_CORRUPT');
    expect(readdirSync(storePath(dir2)).length).toBeGreaterThan(0); // never reset
  });
});

describe('AuditLog', () => {
  it('appends in order across reopen, hash-chained; an edited entry breaks verify()', async () => {
    const dir = tempDir();
    let s = await openTracked(dir, true);
    let log = await AuditLog.open(s);
    await Promise.all([0, 1, 2].map((i) => log.append({ kind: 'model-sent', to: `peer${i}`, what: `round ${i}`, bytes: 10 * i, sha256: sha256Hex(String(i)) })));
    await s.close();
    s = await openTracked(dir, false);
    log = await AuditLog.open(s);
    await log.append({ kind: 'approval', to: 'local', what: 'approved', scenario: 'abc' });
    const all = await log.list();
    expect(all.map((e) => e.seq)).toEqual([0, 1, 2, 3]);
    expect(all.map((e) => e.to).slice(0, 3).sort()).toEqual(['peer0', 'peer1', 'peer2']);
    expect(await log.list({ scenario: 'abc' })).toHaveLength(1);
    expect(await log.verify()).toMatchObject({ ok: true, intact: true, entries: 4, missing: 0, damaged_ranges: [] });
    await s.audit.put('0000000000000001', { ...all[1], bytes: 0 });
    expect(await log.verify()).toMatchObject({ ok: false, brokenAt: 2 });
  });
});

describe('checkpoints', () => {
  it('saves round state and bytes together; a mismatching pair is refused', async () => {
    const s = await openTracked(tempDir(), true);
    expect(await loadRound(s, 'sc')).toBeUndefined();
    await saveRound(s, 'sc', { round: 1 }, new Uint8Array([1]));
    await saveRound(s, 'sc', { round: 2, loss: 0.5 }, new Uint8Array([2, 2]));
    const r = await loadRound(s, 'sc');
    expect(r?.state).toMatchObject({ round: 2, loss: 0.5 });
    expect([...r!.bytes]).toEqual([2, 2]);
    await s.checkpoints.put('sc/latest', new Uint8Array([9]));
    expect(await code(loadRound(s, 'sc'))).toBe('CHECKPOINT_CORRUPT');
  });
});
