// A hospital's privacy policy (approval.privacy) and its lifetime privacy ledger: declines with the reason, never over budget.
import { describe, expect, it } from 'vitest';
import { ApprovalPolicySchema, privacyDecline } from '../../src/scenario/approval.ts';
import { MemoryLedgerStore, PrivacyLedger } from '../../src/privacy/budget.ts';
import { CohortError } from '../../src/util/errors.ts';

const manifest = (privacy?: unknown): Record<string, unknown> => ({ name: 'x', model: { type: 'mlp' }, ...(privacy ? { privacy } : {}) });

describe('approval.privacy', () => {
  it('defaults to no demands; an old config without the key still parses', () => {
    const p = ApprovalPolicySchema.parse({});
    expect(p.privacy).toEqual({ requireSecure: false });
    expect(privacyDecline(p, manifest())).toBeNull();
  });

  it('a peer demanding epsilon <= 1 declines a scenario asking for 8, and one without DP; accepts 1', () => {
    const p = ApprovalPolicySchema.parse({ privacy: { maxEpsilon: 1 } });
    expect(privacyDecline(p, manifest({ secure: true, dp: { epsilon: 8, clip: 1 } }))).toMatch(/asks for epsilon 8, above this peer's maximum of 1/);
    expect(privacyDecline(p, manifest({ secure: true }))).toMatch(/requires differential privacy with epsilon <= 1/);
    expect(privacyDecline(p, manifest({ secure: false, dp: { epsilon: 1, clip: 1 } }))).toBeNull();
  });

  it('requireSecure declines plain averaging; the lifetime budget declines what would exceed it', () => {
    const p = ApprovalPolicySchema.parse({ privacy: { requireSecure: true, lifetimeEpsilon: 10 } });
    expect(privacyDecline(p, manifest({ dp: { epsilon: 3, clip: 1 } }))).toMatch(/requires secure averaging/);
    expect(privacyDecline(p, manifest({ secure: true, dp: { epsilon: 3, clip: 1 } }), 6)).toBeNull();
    expect(privacyDecline(p, manifest({ secure: true, dp: { epsilon: 3, clip: 1 } }), 8)).toMatch(/exceed this dataset's lifetime budget: 8 spent of 10/);
    expect(privacyDecline(p, manifest({ secure: true }), 0)).toMatch(/without privacy.dp/);
    expect(() => ApprovalPolicySchema.parse({ privacy: { maxEpsilon: 0 } })).toThrow();
  });
});

describe('privacy ledger', () => {
  it('adds scenarios up per dataset, refuses to exceed the lifetime budget, records what was spent', async () => {
    const l = new PrivacyLedger(new MemoryLedgerStore(), 10);
    await l.reserve('wdbc', 's1', 3, 1e-5);
    await l.reserve('wdbc', 's2', 6, 1e-5);
    await l.reserve('other', 's2', 8, 1e-5);
    expect(await l.spent('wdbc')).toBe(9);
    const e = await l.reserve('wdbc', 's3', 3, 1e-5).then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(CohortError);
    expect((e as CohortError).code).toBe('PRIVACY_BUDGET');
    expect((e as Error).message).toMatch(/9 of 10 already spent/);
    await l.settle('wdbc', 's2', 5.2);
    expect(await l.spent('wdbc')).toBeCloseTo(8.2, 10);
    await l.reserve('wdbc', 's3', 1.8, 1e-5);
    await expect(l.settle('wdbc', 's1', 3.5)).rejects.toThrow(/above its reservation/);
    await expect(l.reserve('wdbc', 's1', 0.1, 1e-5)).rejects.toThrow(/already has a reservation/);
    expect((await l.entries('wdbc')).map((x) => [x.scenario, x.state])).toEqual([['s1', 'reserved'], ['s2', 'spent'], ['s3', 'reserved']]);
  });
});
