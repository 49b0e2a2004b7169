import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ScenarioBook } from '../../src/peer/book.ts';
import { sanitiseDelta } from '../../src/peer/gossip.ts';
import { runPlanOf } from '../../src/peer/plan.ts';
import { splitWdbc, EXAMPLE_SITES } from '../../src/peer/provision.ts';
import { delta, emptyView } from '../../src/scenario/lifecycle.ts';
import { openStore, type Store } from '../../src/store/db.ts';
import type { SignedScenario } from '../../src/scenario/signing.ts';

const dirs: string[] = [];
const stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) if (s.db.status === 'open') await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const ROOT = join(import.meta.dirname, '../..');

describe('gossip sanitising', () => {
  const id = 'a'.repeat(64);
  const ans = { hash: id, at: '2026-01-01T00:00:00Z' };
  it('a peer may only speak for itself; only the launcher moves the state; nobody else may finish or fail the scenario', () => {
    const forged = { ...delta.approve(id, 'victim', ans), progress: { attacker: { round: 1, seq: 1 }, victim: { round: 9, seq: 9 } } };
    const s = sanitiseDelta(forged, 'attacker', 'author', ['attacker']);
    expect(s.delta.approvals).toEqual({});
    expect(Object.keys(s.delta.progress)).toEqual(['attacker']);
    expect(s.refused).toEqual(['speaks-for-other']);
    expect(sanitiseDelta(delta.state(id, 'cancelled'), 'attacker', 'author', []).delta.state).toBe('announced');
    expect(sanitiseDelta(delta.state(id, 'cancelled'), 'author', 'author', []).delta.state).toBe('cancelled');
    expect(sanitiseDelta(delta.run(id, { startAt: 1, participants: ['x'] }), 'x', 'author', []).delta.run).toBeUndefined();
    expect(sanitiseDelta(delta.run(id, { startAt: 1, participants: ['x'] }), 'author', 'author', []).delta.run).toEqual({ startAt: 1, participants: ['x'] });
    // a participant's word does not finish or fail the scenario: every peer judges the end itself (src/scenario/participants.ts)
    expect(sanitiseDelta(delta.state(id, 'finished'), 'x', 'author', ['x'])).toEqual({ delta: emptyView(id), refused: ['not-launcher'] });
    expect(sanitiseDelta(delta.state(id, 'failed', 'forged'), 'x', 'author', ['x']).delta.state).toBe('announced');
  });
});

describe('scenario book', () => {
  it('persists manifests, merged views and progress history across reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-book-'));
    dirs.push(dir);
    let store = await openStore(dir, { create: true });
    stores.push(store);
    let book = await ScenarioBook.load(store);
    const id = 'b'.repeat(64);
    const signed: SignedScenario = { id, manifest: { name: 'x' }, author: 'p', sig: 's', launchedAt: '2026-01-01T00:00:00Z' };
    const seen: string[] = [];
    book.onChange((_id, v) => seen.push(v.state));
    await book.apply(delta.progress(id, 'p1', { round: 0, seq: 1, metric: 0.5 })); // heard before the manifest: kept, not announced
    expect(book.get(id)).toBeUndefined();
    await book.addManifest(signed);
    await book.apply(delta.state(id, 'running'));
    await book.apply(delta.progress(id, 'p1', { round: 1, seq: 2, metric: 0.7 }));
    await book.apply(delta.progress(id, 'p1', { round: 1, seq: 2, metric: 0.7 })); // duplicate: no change event
    expect(seen).toEqual(['announced', 'running', 'running']);
    await store.close();
    store = await openStore(dir, { create: false });
    stores.push(store);
    book = await ScenarioBook.load(store);
    expect(book.get(id)?.view.state).toBe('running');
    expect(book.get(id)?.view.progress.p1?.round).toBe(1);
    expect((await book.history(id)).map((h) => [h.round, h.metric])).toEqual([[0, 0.5], [1, 0.7]]);
    expect(book.list().map((e) => e.signed.id)).toEqual([id]);
    expect(emptyView(id).state).toBe('announced');
  });
});

