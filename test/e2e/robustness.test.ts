/**
 * Byzantine robustness end to end (issue 11): five real peer daemons (separate processes, real libp2p on loopback, LevelDB, ONNX
 * training) run one D-PSGD scenario with the ClippedGossip aggregator. "mallory" is a roster member and a real participant whose
 * daemon runs in the test-only adversarial mode (COHORT_TEST_ATTACK=scaling, src/sim/attacks/test-hook.ts): every exchange model
 * it sends is 1000 x its honest one. The test runs the same scenario first with the four honest sites alone (the reference), then
 * with mallory, and checks that the honest sites' mean accuracy stays within 3 points of the reference and that each honest site's
 * audit log holds a signed suspicion report naming mallory (`cohort audit --json`), which `cohort roster show --peer` also shows.
 * Both runs go at the same time on the one cluster (same data, same load): mallory's daemon approves nothing by itself, so it is
 * no participant of the reference; its operator (the admin API) approves the attacked run only.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScenarioView } from '../../src/scenario/lifecycle.ts';
import type { SignedSuspicion } from '../../src/scenario/suspicion.ts';
import type { AuditEntry } from '../../src/store/audit.ts';
import { cliAsync, client, disposeCluster, provisionCluster, startDaemon, waitConnected, waitFor, wdbcManifest, type Cluster } from './daemon-harness.ts';

interface Detail { id: string; view: ScenarioView; participants: string[] }
const HONEST = [0, 1, 2, 3];
const M = 4;
const ALL = [...HONEST, M];
let c: Cluster;

beforeAll(async () => {
  // mallory holds 15% of WDBC; the four example sites share the rest in their usual proportions (the same data in both runs)
  c = await provisionCluster([{ name: 'mallory', roles: ['data-provider'], port: 0, wdbc: { share: 0.15, malignant: 0.35 } }],
    (s) => (s.name === 'mallory' ? { ...s, config: { ...s.config, approval: { autoApprove: { families: [], authors: [], manifests: [] } } } }
      : !s.wdbc ? s : { ...s, wdbc: { ...s.wdbc, share: s.wdbc.share * 0.85 } }));
  for (const i of HONEST) startDaemon(c, i);
  startDaemon(c, M, { COHORT_TEST_ATTACK: 'scaling' });
  await waitConnected(c, ALL);
}, 150_000);

afterAll(async () => {
  await disposeCluster(c);
});

const peerId = (i: number): string => c.sites[i]!.peerId;
const detail = (i: number, id: string): Promise<Detail> => client(c, i).get<Detail>(`/scenarios/${id}`);
const finished = (i: number, id: string): Promise<Detail> =>
  waitFor(`${c.sites[i]!.name} sees the scenario finished`, async () => { const d = await detail(i, id); return d.view.state === 'finished' || d.view.state === 'failed' ? d : false; }, 300_000);

// few rounds of a small MLP; rounds long enough for every model to arrive before the deadline on a loaded machine; the default
// start delay (4 s): the standardiser is agreed before the start now (docs/daemon.md, the start protocol)
const manifest = (name: string, minPeers: number): Record<string, unknown> => {
  const m = wdbcManifest({ name, rounds: 10, roundMs: 4000, launch: { minPeers, approvalWindowMs: 3000 } });
  return { ...m, averaging: { ...(m.averaging as Record<string, unknown>), deadlineMs: 3800, aggregator: 'clipped' }, evaluation: { ...(m.evaluation as Record<string, unknown>), compareLocalOnly: false } };
};

/** The honest sites' final accuracy (and held-out sizes) in a finished run. */
function honestAccuracy(d: Detail): { mean: number; sites: { name: string; metric: number; heldOut: number }[] } {
  const sites = HONEST.map((i) => {
    const p = d.view.progress[peerId(i)]!;
    expect(p.done, `${c.sites[i]!.name} done`).toBe(true);
    return { name: c.sites[i]!.name, metric: p.metric!, heldOut: p.heldOut! };
  });
  return { mean: sites.reduce((a, s) => a + s.metric, 0) / sites.length, sites };
}

/** `cohort audit --json` of one site: a CLI process each (seconds on a loaded machine), so the sites are asked at once. */
async function suspicionEntries(i: number, id: string): Promise<{ entry: AuditEntry; report: SignedSuspicion }[]> {
  const r = await cliAsync(['audit', '--json', '--scenario', id, '--peer', c.sites[i]!.dir]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { entries: AuditEntry[] }).entries.filter((e) => e.kind === 'suspicion')
    .map((entry) => ({ entry, report: JSON.parse(entry.detail!) as SignedSuspicion }));
}

type Accuracy = ReturnType<typeof honestAccuracy>;

