import { describe, expect, it } from 'vitest';
import { identityFromSeed, type Identity } from '../../src/net/identity.ts';
import { Roster, newRosterBody, type Role } from '../../src/net/roster.ts';
import { Rng } from '../../src/util/random.ts';
import { scenarioId, signEvent, signScenario, verifyEvent, verifyScenario } from '../../src/scenario/signing.ts';
import { approvalsFor, delta, emptyView, merge, type ScenarioView } from '../../src/scenario/lifecycle.ts';
import { ApprovalPolicySchema, decide } from '../../src/scenario/approval.ts';

async function setup(): Promise<{ researcher: Identity; hospital: Identity; outsider: Identity; roster: Roster }> {
  const rng = new Rng(7);
  const [researcher, hospital, outsider] = [await identityFromSeed(rng), await identityFromSeed(rng), await identityFromSeed(rng)];
  const member = (id: Identity, name: string, roles: Role[]) => ({ peerId: id.peerId.toString(), name, roles });
  const body = { ...newRosterBody('test'), members: [member(researcher, 'Uni A', ['researcher', 'data-provider']), member(hospital, 'Hosp B', ['data-provider'])] };
  return { researcher, hospital, outsider, roster: new Roster({ body, signatures: [] }) };
}

const manifest = { name: 'wdbc', model: { type: 'mlp', hidden: [16] }, rounds: 5 };

describe('scenario signing', () => {
  it('ids are content hashes independent of key order', () => {
    expect(scenarioId({ a: 1, b: [1, 2] })).toBe(scenarioId({ b: [1, 2], a: 1 }));
    expect(scenarioId({ a: 1 })).not.toBe(scenarioId({ a: 2 }));
  });

  it('accepts a researcher-signed manifest; rejects tampered, forged, unsigned and non-researcher ones', async () => {
    const { researcher, hospital, outsider, roster } = await setup();
    const s = await signScenario(manifest, researcher);
    expect(await verifyScenario(s, roster)).toEqual({ ok: true });
    const tampered = { ...s, manifest: { ...manifest, rounds: 500 } };
    expect(await verifyScenario(tampered, roster)).toMatchObject({ ok: false, reason: expect.stringContaining('tampered') });
    const rehashed = { ...tampered, id: scenarioId(tampered.manifest) };
    expect(await verifyScenario(rehashed, roster)).toMatchObject({ ok: false, reason: expect.stringContaining('signature') });
    const forged = { ...s, author: hospital.peerId.toString() };
    expect(await verifyScenario(forged, roster)).toMatchObject({ ok: false, reason: expect.stringContaining('signature') });
    expect(await verifyScenario({ ...s, sig: undefined }, roster)).toMatchObject({ ok: false, reason: expect.stringContaining('malformed') });
    expect(await verifyScenario(await signScenario(manifest, hospital), roster)).toMatchObject({ ok: false, reason: expect.stringContaining('not a researcher') });
    expect(await verifyScenario(await signScenario(manifest, outsider), roster)).toMatchObject({ ok: false, reason: expect.stringContaining('not in the roster') });
  });

  it('signs events', async () => {
    const { hospital, researcher } = await setup();
    const body = { type: 'approve', id: 'x', hash: 'x' };
    const sig = await signEvent(body, hospital);
    expect(await verifyEvent(body, hospital.peerId.toString(), sig)).toBe(true);
    expect(await verifyEvent(body, researcher.peerId.toString(), sig)).toBe(false);
    expect(await verifyEvent({ ...body, hash: 'y' }, hospital.peerId.toString(), sig)).toBe(false);
  });
});

describe('approval policy', () => {
  it('auto-approves by family, author name or exact hash, else waits', async () => {
    const { researcher, roster } = await setup();
    const s = await signScenario(manifest, researcher);
    const p = (x: unknown) => ApprovalPolicySchema.parse({ autoApprove: x });
    expect(decide(p({}), s, roster)).toEqual({ auto: false });
    expect(decide(p({ families: ['mlp'] }), s, roster)).toMatchObject({ auto: true });
    expect(decide(p({ families: ['unet2d'] }), s, roster)).toEqual({ auto: false });
    expect(decide(p({ authors: ['Uni A'] }), s, roster)).toMatchObject({ auto: true });
    expect(decide(p({ manifests: [s.id] }), s, roster)).toMatchObject({ auto: true });
    expect(decide(p({ manifests: [scenarioId({ ...manifest, rounds: 6 })] }), s, roster)).toEqual({ auto: false });
  });
});

