/**
 * DP-SGD across a restart (src/privacy/dp-resume.ts): the accounting kept in the checkpoint's state (one batch with the checkpoint)
 * and the claim written before each training call, on a real LevelDB store that is closed and reopened as after a kill -9; the
 * resumed count is the larger of the two; a damaged record is refused; the per-round cap keeps the composed epsilon within the
 * target. Then the real training worker (src/peer/worker.ts): a second worker handed the first one's phases (`dpPrior`) continues
 * the accountant, takes only the steps left, stops early when the prior counted more, and never reports more than the target.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { accountingOf, claimSteps, resumeAccounting, stepsWithinBudget, totalSteps, withSteps } from '../../src/privacy/dp-resume.ts';
import { epsilonSpent, type DpPhase } from '../../src/privacy/accountant.ts';
import { planDp } from '../../src/privacy/dp-plan.ts';
import { loadRound, saveRound } from '../../src/store/checkpoints.ts';
import { openStore } from '../../src/store/db.ts';
import { loadManifest, type ScenarioManifest } from '../../src/scenario/manifest.ts';
import type { WorkerInit, WorkerReply } from '../../src/peer/worker.ts';

const ROOT = join(import.meta.dirname, '../..');
const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
const DP = { epsilon: 3, delta: 1e-5, clip: 1 };

describe('DP accounting in the peer store', () => {
  it('checkpoint state and claim survive a reopen; the larger count wins; damage is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-dp-resume-'));
    dirs.push(dir);
    const plan = planDp(DP, 400, 32, 13, 10);
    let store = await openStore(dir, { create: true });
    // round 2 checkpointed with 39 steps, then a claim for the next round's 13 before training (the crash comes after it)
    const at2 = withSteps([], plan, 39);
    await saveRound(store, 's1', { round: 2, dp: accountingOf(at2, DP.delta) }, new Uint8Array([1, 2, 3]));
    await claimSteps(store, 's1', at2, plan, 13, DP.delta);
    await store.close();
    store = await openStore(dir, { create: false });
    const ck = await loadRound(store, 's1');
    const r = await resumeAccounting(store, 's1', ck?.state, DP.delta);
    expect(r.source).toBe('claim');
    expect(r.steps).toBe(52);
    expect(r.epsilon).toBeCloseTo(epsilonSpent(withSteps([], plan, 52), DP.delta).epsilon, 5);
    // the next checkpoint counts more than the claim: it wins
    await saveRound(store, 's1', { round: 3, dp: accountingOf(withSteps([], plan, 60), DP.delta) }, new Uint8Array([4]));
    expect(await resumeAccounting(store, 's1', (await loadRound(store, 's1'))?.state, DP.delta)).toMatchObject({ source: 'checkpoint', steps: 60 });
    // nothing recorded (a fresh start): zero steps
    expect(await resumeAccounting(store, 's2', undefined, DP.delta)).toEqual({ phases: [], steps: 0, epsilon: 0, source: 'none' });
    // a damaged record is refused, never read as fewer steps
    await store.scenarios.put('dp-claim/s3', { phases: [{ q: 2, sigma: 1, steps: 5 }] });
    await expect(resumeAccounting(store, 's3', undefined, DP.delta)).rejects.toMatchObject({ code: 'DP_STATE_CORRUPT' });
    await expect(resumeAccounting(store, 's4', { round: 0, dp: { phases: 'x' } }, DP.delta)).rejects.toMatchObject({ code: 'DP_STATE_CORRUPT' });
    await store.close();
  });

  it('the cap after a restart keeps the composed epsilon within the target', () => {
    const plan = planDp(DP, 400, 32, 13, 10);
    expect(plan.maxSteps).toBe(130);
    // same (q, sigma) before and after: exactly the planned steps are left
    expect(stepsWithinBudget(plan, withSteps([], plan, 52), 13, DP)).toBe(13);
    expect(stepsWithinBudget(plan, withSteps([], plan, 125), 13, DP)).toBe(5);
    expect(stepsWithinBudget(plan, withSteps([], plan, 130), 13, DP)).toBe(0);
    // the data changed across the restart (another rate, noisier prior steps): the cap is the accountant's, below maxSteps - done
    const before: DpPhase[] = [{ q: plan.q * 1.5, sigma: plan.noiseMultiplier, steps: 40 }];
    expect(epsilonSpent(before, DP.delta).epsilon).toBeLessThan(DP.epsilon);
    const k = stepsWithinBudget(plan, before, 90, DP);
    expect(k).toBeGreaterThan(0);
    expect(k).toBeLessThan(90);   // the plan alone would allow 130 - 40
    expect(epsilonSpent(withSteps(before, plan, k), DP.delta).epsilon).toBeLessThanOrEqual(DP.epsilon);
    expect(epsilonSpent(withSteps(before, plan, k + 1), DP.delta).epsilon).toBeGreaterThan(DP.epsilon);
    // a prior already at or over the target: nothing more
    expect(stepsWithinBudget(plan, [{ ...before[0]!, steps: 400 }], 30, DP)).toBe(0);
  });
});

function ask(w: Worker, req: Record<string, unknown>): Promise<WorkerReply> {
  return new Promise((resolve) => {
    const on = (r: WorkerReply): void => { if (r.rid === req.rid) { w.off('message', on); resolve(r); } };
    w.on('message', on);
    w.postMessage(req);
  });
}

async function withWorker(manifest: ScenarioManifest, body: (w: Worker, ready: Extract<WorkerReply, { op: 'ready' }>) => Promise<void>): Promise<void> {
  const init: WorkerInit = { manifest, dataPath: join(ROOT, 'data/wdbc.csv'), dataOptions: {}, threads: 1, providers: ['cpu'] };
  const w = new Worker(new URL('../../src/peer/worker-boot.mjs', import.meta.url), { workerData: init });
  try {
    const ready = await new Promise<WorkerReply>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    if (ready.op !== 'ready') throw new Error(JSON.stringify(ready));
    await body(w, ready);
  } finally {
    await w.terminate();
  }
}

async function trainRounds(w: Worker, params: Float32Array, rounds: number, rid0: number): Promise<Extract<WorkerReply, { op: 'trained' }>[]> {
  const out: Extract<WorkerReply, { op: 'trained' }>[] = [];
  let p = params;
  for (let r = 0; r < rounds; r++) {
    const t = await ask(w, { rid: rid0 + r, op: 'train', params: p.slice() });
    if (t.op !== 'trained') throw new Error(JSON.stringify(t));
    out.push(t);
    p = t.params;
  }
  return out;
}

describe('the training worker continues the accountant', () => {
  it('a restarted worker takes only the steps left; an over-counted prior stops it early; epsilon never above the target', async () => {
    const base = loadManifest(join(ROOT, 'scenarios/wdbc-dp.json'));
    const manifest: ScenarioManifest = { ...base, data: { ...base.data, preprocessing: { standardize: 'site' } }, rounds: { ...base.rounds, max: 4 },
      training: { ...base.training, localSteps: 3 }, privacy: { ...base.privacy!, dp: { ...base.privacy!.dp!, epsilon: 3 } } };
    const dp = manifest.privacy!.dp!;
    let first: Extract<WorkerReply, { op: 'trained' }>[] = [];
    let maxSteps = 0;
    await withWorker(manifest, async (w, ready) => {
      maxSteps = ready.dp!.maxSteps;
      expect(maxSteps).toBe(12);
      first = await trainRounds(w, ready.params, 2, 1);   // rounds 0 and 1, then "the daemon is killed"
    });
    const prior = first[1]!.dpPhases!;
    expect(totalSteps(prior)).toBe(6);
    await withWorker(manifest, async (w, ready) => {
      const resumed = await ask(w, { rid: 1, op: 'dpPrior', phases: prior });
      expect(resumed).toMatchObject({ op: 'dpResumed' });
      expect((resumed as { epsilon: number }).epsilon).toBeCloseTo(first[1]!.epsilon!, 9);
      const rest = await trainRounds(w, ready.params, 3, 10);
      // 6 before + 6 after = the plan's 12, never more (a third round after the restart would be past rounds.max)
      expect(rest.map((t) => t.steps)).toEqual([3, 3, 0]);
      expect(totalSteps(rest[2]!.dpPhases!)).toBe(12);
      expect(rest[2]!.epsilon!).toBeLessThanOrEqual(dp.epsilon);
      expect(rest[2]!.epsilon!).toBeGreaterThan(first[1]!.epsilon!);
      expect(rest.map((t) => t.dpCapped)).toEqual([false, false, true]);
      // a prior handed after training started is refused: the accountant must start from it
      expect(await ask(w, { rid: 30, op: 'dpPrior', phases: prior })).toMatchObject({ op: 'error', code: 'DP_RESUME' });
    });
    // a claim that counted 4 steps more than were taken (the crash came before them): only 2 are left, and the worker says so
    const overCounted = prior.map((p, i) => (i === prior.length - 1 ? { ...p, steps: p.steps + 4 } : p));
    await withWorker(manifest, async (w, ready) => {
      await ask(w, { rid: 1, op: 'dpPrior', phases: overCounted });
      const rest = await trainRounds(w, ready.params, 2, 10);
      expect(rest.map((t) => t.steps)).toEqual([2, 0]);
      expect(rest.map((t) => t.dpCapped)).toEqual([true, true]);   // the runner audits that it stopped training early
      expect(totalSteps(rest[1]!.dpPhases!)).toBe(12);
      expect(rest[1]!.epsilon!).toBeLessThanOrEqual(dp.epsilon);
    });
    // steps before the restart at a lower noise (another plan): the accountant's cap, below the plan's steps left
    const costly = [{ ...prior[0]!, sigma: prior[0]!.sigma * 0.9 }];
    await withWorker(manifest, async (w, ready) => {
      await ask(w, { rid: 1, op: 'dpPrior', phases: costly });
      const rest = await trainRounds(w, ready.params, 3, 10);
      const taken = rest.reduce((a, t) => a + t.steps, 0);
      expect(taken).toBeLessThan(6);
      expect(rest.some((t) => t.dpCapped)).toBe(true);
      expect(rest[2]!.epsilon!).toBeLessThanOrEqual(dp.epsilon);
    });
  }, 240_000);
});
