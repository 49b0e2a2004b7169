/**
 * Runtime limits on real peer daemons (issue 16.2): two example hospitals as separate processes.
 *   - a worker over its memory budget is stopped; the run fails on that peer with WORKER_MEMORY_LIMIT and the daemon goes on;
 *   - cancel at many moments (preparing, waiting for round 0, inside long local epochs, between rounds) never aborts a daemon;
 *   - a run whose daemon is killed (kill -9) twice before it completes a round is not resumed a third time (no crash loop).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScenarioView } from '../../src/scenario/lifecycle.ts';
import { client, log, provisionCluster, sleep, startDaemon, stopDaemon, waitConnected, waitFor, wdbcManifest, type Cluster, disposeCluster } from './daemon-harness.ts';

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
    expect(failed.code).toBe('WORKER_MEMORY_LIMIT');
    expect(failed.message).toMatch(/memory budget|above its budget/);
    noAbort(B);
    // the daemon still answers and trains: its status works and the scenario ends for everyone
    await waitFor('scenario ended', async () => ['failed', 'finished'].includes((await detail(B, id)).view.state), 120_000);
    expect((await client(c, B).get<Status>('/status')).scenarios.find((s) => s.id === id)?.running).toBe(false);
  }, 600_000);

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
