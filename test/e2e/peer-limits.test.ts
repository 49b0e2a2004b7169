/**
 * What a peer declines before anything runs, and what it stops while running, on real peer daemons: two example hospitals as
 * separate processes, one cluster for all of it (site-b's training workers get a 160 MiB budget, which only the runtime-limits
 * cases come near).
 * Admission control and slot lifecycle (issue 16.1, 16.3):
 *   - a 290M-parameter MLP and a manifest with localEpochs 1e6 are declined by both peers before anything is allocated
 *     (the daemons' resident memory stays flat; the reasons show in `cohort scenario status`);
 *   - a manifest too large to gossip is refused at launch (non-zero exit, nothing announced);
 *   - announced scenarios that cannot start expire (the launcher marks them failed, the peers let their prepared workers go);
 *   - an operator's rejection frees the prepared worker at once; stuck announcements do not block a legitimate scenario;
 *   - `cohort status --json` names the provider of each graph of this peer's run (issue 14.1).
 * Runtime limits (issue 16.2):
 *   - a worker over its memory budget is stopped; the run fails on that peer with WORKER_MEMORY_LIMIT and the daemon goes on;
 *   - a worker whose native (onnxruntime) memory outgrows the budget while its V8 heap stays small is stopped by the daemon's
 *     watchdog (WORKER_NATIVE_MEMORY): the daemon goes on, its memory goes back, /metrics shows the watchdog's figures;
 *   - cancel at many moments (preparing, waiting for round 0, inside long local epochs, between rounds) never aborts a daemon;
 *   - a run whose daemon is killed (kill -9) twice before it completes a round is not resumed a third time (no crash loop).
 * Last, as it rewrites site-b's config: with compute.providerFallback "error" and providers [cuda] on this CPU machine, the peer's
 * part fails with PROVIDER_UNAVAILABLE (in `cohort scenario status`) and its daemon stays up.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScenarioView } from '../../src/scenario/lifecycle.ts';
import type { GraphReport } from '../../src/engine/trainer.ts';
import { quietProbe } from '../../src/engine/providers.ts';
import { cli, client, disposeCluster, log, provisionCluster, sleep, startDaemon, stopDaemon, waitConnected, waitFor, wdbcManifest, type Cluster, startConnected } from './daemon-harness.ts';

const A = 0;
const B = 1;
let c: Cluster;

interface Detail { id: string; view: ScenarioView }
interface Status { scenarios: { id: string; state: string; running: boolean }[] }

beforeAll(async () => {
  // site-b's workers get a 160 MiB budget: enough for the WDBC MLP, not for a 9M-parameter one with Adam
  c = await provisionCluster([], (s) => (s.name === 'site-b' ? { ...s, config: { ...s.config, admission: { workerHeapMiB: 160 } } } : s));
  await startConnected(c, [A, B]);
}, 150_000);

afterAll(async () => {
  await disposeCluster(c);
}, 240_000);

const rssBytes = (i: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${c.procs[i]!.pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
};
const detail = (i: number, id: string): Promise<Detail> => client(c, i).get<Detail>(`/scenarios/${id}`);
const launch = async (manifest: Record<string, unknown>): Promise<string> => (await client(c, A).post<{ id: string }>('/scenarios', { manifest })).id;
const running = async (i: number, id: string): Promise<boolean> => (await client(c, i).get<Status>('/status')).scenarios.find((s) => s.id === id)?.running ?? false;

const alive = (i: number): boolean => c.procs[i]?.exitCode === null && c.procs[i]?.signalCode === null;
async function metrics(i: number): Promise<string> {
  const { port } = JSON.parse(readFileSync(join(c.sites[i]!.dir, 'admin.json'), 'utf8')) as { port: number };
  const token = readFileSync(join(c.sites[i]!.dir, 'admin.token'), 'utf8').trim();
  return (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
}
const processRss = (text: string): number => Number(/^process_resident_memory_bytes (\d+)/m.exec(text)?.[1]);
/** One scenario's value of a gauge in a Prometheus exposition, or undefined. */
function gauge(text: string, name: string, scenario: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{scenario="${scenario.slice(0, 12)}"}`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}
const noAbort = (i: number): void => {
  expect(log(c, i)).not.toMatch(/terminate called|Napi::Error|Aborted/);
  expect(alive(i)).toBe(true);
};

describe('admission control', () => {
  it('declines an oversized model and huge local epochs on every peer before allocating (RSS flat), with reasons in scenario status', async () => {
    const before = [A, B].map(rssBytes);
    const base = wdbcManifest({ launch: { minPeers: 2 } });
    const big = await launch({ ...base, name: 'huge-mlp', model: { type: 'mlp', hidden: [16_000, 16_000, 2000], classes: 2 } });
    const epochs = await launch({ ...base, name: 'huge-epochs', training: { ...(base.training as object), localEpochs: 1e6 } });
    for (const i of [A, B]) {
      for (const [id, why] of [[big, /maxParameters/], [epochs, /maxRoundsTimesEpochs/]] as const) {
        const d = await waitFor('both declines heard', async () => {
          const x = await detail(i, id);
          return Object.keys(x.view.declines).length === 2 ? x : false;
        }, 60_000);
        expect(Object.keys(d.view.approvals)).toHaveLength(0);
        for (const a of Object.values(d.view.declines)) expect(a.reason).toMatch(why);
        expect(d.view.run).toBeUndefined();
        expect(await running(i, id)).toBe(false);
      }
    }
    // a 290M-parameter model is 1.1 GB per copy: had any peer built it, its RSS would have grown by gigabytes
    await sleep(3000);
    const after = [A, B].map(rssBytes);
    for (const k of [0, 1]) expect(after[k]! - before[k]!).toBeLessThan(150 * 1024 ** 2);
    const status = cli(['scenario', 'status', big.slice(0, 10), '--peer', c.sites[B]!.dir]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/declined: .*site-b \(admission: model has 288\.5M parameters, above admission\.maxParameters/);
    // the launcher's audit log keeps the estimate with its decline
    const audit = await client(c, A).get<{ entries: { kind: string; detail?: string }[] }>(`/audit?scenario=${big}`);
    const decline = audit.entries.find((e) => e.kind === 'decline');
    expect(JSON.parse(decline?.detail ?? '{}').estimate.parameters).toBe(288_518_002);
  }, 120_000);

  it('refuses at launch a manifest too large to gossip (exit code, nothing announced)', async () => {
    const base = wdbcManifest({ name: 'too-large' });
    const data = base.data as Record<string, unknown>;
    const padded = { ...base, data: { ...data, preprocessing: { notes: Array.from({ length: 150 }, (_, i) => `${i}`.padEnd(9000, 'x')) } } };
    const file = `${c.dir}/too-large.json`;
    writeFileSync(file, JSON.stringify(padded));
    const r = cli(['scenario', 'launch', file, '--peer', c.sites[A]!.dir]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/MANIFEST_TOO_LARGE|would not reach the other peers/);
    const list = await client(c, A).get<{ name: string }[]>('/scenarios');
    expect(list.map((s) => s.name)).not.toContain('too-large');
  }, 60_000);
});

describe('slots and lifecycle', () => {
  it('stuck announcements expire, a rejection frees the prepared worker at once, and a legitimate scenario still runs', async () => {
    // minPeers 3 with two peers up: these can never start
    const stuck = await launch(wdbcManifest({ name: 'stuck-expires', launch: { minPeers: 3, startWithinMs: 8000 } }));
    const held = await launch(wdbcManifest({ name: 'stuck-rejected', launch: { minPeers: 3 } }));
    for (const id of [stuck, held]) {
      await waitFor('both approved (auto) and prepared', async () => (await detail(B, id)).view.approvals[c.sites[B]!.peerId] !== undefined && (await running(B, id)), 60_000);
    }
    const rejected = cli(['scenario', 'reject', held.slice(0, 10), '--reason', 'operator frees the slot', '--peer', c.sites[B]!.dir]);
    expect(rejected.code, rejected.stderr).toBe(0);
    expect(await running(B, held)).toBe(false);
    // expiry: the launcher fails it, every peer lets its prepared worker go
    for (const i of [A, B]) {
      const d = await waitFor('stuck scenario expired', async () => { const x = await detail(i, stuck); return x.view.state === 'failed' ? x : false; }, 60_000);
      expect(d.view.reason).toMatch(/expired: not started within 8000 ms/);
      await waitFor('prepared worker let go', async () => !(await running(i, stuck)), 30_000);
    }
    // with both compute slots' worth of stuck scenarios around, a legitimate one starts and trains to the end
    const ok = await launch(wdbcManifest({ name: 'legit-after-stuck', rounds: 3, launch: { minPeers: 2 } }));
    const done = await waitFor('legitimate scenario finished', async () => { const x = await detail(A, ok); return x.view.state === 'finished' ? x : false; }, 120_000);
    for (const i of [A, B]) {
      const p = done.view.progress[c.sites[i]!.peerId];
      expect(p?.done).toBe(true);
      // the report says how many rounds each peer really trained in (the readiness barrier started round 0 once both were ready)
      expect(p?.roundsTrained).toBeGreaterThanOrEqual(1);
      expect(p?.roundsTrained).toBeLessThanOrEqual(3);
    }
    // which provider ran each graph of site-b's run (kept after the run ended): the example peers list cpu only
    const st = cli(['status', '--json', '--peer', c.sites[B]!.dir]);
    expect(st.code, st.stderr).toBe(0);
    const graphs = (JSON.parse(st.stdout) as { scenarios: { id: string; graphs?: GraphReport[] }[] }).scenarios.find((s) => s.id === ok)?.graphs ?? [];
    expect(graphs.map((g) => g.graph)).toContain('step|16');
    for (const g of graphs) expect(g).toMatchObject({ provider: 'cpu', refused: [], cpuFallbackNodes: 0 });
    const human = cli(['status', '--peer', c.sites[B]!.dir]);
    expect(human.stdout).toMatch(/graph step\|16 +on cpu, 0 fell back to CPU/);
  }, 240_000);
});

describe('runtime limits', () => {
  it('a worker over its memory budget is stopped and the run fails on that peer only; the daemon goes on', async () => {
    // long enough that the 9M-parameter worker is ready before the rounds are over, even on a loaded machine
    // (the readiness barrier holds round 0 until both workers are ready, however long the 9M-parameter model takes to build)
    const base = wdbcManifest({ name: 'over-budget', rounds: 8, roundMs: 5000, launch: { minPeers: 2, readyTimeoutMs: 400_000 } });
    const id = await launch({ ...base, model: { type: 'mlp', hidden: [3000, 3000], classes: 2 } });
    const d = await waitFor('site-b reports its failure', async () => { const x = await detail(B, id); return x.view.progress[c.sites[B]!.peerId]?.failed ? x : false; }, 420_000);
    const failed = d.view.progress[c.sites[B]!.peerId]!.failed!;
    // the worker's own heap check (after a step) or the daemon's native-memory watchdog (every 250 ms): whichever sees it first
    expect(['WORKER_MEMORY_LIMIT', 'WORKER_NATIVE_MEMORY']).toContain(failed.code);
    expect(failed.message).toMatch(/memory budget|above its budget/);
    noAbort(B);
    // the daemon still answers and trains: its status works and the scenario ends for everyone
    await waitFor('scenario ended', async () => ['failed', 'finished'].includes((await detail(B, id)).view.state), 120_000);
    expect((await client(c, B).get<Status>('/status')).scenarios.find((s) => s.id === id)?.running).toBe(false);
  }, 600_000);

  it('a worker whose native memory outgrows the budget is stopped by the watchdog; the daemon goes on', async () => {
    // few parameters (1.65M: the worker's heap + ArrayBuffers stay under 160 MiB) but one wide layer on a whole-site batch, over
    // several local epochs: onnxruntime's arena and tensors, outside the V8 heap, grow far past site-b's 160 MiB budget
    const rssBefore = processRss(await metrics(B));
    const base = wdbcManifest({ name: 'native-over-budget', rounds: 8, roundMs: 5000, launch: { minPeers: 2, readyTimeoutMs: 400_000 } });
    const id = await launch({ ...base, model: { type: 'mlp', hidden: [50_000], classes: 2 },
      training: { ...(base.training as object), batchSize: 512, localEpochs: 4 } });
    // while site-a trains the same model, its /metrics shows the watchdog's figure beside the budget (2 x the estimate, >= 512 MiB)
    const gauges = await waitFor('site-a /metrics shows the native figure', async () => {
      const text = await metrics(A);
      const native = gauge(text, 'cohort_worker_native_memory_bytes', id);
      const budget = gauge(text, 'cohort_worker_memory_budget_bytes', id);
      return native !== undefined && native > 0 && budget !== undefined ? { native, budget } : false;
    }, 420_000);
    expect(gauges.budget).toBeGreaterThanOrEqual(512 * 1024 ** 2);
    const d = await waitFor('site-b reports its failure', async () => { const x = await detail(B, id); return x.view.progress[c.sites[B]!.peerId]?.failed ? x : false; }, 420_000);
    const failed = d.view.progress[c.sites[B]!.peerId]!.failed!;
    expect(failed.code, failed.message).toBe('WORKER_NATIVE_MEMORY');
    expect(failed.message).toMatch(/native memory .* above its budget of 160 MiB/);
    noAbort(B);
    expect(log(c, B)).toContain('training worker over its memory budget (native, onnxruntime): stopping it');
    // the worker left and its memory went back: the daemon's resident memory is below what the watchdog saw at the stop
    const used = Number(/grew by (\d+) MiB/.exec(failed.message)?.[1]);
    expect(used).toBeGreaterThan(160);
    await waitFor('site-b stopped the run', async () => !(await client(c, B).get<Status>('/status')).scenarios.find((s) => s.id === id)?.running, 180_000);
    await waitFor('site-b\'s memory went back', async () => processRss(await metrics(B)) < rssBefore + used * 1024 ** 2, 180_000);
    // state intact: the audit chain verifies, and `cohort scenario status` names the reason
    expect((await client(c, B).get<{ verify: { ok: boolean } }>('/audit')).verify.ok).toBe(true);
    const st = cli(['scenario', 'status', id.slice(0, 12), '--peer', c.sites[B]!.dir]);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toMatch(/failed: .*site-b \(WORKER_NATIVE_MEMORY: the training worker's native memory/);
    await waitFor('scenario ended', async () => ['failed', 'finished'].includes((await detail(A, id)).view.state), 300_000);
    noAbort(A);
  }, 900_000);

  it('cancel at many moments never aborts a daemon', async () => {
    // long local work (2000 epochs per round, streamed in chunks) so that cancels land inside onnxruntime-heavy training
    const delays = [0, 400, 1500, 3500, 6000, 9000];
    for (const [k, ms] of delays.entries()) {
      const base = wdbcManifest({ name: `cancel-${k}`, rounds: 4, roundMs: 3000, launch: { minPeers: 2, startDelayMs: 3000 } });
      const id = await launch({ ...base, training: { ...(base.training as object), localEpochs: 2000 } });
      await sleep(ms);
      await client(c, A).post(`/scenarios/${id}/cancel`, { reason: `cancel test ${k}` });
      for (const i of [A, B]) {
        await waitFor('cancelled and stopped', async () => (await detail(i, id)).view.state === 'cancelled'
          && !(await client(c, i).get<Status>('/status')).scenarios.find((s) => s.id === id)?.running, 180_000);
      }
      noAbort(A);
      noAbort(B);
    }
  }, 600_000);

  it('a run killed twice before completing a round is not resumed a third time', async () => {
    const id = await launch(wdbcManifest({ name: 'crash-loop', rounds: 3, roundMs: 3000, launch: { minPeers: 2, startDelayMs: 240_000 } }));
    const starts = (): number => (log(c, B).match(new RegExp(`"scenario":"${id.slice(0, 12)}","attempt":\\d+,"msg":"starting this peer's run"`, 'g')) ?? []).length;
    for (let k = 1; k <= 2; k++) {
      await waitFor(`site-b starts its run (attempt ${k})`, async () => starts() >= k, 120_000);
      await sleep(500);
      await stopDaemon(c, B, 'SIGKILL');
      startDaemon(c, B);
      await waitConnected(c, [A, B]);
    }
    const d = await waitFor('site-b refuses a third start', async () => { const x = await detail(B, id); return x.view.progress[c.sites[B]!.peerId]?.failed ? x : false; }, 120_000);
    expect(d.view.progress[c.sites[B]!.peerId]!.failed!.code).toBe('CRASH_LOOP');
    // and the launcher hears it (gossip, repeated by anti-entropy)
    await waitFor('the launcher hears the refusal', async () => (await detail(A, id)).view.progress[c.sites[B]!.peerId]?.failed?.code === 'CRASH_LOOP', 120_000);
    expect(starts()).toBe(2);
    noAbort(B);
  }, 500_000);
});

describe.runIf(quietProbe('cuda') !== undefined)('provider policy on a CPU-only peer', () => {
  it('providerFallback "error" with providers [cuda]: site-b\'s part fails with PROVIDER_UNAVAILABLE and the reason, its daemon stays up', async () => {
    await stopDaemon(c, B);
    const cfg = JSON.parse(readFileSync(c.sites[B]!.config, 'utf8')) as { compute: Record<string, unknown> };
    writeFileSync(c.sites[B]!.config, JSON.stringify({ ...cfg, compute: { ...cfg.compute, providers: ['cuda'], providerFallback: 'error' } }, null, 2));
    startDaemon(c, B);
    await waitConnected(c, [A, B]);
    const id = await launch(wdbcManifest({ name: 'cuda-only-at-b', rounds: 3, launch: { minPeers: 2, readyTimeoutMs: 5000 } }));
    const failed = await waitFor('site-b\'s failure heard at site-a', async () => (await detail(A, id)).view.progress[c.sites[B]!.peerId]?.failed, 120_000);
    expect(failed.code).toBe('PROVIDER_UNAVAILABLE');
    expect(failed.message).toMatch(/execution provider cuda is unavailable here \(cuda: the CUDA provider is not installed/);
    const text = await waitFor('the failure in cohort scenario status', async () => {
      const r = cli(['scenario', 'status', id.slice(0, 10), '--peer', c.sites[A]!.dir]);
      // the failed line lists every failed part in peer order: site-a's own part may be listed first (e.g. CANCELLED when the
      // scenario ends before the standardiser was agreed), so look for site-b's entry on that line, not at its start
      return /failed: [^\n]*site-b \(PROVIDER_UNAVAILABLE/.test(r.stdout) ? r.stdout : false;
    }, 120_000);
    expect(text).toContain('the provider fallback is \'error\'');
    // the daemon is still up and answering
    expect(c.procs[B]!.exitCode).toBeNull();
    expect((await client(c, B).get<{ name: string }>('/status')).name).toBe(c.sites[B]!.name);
  }, 300_000);
});