describe('lifecycle CRDT', () => {
  const id = 'sc';
  const events: ScenarioView[] = [
    delta.approve(id, 'p1', { hash: 'h', at: '2026-01-01T00:00:01Z' }),
    delta.approve(id, 'p2', { hash: 'h', at: '2026-01-01T00:00:02Z' }),
    delta.approve(id, 'p3', { hash: 'old', at: '2026-01-01T00:00:02Z' }),
    delta.reject(id, 'p4', { hash: 'h', reason: 'no', at: '2026-01-01T00:00:03Z' }),
    delta.state(id, 'approved'),
    delta.state(id, 'running'),
    delta.progress(id, 'p1', { round: 1, seq: 1, loss: 0.9 }),
    delta.progress(id, 'p1', { round: 3, seq: 3, loss: 0.3 }),
    delta.progress(id, 'p1', { round: 2, seq: 2, loss: 0.5 }),
    delta.progress(id, 'p2', { round: 2, seq: 2, loss: 0.4 }),
    delta.run(id, { startAt: 1000, participants: ['p1', 'p2'] }),
    delta.run(id, { startAt: 900, participants: ['p1'] }),
    delta.state(id, 'finished'),
    delta.state(id, 'cancelled', 'launcher cancelled'),
  ];

  it('converges to the same view under any message order, with duplicates', () => {
    const rng = new Rng(3);
    const fold = (evs: ScenarioView[]) => evs.reduce(merge, emptyView(id));
    const reference = fold(events);
    for (let trial = 0; trial < 200; trial++) {
      const order = [...events, ...events.filter(() => rng.next() < 0.3)];
      for (let i = order.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      expect(fold(order)).toEqual(reference);
    }
    expect(reference.state).toBe('cancelled');
    expect(reference.reason).toBe('launcher cancelled');
    expect(reference.progress.p1?.round).toBe(3);
    expect(reference.run).toEqual({ startAt: 900, participants: ['p1'] });
    expect(approvalsFor(reference, 'h')).toEqual(['p1', 'p2']);
  });

  it('merge is commutative and idempotent on whole views; states never move back', () => {
    const a = [events[0]!, events[5]!, events[6]!].reduce(merge, emptyView(id));
    const b = [events[1]!, events[4]!, events[9]!].reduce(merge, emptyView(id));
    expect(merge(a, b)).toEqual(merge(b, a));
    expect(merge(a, a)).toEqual(a);
    expect(merge(a, delta.state(id, 'announced')).state).toBe('running');
  });
});

describe('reports', () => {
  it('per-site results beside local-only, an SVG plot and a markdown table; synthetic data is flagged', async () => {
    const { convergenceSvg, metricsJson, reportMarkdown } = await import('../../src/scenario/report.ts');
    const view = [delta.state('sc', 'finished'),
      delta.progress('sc', 'p1', { round: 0, seq: 1, metric: 0.5 }), delta.progress('sc', 'p1', { round: 1, seq: 2, metric: 0.8, localOnly: 0.7, bytesSent: 100, done: true }),
      delta.progress('sc', 'p2', { round: 1, seq: 2, metric: 0.9, localOnly: 0.6, bytesSent: 120, done: true, heldOut: 40 })].reduce(merge, emptyView('sc'));
    const input = { id: 'sc', manifest: { name: 'demo', task: { metric: 'dice' }, title: 'Demo' }, view, names: { p1: 'site-a', p2: 'site-b' },
      history: [{ site: 'p1', round: 0, seq: 1, metric: 0.5 }, { site: 'p1', round: 1, seq: 2, metric: 0.8 }, { site: 'p2', round: 1, seq: 2, metric: 0.9 }],
      exportedBy: 'site-a', synthetic: true };
    const m = metricsJson(input) as { sites: { name: string; metric: number; local_only: number; rounds: number }[]; synthetic: boolean };
    expect(m.sites).toMatchObject([{ name: 'site-a', metric: 0.8, local_only: 0.7, rounds: 2 }, { name: 'site-b', metric: 0.9, local_only: 0.6 }]);
    expect(m.synthetic).toBe(true);
    const svg = convergenceSvg(input);
    expect(svg).toContain('<svg');
    expect(svg).toContain('site-a local-only');
    const md = reportMarkdown(input);
    expect(md).toContain('SYNTHETIC DATA');
    expect(md).toContain('| site-b | 0.900 | 0.600 | 40 | 2 | 120 |');
    expect(md).toContain('| site-a | 0.800 | 0.700 | – | 2 | 100 |');
  });
});

describe('stopping rules', () => {
  it('target and plateau decide a round count one round ahead; only rounds every participant reported count', async () => {
    const { meanSeries, stopRoundFor } = await import('../../src/scenario/stopping.ts');
    const h = [
      { site: 'a', round: 0, metric: 0.5 }, { site: 'b', round: 0, metric: 0.7 },
      { site: 'a', round: 1, metric: 0.8 }, { site: 'b', round: 1, metric: 0.9 },
      { site: 'a', round: 2, metric: 0.81 }, { site: 'b', round: 2, metric: 0.9 },
      { site: 'a', round: 3, metric: 0.95 },
    ];
    const s = meanSeries(h, ['a', 'b']);
    expect(s.map((x) => x.round)).toEqual([0, 1, 2]);
    const o = { maximize: true, maxRounds: 20 };
    expect(stopRoundFor({ kind: 'target', value: 0.85 }, s, o)).toBe(3);
    expect(stopRoundFor({ kind: 'target', value: 0.99 }, s, o)).toBeUndefined();
    expect(stopRoundFor({ kind: 'plateau', patience: 1, minDelta: 0.01 }, s, o)).toBe(4);
    expect(stopRoundFor({ kind: 'plateau', patience: 2, minDelta: 0.01 }, s, o)).toBeUndefined();
    expect(stopRoundFor({ kind: 'target', value: 0.6 }, s, { maximize: false, maxRounds: 20 })).toBe(2);
    expect(stopRoundFor({ kind: 'max-rounds' }, s, o)).toBeUndefined();
    expect(merge(delta.stopAt('sc', 5), delta.stopAt('sc', 3)).stopAt).toBe(3);
  });
});
