// Signed suspicion reports (issue 11): built from a peer's neighbour scores, signed by the reporter, refused when forged, altered,
// or naming their own author; the audit entry a peer writes for one.
import { describe, expect, it } from 'vitest';
import { NeighbourScores } from '../../src/averaging/robust.ts';
import { identityFromSeed } from '../../src/net/identity.ts';
import { signSuspicion, suspicionAudit, suspicionReport, suspicionsByMember, verifySuspicion } from '../../src/scenario/suspicion.ts';
import { AUDIT_KINDS } from '../../src/store/audit.ts';
import { Rng } from '../../src/util/random.ts';

describe('suspicion reports', () => {
  it('name the neighbours that are clipped far outside the radius in most rounds, signed by the reporter', async () => {
    const rng = new Rng(5);
    const [alice, mallory, bob] = [await identityFromSeed(rng), await identityFromSeed(rng), await identityFromSeed(rng)];
    const scores = new NeighbourScores();
    for (let r = 0; r < 10; r++) {
      scores.clipped(mallory.peerId.toString(), 500, 1);       // scaled models: always far outside the radius
      scores.clipped(bob.peerId.toString(), r % 3 === 0 ? 1.3 : 0.8, 1);   // an honest neighbour, sometimes the farthest
    }
    expect(suspicionReport('s1', 9, 'mean', scores, alice.peerId.toString())).toBeNull();
    const report = suspicionReport('s1', 9, 'clipped', scores, alice.peerId.toString())!;
    expect(report.suspects.map((s) => s.peer)).toEqual([mallory.peerId.toString()]);
    expect(report.suspects[0]).toMatchObject({ observed: 10, outliers: 10, severity: 10 });
    const signed = await signSuspicion(report, alice);
    expect(await verifySuspicion(signed)).toBe(true);
    // altered, re-attributed, or signed by someone else: refused
    expect(await verifySuspicion({ ...signed, report: { ...signed.report, round: 10 } })).toBe(false);
    expect(await verifySuspicion({ ...signed, report: { ...signed.report, reporter: bob.peerId.toString() } })).toBe(false);
    await expect(signSuspicion(report, bob)).rejects.toThrow(/signed by its reporter/);
    expect(await verifySuspicion({ report: { ...report, reporter: mallory.peerId.toString() }, sig: (await signSuspicion({ ...report, reporter: mallory.peerId.toString() }, mallory)).sig })).toBe(false);
    expect(await verifySuspicion({ report: { ...report, extra: 1 }, sig: signed.sig })).toBe(false);
    const entry = suspicionAudit(signed, { received: true });
    expect(AUDIT_KINDS).toContain(entry.kind);
    expect(entry.what).toContain(mallory.peerId.toString());
    expect(entry.scenario).toBe('s1');
  });

  it('the roster view regroups each participant\'s latest report by the member it names, newest round first', async () => {
    const rng = new Rng(6);
    const [alice, bob, mallory, eve] = [await identityFromSeed(rng), await identityFromSeed(rng), await identityFromSeed(rng), await identityFromSeed(rng)];
    const id = (x: typeof alice) => x.peerId.toString();
    const names = new Map([[id(alice), 'site-a'], [id(bob), 'site-b'], [id(mallory), 'mallory']]);
    const report = (by: typeof alice, scenario: string, round: number, suspects: { peer: string; observed: number; outliers: number; severity: number }[]) =>
      signSuspicion({ type: 'suspicion', scenario, reporter: id(by), round, aggregator: 'clipped', suspects }, by);
    const m = (observed: number) => ({ peer: id(mallory), observed, outliers: observed, severity: 10 });
    const by = suspicionsByMember([
      { id: 's1', name: 'wdbc', progress: { [id(alice)]: { suspicion: await report(alice, 's1', 6, [m(7)]) }, [id(bob)]: { suspicion: await report(bob, 's1', 7, [m(8), { peer: id(eve), observed: 8, outliers: 7, severity: 2.5 }]) }, [id(mallory)]: {} } },
      { id: 's2', name: 'tcga', progress: {} },
    ], (p) => names.get(p) ?? p);
    expect([...by.keys()].sort()).toEqual([id(mallory), id(eve)].sort());
    expect(by.get(id(mallory))!.map((s) => [s.by, s.round, s.outliers, s.observed, s.scenarioName])).toEqual([['site-b', 7, 8, 8, 'wdbc'], ['site-a', 6, 7, 7, 'wdbc']]);
    expect(by.get(id(eve))![0]).toMatchObject({ by: 'site-b', reporter: id(bob), scenario: 's1', aggregator: 'clipped', severity: 2.5 });
    expect(by.get(id(alice))).toBeUndefined();
  });
});