describe('a participant that sends scaled models (x1000) under ClippedGossip', () => {
  // the attacked run compares with the reference's result; a failed reference fails it too instead of leaving it waiting
  let referenceDone!: (a: Accuracy) => void;
  let referenceFailed!: (e: unknown) => void;
  const referenceResult = new Promise<Accuracy>((res, rej) => { referenceDone = res; referenceFailed = rej; });
  referenceResult.catch(() => undefined);

  // the two runs are independent scenarios (mallory never approves the reference): they run side by side
  it.concurrent('the reference: the four honest sites alone', async () => {
    let id = '';
    try {
      id = (await client(c, 0).post<{ id: string }>('/scenarios', { manifest: manifest('wdbc-robust-reference', 4) })).id;
      const d = await finished(0, id);
      expect(d.view.state, d.view.reason).toBe('finished');
      expect([...d.participants].sort()).toEqual(HONEST.map(peerId).sort());
      referenceDone(honestAccuracy(d));
    } catch (e) {
      referenceFailed(e);
      throw e;
    }
    // nobody is suspected when nobody attacks
    const audits = await Promise.all(HONEST.map((i) => suspicionEntries(i, id)));
    for (const s of audits) expect(s.filter((x) => x.report.report.scenario === id)).toEqual([]);
  }, 400_000);

  it.concurrent('keeps the honest accuracy within 3 points and names the adversary in every honest audit log', async () => {
    const id = (await client(c, 0).post<{ id: string }>('/scenarios', { manifest: manifest('wdbc-robust-scaling', 5) })).id;
    // mallory's operator approves this run (once its daemon has the announcement)
    await waitFor('mallory approves the attacked run', () => client(c, M).post(`/scenarios/${id}/approve`, {}).then(() => true), 120_000);
    const runs = await Promise.all(HONEST.map((i) => finished(i, id)));
    for (const d of runs) expect(d.view.state, d.view.reason).toBe('finished');
    expect([...runs[0]!.participants].sort()).toEqual(ALL.map(peerId).sort());
    // mallory really attacked: its daemon ran the test-only mode
    const malloryLog = readFileSync(join(c.sites[M]!.dir, 'daemon.log'), 'utf8');
    expect(malloryLog).toContain('TEST-ONLY adversarial mode');

    const attacked = honestAccuracy(runs[0]!);
    const reference = await referenceResult;
    const delta = (attacked.mean - reference.mean) * 100;
    console.log(`honest mean accuracy: reference ${reference.mean.toFixed(4)}, with mallory (scaling x1000, clipped) ${attacked.mean.toFixed(4)} (${delta >= 0 ? '+' : ''}${delta.toFixed(1)} points)`
      + `; per site ${attacked.sites.map((s, k) => `${s.name} ${s.metric.toFixed(3)} vs ${reference.sites[k]!.metric.toFixed(3)} (n=${s.heldOut})`).join(', ')}`);
    expect(Math.abs(delta), `honest mean ${attacked.mean} vs ${reference.mean}`).toBeLessThanOrEqual(3);

    // every honest site published a signed report naming mallory (audited as sent) and recorded the other honest sites' reports
    const perSite = await Promise.all(HONEST.map((i) => waitFor(`${c.sites[i]!.name}'s audit holds the reports`, async () => {
      const s = await suspicionEntries(i, id);
      const own = s.filter((x) => x.report.report.reporter === peerId(i) && x.entry.to === 'gossip:scenario-view');
      const received = s.filter((x) => x.report.report.reporter !== peerId(i));
      return own.length && received.length ? { own, received } : false;
    }, 60_000)));
    for (const [k, i] of HONEST.entries()) {
      const reports = perSite[k]!;
      const named = (x: { report: SignedSuspicion }): string[] => x.report.report.suspects.map((s) => s.peer);
      expect(reports.own.some((x) => named(x).includes(peerId(M))), `${c.sites[i]!.name} names mallory`).toBe(true);
      expect(reports.received.some((x) => named(x).includes(peerId(M)))).toBe(true);
      for (const x of [...reports.own, ...reports.received]) {
        expect(HONEST.map(peerId)).toContain(x.report.report.reporter);   // mallory's own reports (if any) are not what we read here
        expect(x.report.report.aggregator).toBe('clipped');
        const m = x.report.report.suspects.find((s) => s.peer === peerId(M));
        if (m) expect(m.outliers / m.observed).toBeGreaterThanOrEqual(0.8);
      }
    }

    // the roster view of an honest site shows the reports received about mallory (who reported, after which round, the score)
    const [roster, human, status] = await Promise.all([
      cliAsync(['roster', 'show', '--peer', c.sites[1]!.dir, '--json']),
      cliAsync(['roster', 'show', '--peer', c.sites[1]!.dir]),
      cliAsync(['status', '--peer', c.sites[1]!.dir]),
    ]);
    expect(roster.code, roster.stderr).toBe(0);
    const members = (JSON.parse(roster.stdout) as { members: { name: string; suspicions: { by: string; scenario: string; round: number; outliers: number; observed: number }[] }[] }).members;
    const aboutMallory = members.find((m) => m.name === 'mallory')!.suspicions.filter((s) => s.scenario === id);
    expect(aboutMallory.length).toBeGreaterThanOrEqual(2);
    for (const s of aboutMallory) expect(['site-a', 'site-b', 'site-c', 'site-d']).toContain(s.by);
    expect(human.stdout).toMatch(/mallory .*\n\s+suspected by site-[a-d]/);
    expect(status.stdout).toMatch(/suspicion report: site-[a-d] names mallory/);
    expect(status.stdout).toMatch(/mallory .*\n\s+suspected by site-[a-d] in wdbc-robust-scaling \(\w+\) after round \d+: \d+\/\d+ clipped, severity [\d.]+/);
  }, 500_000);
});
