/**
 * `cohort bench store`: what durability costs and what the audit API costs, on real LevelDB stores in the OS temp folder.
 *   audit appends/s: one writer awaiting each entry (every entry its own synced batch) and 64 concurrent writers (group commit),
 *                    beside raw puts with and without sync (the fsync cost itself)
 *   rounds/s:        saveRound with a 1 MiB checkpoint (synced batch) beside the same batch unsynced
 *   /audit:          100 concurrent `/audit?limit=50` over HTTP against a log of 50k entries (paged from the end through the
 *                    index): wall time and the process RSS before, at peak and after; beside 10 concurrent whole-log reads
 *                    (what /audit did before) on the same log
 * Figures depend on the disk (fsync) and the machine's load: the host summary is in the result file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAdminApi } from '../src/peer/admin.ts';
import type { Daemon } from '../src/peer/daemon.ts';
import { adminRoutes } from '../src/peer/routes.ts';
import { AuditLog } from '../src/store/audit.ts';
import { saveRound } from '../src/store/checkpoints.ts';
import { openStore, type Store } from '../src/store/db.ts';
import { readFileSync } from 'node:fs';
import { median, type BenchOptions, type BenchResult, type BenchSuite } from './suite.ts';

async function withStore<T>(f: (s: Store, dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-store-'));
  const s = await openStore(dir, { create: true });
  try {
    return await f(s, dir);
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const entry = (i: number) => ({ kind: 'gossip-sent' as const, to: 'gossip:/cohort/x/heartbeat/1', what: `heartbeat ${i}`, bytes: 180, sha256: 'a'.repeat(64) });

async function rate(n: number, f: (i: number) => Promise<unknown>, concurrency = 1): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => { while (next < n) await f(next++); }));
  return n / ((performance.now() - t0) / 1000);
}

async function repeat(times: number, f: () => Promise<number>): Promise<number> {
  const out: number[] = [];
  for (let i = 0; i < times; i++) out.push(await f());
  return median(out);
}

const suite: BenchSuite = {
  name: 'store',
  description: 'durability cost (synced audit entries and checkpoints) and the paged /audit API under 100 concurrent calls',
  async run(opts: BenchOptions): Promise<BenchResult> {
    const say = (m: string): void => { if (opts.verbose) process.stderr.write(`${m}\n`); };
    const reps = opts.quick ? 1 : 3;
    const n = opts.quick ? 200 : 1000;
    const rows: Record<string, unknown>[] = [];

    say('audit appends ...');
    const serialSync = await repeat(reps, () => withStore(async (s) => { const log = await AuditLog.open(s); return rate(n, (i) => log.append(entry(i))); }));
    const groupSync = await repeat(reps, () => withStore(async (s) => { const log = await AuditLog.open(s); return rate(n * 5, (i) => log.append(entry(i)), 64); }));
    const rawSync = await repeat(reps, () => withStore(async (s) => rate(n, (i) => s.audit.put(String(i).padStart(16, '0'), entry(i), { sync: true } as never))));
    const rawNoSync = await repeat(reps, () => withStore(async (s) => rate(n, (i) => s.audit.put(String(i).padStart(16, '0'), entry(i)))));
    rows.push({ measure: 'audit entries/s, 1 writer awaiting each (synced)', value: Math.round(serialSync) });
    rows.push({ measure: 'audit entries/s, 64 concurrent writers (group commit, synced)', value: Math.round(groupSync) });
    rows.push({ measure: 'raw LevelDB puts/s with sync', value: Math.round(rawSync) });
    rows.push({ measure: 'raw LevelDB puts/s without sync', value: Math.round(rawNoSync) });

    say('round checkpoints ...');
    const ck = new Uint8Array(1 << 20).fill(7);
    const rounds = opts.quick ? 20 : 100;
    const roundSync = await repeat(reps, () => withStore(async (s) => rate(rounds, (i) => saveRound(s, 'sc', { round: i }, ck))));
    const roundNoSync = await repeat(reps, () => withStore(async (s) => rate(rounds, (i) => s.db.batch()
      .put('sc/latest', ck, { sublevel: s.checkpoints }).put('run/sc', { round: i }, { sublevel: s.scenarios }).write())));
    rows.push({ measure: 'rounds/s, saveRound 1 MiB checkpoint (synced)', value: Number(roundSync.toFixed(1)) });
    rows.push({ measure: 'rounds/s, same batch unsynced', value: Number(roundNoSync.toFixed(1)) });

    say('/audit under 100 concurrent calls ...');
    const logSize = opts.quick ? 10_000 : 50_000;
    const api = await withStore(async (s, dir) => {
      const log = await AuditLog.open(s);
      for (let i = 0; i < logSize; i += 500) await Promise.all(Array.from({ length: 500 }, (_, j) => log.append({ ...entry(i + j), scenario: (i + j) % 2 ? 'aaaaaaaa' : 'bbbbbbbb' })));
      const fake = { audit: log, store: s, book: { list: () => [{ signed: { id: 'aaaaaaaa' } }, { signed: { id: 'bbbbbbbb' } }], has: () => false }, coordinator: {} } as unknown as Daemon;
      const server = await startAdminApi(dir, adminRoutes(fake));
      const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
      const get = (path: string) => fetch(`http://127.0.0.1:${server.port}${path}`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json());
      await get('/audit?limit=50');   // the first call walks the chain once (the verdict is then extended incrementally)
      const measure = async (calls: number, path: string) => {
        global.gc?.();
        const before = process.memoryUsage().rss;
        let peak = before;
        const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 5);
        const t0 = performance.now();
        await Promise.all(Array.from({ length: calls }, () => get(path)));
        const ms = performance.now() - t0;
        clearInterval(timer);
        peak = Math.max(peak, process.memoryUsage().rss);
        return { ms: Math.round(ms), rssBeforeMB: Math.round(before / 1048576), rssPeakMB: Math.round(peak / 1048576), rssAfterMB: Math.round(process.memoryUsage().rss / 1048576) };
      };
      const paged = [] as Awaited<ReturnType<typeof measure>>[];
      for (let r = 0; r < reps; r++) paged.push(await measure(100, '/audit?limit=50'));
      const scenarioPaged = await measure(100, '/audit?limit=50&scenario=aaaaaa');
      const whole = await measure(10, '/audit');
      await server.close();
      return { paged, scenarioPaged, whole };
    });
    const worst = api.paged.reduce((a, b) => (b.ms > a.ms ? b : a));
    rows.push({ measure: `100 concurrent /audit?limit=50 over ${logSize} entries, ms (worst of ${reps})`, value: worst.ms, rss_before_mb: worst.rssBeforeMB, rss_peak_mb: worst.rssPeakMB, rss_after_mb: worst.rssAfterMB });
    rows.push({ measure: `100 concurrent /audit?limit=50&scenario= (index), ms`, value: api.scenarioPaged.ms, rss_before_mb: api.scenarioPaged.rssBeforeMB, rss_peak_mb: api.scenarioPaged.rssPeakMB, rss_after_mb: api.scenarioPaged.rssAfterMB });
    rows.push({ measure: `10 concurrent whole-log /audit over ${logSize} entries (the old behaviour), ms`, value: api.whole.ms, rss_before_mb: api.whole.rssBeforeMB, rss_peak_mb: api.whole.rssPeakMB, rss_after_mb: api.whole.rssAfterMB });
    return { suite: 'store', rows, audit_pages: api.paged, quick: opts.quick };
  },
};

export default suite;
