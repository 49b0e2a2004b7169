/**
 * A bounded audit log (issue 16.4): model transfers aggregated into one `round` entry per round per scenario (with totals and
 * the list of transfers), a hard cap on routine entries per second with a counted `overflow` entry; the chain verifies
 * throughout. The clock is injected: nothing here depends on how fast the machine is.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog, transfers, type AuditEntry, type RoundTransfer } from '../../src/store/audit.ts';
import { openStore, type Store } from '../../src/store/db.ts';

const dirs: string[] = [];
const stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) if (s.db.status === 'open') await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
async function fresh(): Promise<{ dir: string; s: Store }> {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-bounds-'));
  dirs.push(dir);
  const s = await openStore(dir, { create: true });
  stores.push(s);
  return { dir, s };
}
const sha = (i: number): string => i.toString(16).padStart(64, '0');

describe('per-second cap', () => {
  it('drops routine entries over the cap, counts them in one overflow entry when the next second begins; approvals are never dropped', async () => {
    const { s } = await fresh();
    let now = Date.UTC(2026, 0, 1, 0, 0, 0, 100);
    const log = await AuditLog.open(s, { maxPerSecond: 10, now: () => now });
    const written = await Promise.all(Array.from({ length: 25 }, (_, i) => log.append({ kind: 'gossip-sent', to: 'gossip:t', what: `m${i}`, bytes: 100 })));
    expect(written.filter(Boolean)).toHaveLength(10);
    expect(await log.append({ kind: 'approval', to: 'local', what: 'approve (operator)', scenario: 'sc' })).toBeDefined();
    expect(await log.append({ kind: 'model-received', to: 'local', what: 'one more', bytes: 7 })).toBeUndefined();
    now += 1000;
    const next = await log.append({ kind: 'gossip-sent', to: 'gossip:t', what: 'next second' });
    const all = await log.list();
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 13 }, (_, i) => i));        // no gaps: dropped entries take no number
    const overflow = all.find((e) => e.kind === 'overflow')!;
    expect(JSON.parse(overflow.detail!)).toMatchObject({ count: 16, bytes: 15 * 100 + 7, byKind: { 'gossip-sent': { count: 15, bytes: 1500 }, 'model-received': { count: 1, bytes: 7 } } });
    expect(overflow.seq).toBe(next!.seq - 1);
    expect(await log.verify()).toMatchObject({ intact: true, entries: 13 });
    // nothing over the cap in the new second: no further overflow entry
    await log.flush();
    expect((await log.list()).filter((e) => e.kind === 'overflow')).toHaveLength(1);
  });
});

describe('per-round aggregation', () => {
  it('one round entry per round per scenario with totals and every transfer (peer, bytes, sha256); an open tally survives a crash', async () => {
    const { dir, s } = await fresh();
    let now = Date.UTC(2026, 0, 1);
    const log = await AuditLog.open(s, { now: () => now });
    const t = (kind: RoundTransfer['kind'], scenario: string, round: number, peer: string, i: number): RoundTransfer => ({ kind, scenario, round, peer, what: `round ${round} model`, bytes: 1000 + i, sha256: sha(i) });
    let i = 0;
    for (const round of [0, 1]) {
      for (const peer of ['pA', 'pB', 'pC']) await log.transfer(t('model-sent', 'sc1', round, peer, i++));
      for (const peer of ['pA', 'pB']) await log.transfer(t('model-received', 'sc1', round, peer, i++));
      await log.transfer(t('model-sent', 'sc2', round, 'pZ', i++));
      now += 1500;
    }
    await log.transfer(t('model-sent', 'sc1', 2, 'pA', i++));
    const rounds = (await log.list()).filter((e) => e.kind === 'round');
    // sc1 rounds 0 and 1 are closed (round 2 began), each when the next began; sc2 round 0 is closed, round 1 still open
    expect(rounds.map((e) => [e.scenario, JSON.parse(e.detail!).round])).toEqual([['sc1', 0], ['sc2', 0], ['sc1', 1]]);
    const r0 = rounds.find((e) => e.scenario === 'sc1')!;
    expect(JSON.parse(r0.detail!).totals).toEqual({ sent: 3, sentBytes: 1000 + 1001 + 1002, received: 2, receivedBytes: 1003 + 1004 });
    expect(r0.bytes).toBe(3003);
    expect(r0.what).toBe('round 0: 3 model message(s) sent to 3 peer(s) (3003 B), 2 received (2007 B)');
    expect(transfers([r0]).map((x) => [x.kind, x.peer, x.sha256])).toEqual([
      ['model-sent', 'pA', sha(0)], ['model-sent', 'pB', sha(1)], ['model-sent', 'pC', sha(2)], ['model-received', 'pA', sha(3)], ['model-received', 'pB', sha(4)]]);
    // the heartbeat keeps the running scenario's tally open and closes the other
    await log.flush({ keep: new Set(['sc1']) });
    const afterBeat = (await log.list()).filter((e) => e.kind === 'round');
    expect(afterBeat.map((e) => [e.scenario, JSON.parse(e.detail!).round])).toEqual([['sc1', 0], ['sc2', 0], ['sc1', 1], ['sc2', 1]]);
    // crash with sc1 round 2 open (no flush): the tally is in the store and becomes a round entry at the next open
    await s.close();
    const s2 = await openStore(dir, { create: false });
    stores.push(s2);
    const log2 = await AuditLog.open(s2, { now: () => now });
    expect(log2.recovery.recoveredRounds).toBe(1);
    const last = (await log2.page({ limit: 1 })).entries[0] as AuditEntry;
    expect(last).toMatchObject({ kind: 'round', scenario: 'sc1' });
    expect(last.what).toContain('(written at restart)');
    expect(transfers([last])).toEqual([expect.objectContaining({ kind: 'model-sent', peer: 'pA', sha256: sha(12), bytes: 1012 })]);
    expect(await log2.verify()).toMatchObject({ intact: true, entries: 5 });
    // 13 transfers, 5 entries: the log grows per round, not per message
    expect(transfers(await log2.list())).toHaveLength(13);
  });
});
