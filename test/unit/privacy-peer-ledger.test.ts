/**
 * The peer's privacy ledger on a real LevelDB store and audit log (src/privacy/peer-ledger.ts): reservations across scenarios
 * against the lifetime budget, the refusal (PRIVACY_BUDGET) with its reason, settlement with the spent epsilon (never above the
 * reservation), audit entries of kind `privacy`, the per-dataset summary, and persistence across a reopen of the store.
 * Also: the DP plan a real peer's worker makes is the simulator's (src/privacy/dp-plan.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PeerLedger, privacyUnsupported, dpOf } from '../../src/privacy/peer-ledger.ts';
import { planDp, spentOf, stepsLeft } from '../../src/privacy/dp-plan.ts';
import { peerDp } from '../../src/sim/privacy.ts';
import { AuditLog } from '../../src/store/audit.ts';
import { openStore } from '../../src/store/db.ts';
import { CohortError } from '../../src/util/errors.ts';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

describe('PeerLedger on the peer store', () => {
  it('reserves, refuses beyond the lifetime budget, settles, audits and survives a reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-ledger-'));
    dirs.push(dir);
    let store = await openStore(dir, { create: true });
    let audit = await AuditLog.open(store);
    let ledger = new PeerLedger(store.meta, 5, audit);
    await ledger.reserve('wdbc', 's1', 3, 1e-5);
    await ledger.reserve('wdbc', 's1', 3, 1e-5); // idempotent: the same scenario is reserved once
    expect(await ledger.spent('wdbc')).toBe(3);
    const refused = await ledger.reserve('wdbc', 's2', 3, 1e-5).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CohortError);
    expect((refused as CohortError).code).toBe('PRIVACY_BUDGET');
    expect((refused as CohortError).message).toMatch(/epsilon 3 would exceed the lifetime budget of dataset wdbc: 3 of 5 already spent/);
    await ledger.reserve('other', 's2', 3, 1e-5); // budgets are per dataset
    await ledger.settle('wdbc', 's1', 2.5);
    await ledger.settle('wdbc', 's1', 1); // settled once
    expect(await ledger.summary(['wdbc', 'other', 'none'])).toEqual([
      { dataset: 'wdbc', spent: 2.5, reserved: 0, lifetime: 5, remaining: 2.5, scenarios: 1 },
      { dataset: 'other', spent: 3, reserved: 3, lifetime: 5, remaining: 2, scenarios: 1 },
      { dataset: 'none', spent: 0, reserved: 0, lifetime: 5, remaining: 5, scenarios: 0 },
    ]);
    await audit.flush();
    const kinds = (await audit.list()).filter((e) => e.kind === 'privacy');
    expect(kinds.map((e) => e.what)).toEqual([
      'privacy budget: reserved epsilon 3 on wdbc', 'privacy budget: reserved epsilon 3 on other', 'privacy budget: spent epsilon 2.5 of 3 reserved on wdbc']);
    await store.close();
    store = await openStore(dir, { create: false });
    audit = await AuditLog.open(store);
    ledger = new PeerLedger(store.meta, 5, audit);
    expect(await ledger.spent('wdbc')).toBe(2.5);
    await ledger.reserve('wdbc', 's3', 2.5, 1e-5); // exactly the rest fits
    await expect(ledger.reserve('wdbc', 's4', 0.01, 1e-5)).rejects.toThrow(/lifetime budget/);
    // s3 ended without this peer in its run: the reservation goes back; a settled spend never does
    await ledger.release('wdbc', 's3');
    await ledger.release('wdbc', 's1');
    expect(await ledger.spent('wdbc')).toBe(2.5);
    await audit.flush();
    expect((await audit.list()).filter((e) => e.kind === 'privacy').map((e) => e.what).at(-1)).toBe('privacy budget: released epsilon 2.5 on wdbc (no training step taken)');
    await store.close();
  });

  it('reads the DP settings of a manifest and says what a real peer cannot run', () => {
    expect(dpOf({ privacy: { dp: { epsilon: 3, clip: 1 } } })).toEqual({ epsilon: 3, delta: 1e-5 });
    expect(dpOf({ privacy: { secure: true } })).toBeNull();
    expect(privacyUnsupported({ privacy: { dp: { epsilon: 3, clip: 1 } } })).toBeNull();
    const secure = { privacy: { secure: true }, averaging: { topology: { kind: 'complete' } } };
    expect(privacyUnsupported({ ...secure, launch: { minPeers: 3 } })).toBeNull();
    expect(privacyUnsupported(secure)).toMatch(/needs at least 3 participants .*launch.minPeers is 2/);
    expect(privacyUnsupported({ ...secure, launch: { minPeers: 4 }, averaging: { topology: { kind: 'time-varying', degree: 2 } } })).toMatch(/static graph/);
  });
});

describe('one DP plan for the simulator and real peers', () => {
  it('peerDp (simulator) and planDp (worker) give the same sigma and steps; the cap and the spent epsilon follow the plan', () => {
    const dp = { epsilon: 3, delta: 1e-5, clip: 1 };
    const sim = peerDp({ secure: false, dp }, 114, 16, { epochs: 1 }, 10, 7)!;
    const peer = planDp(dp, 114, 16, Math.ceil(114 / 16), 10);
    expect(peer.noiseMultiplier).toBe(sim.noiseMultiplier);
    expect(peer.maxSteps).toBe(sim.maxSteps);
    expect(peer.maxSteps).toBe(80);
    const phases = [{ q: peer.q, sigma: peer.noiseMultiplier, steps: 75 }];
    expect(stepsLeft(peer, phases, 8)).toBe(5);
    const all = [{ q: peer.q, sigma: peer.noiseMultiplier, steps: peer.maxSteps }];
    expect(stepsLeft(peer, all, 8)).toBe(0);
    const eps = spentOf(all, dp.delta);
    expect(eps).toBeLessThanOrEqual(3 + 1e-9);
    expect(eps).toBeGreaterThan(2.9);
    expect(spentOf([], dp.delta)).toBe(0);
  });
});
