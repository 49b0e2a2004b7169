/**
 * Runtime limits on real peer daemons (issue 16.2): two example hospitals as separate processes.
 *   - a worker over its memory budget is stopped; the run fails on that peer with WORKER_MEMORY_LIMIT and the daemon goes on;
 *   - a worker whose native (onnxruntime) memory outgrows the budget while its V8 heap stays small is stopped by the daemon's
 *     watchdog (WORKER_NATIVE_MEMORY): the daemon goes on, its memory goes back, /metrics shows the watchdog's figures;
 *   - cancel at many moments (preparing, waiting for round 0, inside long local epochs, between rounds) never aborts a daemon;
 *   - a run whose daemon is killed (kill -9) twice before it completes a round is not resumed a third time (no crash loop).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScenarioView } from '../../src/scenario/lifecycle.ts';
import { cli, client, log, provisionCluster, sleep, startDaemon, stopDaemon, waitConnected, waitFor, wdbcManifest, type Cluster, disposeCluster } from './daemon-harness.ts';

const A = 0;
const B = 1;
let c: Cluster;

interface Detail { id: string; view: ScenarioView }
interface Status { scenarios: { id: string; running: boolean }[] }

beforeAll(async () => {
  // site-b's workers get a 160 MiB budget: enough for the WDBC MLP, not for a 9M-parameter one with Adam
  c = await provisionCluster([], (s) => (s.name === 'site-b' ? { ...s, config: { ...s.config, admission: { workerHeapMiB: 160 } } } : s));
  for (const i of [A, B]) startDaemon(c, i);
  await waitConnected(c, [A, B]);
}, 150_000);

afterAll(async () => {
  await disposeCluster(c);
}, 240_000);

const detail = (i: number, id: string): Promise<Detail> => client(c, i).get<Detail>(`/scenarios/${id}`);
const launch = async (manifest: Record<string, unknown>): Promise<string> => (await client(c, A).post<{ id: string }>('/scenarios', { manifest })).id;
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
