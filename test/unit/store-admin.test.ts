/**
 * The admin API's store-facing routes on a real audit log (src/peer/routes.ts with a stand-in daemon that holds a real store):
 * malformed bodies are 400 with the parse error, /audit pages from the end through the index, identical launches in flight
 * yield one scenario. Timing lives in bench/store.ts, not here.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAdminApi, type AdminApi } from '../../src/peer/admin.ts';
import type { Daemon } from '../../src/peer/daemon.ts';
import { adminRoutes } from '../../src/peer/routes.ts';
import { AuditLog, type AuditEntry } from '../../src/store/audit.ts';
import { openStore, type Store } from '../../src/store/db.ts';
import { scenarioId } from '../../src/scenario/signing.ts';

const dirs: string[] = [];
let api: AdminApi | undefined;
let store: Store | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
  await store?.close();
  store = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const IDS = ['aaaaaa11', 'bbbbbb22'];

async function serve(launch: (m: Record<string, unknown>) => Promise<{ id: string }>, launched = new Set<string>()): Promise<{ call: (method: string, path: string, body?: string) => Promise<{ status: number; json: Record<string, unknown> }>; audit: AuditLog }> {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-sadmin-'));
  dirs.push(dir);
  store = await openStore(dir, { create: true });
  const audit = await AuditLog.open(store);
  const fake = { audit, store, book: { list: () => IDS.map((id) => ({ signed: { id } })), has: (id: string) => launched.has(id) }, coordinator: { launch } } as unknown as Daemon;
  api = await startAdminApi(dir, adminRoutes(fake));
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  const call = async (method: string, path: string, body?: string) => {
    const r = await fetch(`http://127.0.0.1:${api!.port}${path}`, { method, body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
    return { status: r.status, json: await r.json() as Record<string, unknown> };
  };
  return { call, audit };
}

describe('admin API on the store', () => {
  it('a malformed JSON body is 400 with the parse error, not 500', async () => {
    const { call } = await serve(async () => ({ id: 'x' }));
    const r = await call('POST', '/scenarios', '{"manifest": {"name": ');
    expect(r.status).toBe(400);
    expect(r.json.error).toBe('BAD_JSON');
    expect(String(r.json.message)).toMatch(/^malformed JSON body: .*JSON/);
  });

  it('20 concurrent identical launches yield one scenario; the same manifest later answers its id; a different manifest is another launch', async () => {
    let calls = 0;
    const launched = new Set<string>();
    const { call } = await serve(async (m) => {
      calls++;
      await new Promise((res) => setTimeout(res, 20));
      launched.add(scenarioId(m));
      return { id: scenarioId(m) };
    }, launched);
    const manifest = { name: 'same', rounds: { max: 3 } };
    const answers = await Promise.all(Array.from({ length: 20 }, () => call('POST', '/scenarios', JSON.stringify({ manifest }))));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(new Set(answers.map((a) => a.json.id))).toEqual(new Set([scenarioId(manifest)]));
    expect(calls).toBe(1);
    expect((await call('POST', '/scenarios', JSON.stringify({ manifest }))).json).toEqual({ id: scenarioId(manifest), existing: true });
    expect((await call('POST', '/scenarios', JSON.stringify({ manifest: { name: 'other' } }))).json.id).toBe(scenarioId({ name: 'other' }));
    expect(calls).toBe(2);
  });

  it('/audit?limit= pages from the end (next = before of the older page); a scenario pages through its index', async () => {
    const { call, audit } = await serve(async () => ({ id: 'x' }));
    for (let i = 0; i < 1000; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => audit.append({ kind: 'gossip-sent', to: 'gossip:t', what: `m${i + j}`, scenario: IDS[(i + j) % 3 === 0 ? 0 : 1] })));
    }
    const p1 = await call('GET', '/audit?limit=50');
    const e1 = p1.json.entries as AuditEntry[];
    expect(e1.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, k) => 950 + k));
    expect(p1.json.next).toBe(950);
    expect(p1.json.total).toBe(1000);
    expect((p1.json.verify as { intact: boolean }).intact).toBe(true);
    const p2 = await call('GET', `/audit?limit=50&before=${String(p1.json.next)}`);
    expect((p2.json.entries as AuditEntry[]).map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, k) => 900 + k));
    const s = await call('GET', `/audit?limit=20&scenario=${IDS[0]!.slice(0, 6)}`);
    const se = s.json.entries as AuditEntry[];
    expect(se).toHaveLength(20);
    expect(se.every((e) => e.scenario === IDS[0] && e.seq % 3 === 0)).toBe(true);
    expect(se.at(-1)!.seq).toBe(999);
    expect(se[0]!.seq).toBe(999 - 19 * 3);
    let before = s.json.next as number | undefined;
    let n = se.length;
    while (before !== undefined) {
      const r = await call('GET', `/audit?limit=20&scenario=${IDS[0]}&before=${before}`);
      n += (r.json.entries as AuditEntry[]).length;
      before = r.json.next as number | undefined;
    }
    expect(n).toBe(334);
    const v = await call('GET', '/audit/verify');
    expect(v.json).toMatchObject({ intact: true, entries: 1000, missing_after: null });
  });
});