describe('run plans', () => {
  it('reads every bundled scenario; launch terms default; a manifest without a dataset name is refused', () => {
    for (const f of ['wdbc-radiomics', 'petct-segmentation', 'petct-multitask', 'petct-multimodal']) {
      const p = runPlanOf(JSON.parse(readFileSync(join(ROOT, 'scenarios', `${f}.json`), 'utf8')) as Record<string, unknown>, f);
      expect(p.launch).toMatchObject({ minPeers: 2, startDelayMs: 4000 });
      expect(['wdbc', 'petct']).toContain(p.dataset);
    }
    const m = JSON.parse(readFileSync(join(ROOT, 'scenarios/wdbc-radiomics.json'), 'utf8')) as { data: { selector: Record<string, unknown> } };
    delete m.data.selector.dataset;
    expect(() => runPlanOf(m as unknown as Record<string, unknown>)).toThrow(/data.selector.dataset/);
    expect(() => runPlanOf({ ...(m as object), launch: { minPeers: 0 } })).toThrow(/launch/);
  });
});

describe('example sites', () => {
  it('split WDBC by site without overlap, with different malignant fractions', () => {
    const parts = splitWdbc(join(ROOT, 'data/wdbc.csv'), EXAMPLE_SITES, 11).map((p) => p!.trim().split('\n').slice(1));
    const all = parts.flat();
    expect(new Set(all).size).toBe(all.length);
    const frac = parts.map((rows) => rows.filter((r) => r.endsWith('malignant')).length / rows.length);
    expect(Math.max(...frac) - Math.min(...frac)).toBeGreaterThan(0.2);
  });
});

describe('scenario topology over real peers', () => {
  it('every participant draws the same symmetric graph; time-varying graphs change by round; impossible degrees fall back', async () => {
    const { topologyGraph } = await import('../../src/peer/transport.ts');
    const g = topologyGraph({ kind: 'random-regular', degree: 3 }, 8, 42, 0);
    expect(topologyGraph({ kind: 'random-regular', degree: 3 }, 8, 42, 5)).toEqual(g);
    g.forEach((ns, i) => { expect(ns).toHaveLength(3); for (const j of ns) expect(g[j]).toContain(i); });
    const t0 = topologyGraph({ kind: 'time-varying', degree: 2 }, 8, 42, 0);
    const t1 = topologyGraph({ kind: 'time-varying', degree: 2 }, 8, 42, 1);
    expect(t0).not.toEqual(t1);
    expect(topologyGraph({ kind: 'ring' }, 5, 1, 0)[0]).toEqual([1, 4]);
    expect(topologyGraph({ kind: 'random-regular', degree: 3 }, 5, 1, 0)[0]).toEqual([1, 2, 3, 4]); // 3*5 odd: complete
  });
});

describe('local datasets', () => {
  it('config entries first, then the store\'s dataset registry (cohort data add)', async () => {
    const { LocalData } = await import('../../src/peer/datasets.ts');
    const { DatasetRegistry } = await import('../../src/store/datasets.ts');
    const dir = mkdtempSync(join(tmpdir(), 'cohort-data-'));
    dirs.push(dir);
    const store = await openStore(dir, { create: true });
    stores.push(store);
    const reg = new DatasetRegistry(store.datasets);
    await reg.add({ id: 'lung', kind: 'folder', modalities: ['CT'], paths: ['/data/lung'], label: 'outcome', masks: [], tags: ['synthetic'], samples: 3,
      contentHash: 'h', addedAt: '2026-01-01T00:00:00Z', details: {} });
    const cfg = { data: { wdbc: { path: '/data/wdbc.csv', options: {}, synthetic: false } } } as unknown as import('../../src/peer/config.ts').DaemonConfig;
    const data = new LocalData(cfg, reg);
    expect(await data.get('wdbc')).toMatchObject({ path: '/data/wdbc.csv' });
    expect(await data.get('lung')).toEqual({ path: '/data/lung', options: { label: 'outcome' }, synthetic: true });
    expect(await data.get('nothing')).toBeUndefined();
    expect(await data.names()).toEqual(['lung', 'wdbc']);
  });
});
