/**
 * Reports that tell the truth (issue 13.5), end to end on four real peer daemons (separate processes, real libp2p, LevelDB, ONNX
 * training): the researcher at site-a launches, but site-a's own approval policy approves nothing, so the run starts with b, c
 * and d. The launch warns that site-a will not take part; site-a's operator approves when too few rounds are left to be admitted.
 * Its report then lists it as a late approval (not in time), says it holds no final model (naming no model file), and `cohort
 * scenario export` exits non-zero; a participant's export carries the model, and every site's metric comes with its held-out n
 * and a 95% interval computed at the site.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScenarioView } from '../../src/scenario/lifecycle.ts';
import { wilsonInterval, type ScoreInterval } from '../../src/util/stats.ts';
import { cli, client, disposeCluster, provisionCluster, sleep, startDaemon, waitConnected, waitFor, wdbcManifest, type Cluster } from './daemon-harness.ts';

interface Detail { id: string; view: ScenarioView }
interface SiteJson { name: string; held_out: number | null; metric: number | null; scores: Record<string, ScoreInterval> | null }
interface MetricsJson { final_model: boolean; participants: string[]; answers: { in_time: string[]; late: { name: string; admitted_from_round: number | null }[] }; sites: SiteJson[] }

const A = 0, B = 1;
const ROUNDS = 5;
let c: Cluster;

beforeAll(async () => {
  // site-a (the launcher) approves nothing by itself: its operator has to decide
  c = await provisionCluster([], (s) => s.name === 'site-a'
    ? { ...s, config: { ...s.config, approval: { autoApprove: { families: [], authors: [], manifests: [] } } } } : s);
  for (const i of [0, 1, 2, 3]) startDaemon(c, i);
  await waitConnected(c, [0, 1, 2, 3]);
}, 150_000);

afterAll(async () => {
  await disposeCluster(c);
});

const peerId = (i: number): string => c.sites[i]!.peerId;
const detail = (i: number, id: string): Promise<Detail> => client(c, i).get<Detail>(`/scenarios/${id}`);

describe('the launcher\'s own peer approves too late to take part', () => {
  it('is warned at launch; its report lists it as late, says it holds no final model; its export exits non-zero', async () => {
    // rounds long enough for a loaded machine; the start delay covers the workers' start
    const file = join(c.dir, 'late-launcher.json');
    writeFileSync(file, JSON.stringify(wdbcManifest({ name: 'wdbc-late-launcher', rounds: ROUNDS, roundMs: 5000, launch: { minPeers: 3, approvalWindowMs: 0, startDelayMs: 12_000 } })));
    const launch = cli(['scenario', 'launch', file, '--json', '--peer', c.sites[A]!.dir]);
    expect(launch.code, launch.stderr).toBe(0);
    expect(launch.stderr).toContain('warning: this peer (site-a) will not take part unless its operator approves');
    const { id, this_peer } = JSON.parse(launch.stdout) as { id: string; this_peer: { decision: string } };
    expect(this_peer.decision).toBe('manual');

    // site-a approves in round 3 of 5 (by the run's clock): the launcher admits a late approver two rounds ahead, so none are left
    // for it. Through the admin API (what `cohort scenario approve` calls): a CLI start on a loaded machine could miss the window.
    const run = await waitFor('the run plan', async () => (await detail(A, id)).view.run, 150_000);
    await sleep(Math.max(0, run.startAt + 3 * 5000 + 300 - Date.now()));
    await client(c, A).post(`/scenarios/${id}/approve`, {});
    const d = await waitFor('finished at site-a', async () => { const x = await detail(A, id); return x.view.state === 'finished' ? x : false; }, 150_000);
    expect(d.view.approvals[peerId(A)]).toBeDefined();
    expect(d.view.run?.participants).not.toContain(peerId(A));
    expect(d.view.run?.admitted?.[peerId(A)]).toBeUndefined();

    // the live table: participants are the peers that trained; site-a is a late approval
    const status = cli(['scenario', 'status', id.slice(0, 12), '--peer', c.sites[A]!.dir]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('approvals 3 in time, 1 late');
    expect(status.stdout).toContain('participants: site-b, site-c, site-d');
    expect(status.stdout).toContain('approved late: site-a (not admitted)');
    expect(status.stdout).toMatch(/site-b .* accuracy \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]/);

    // site-a's export: the report is written and says why there is no model; the command fails
    const outA = join(c.dir, 'export-a');
    const exp = cli(['scenario', 'export', id.slice(0, 12), '--out', outA, '--peer', c.sites[A]!.dir]);
    expect(exp.code).toBe(2); // a CohortError (NO_FINAL_MODEL)
    expect(exp.stderr).toContain('site-a holds no final model of this scenario');
    expect(exp.stderr).toContain('site-b, site-c, site-d');
    expect(existsSync(join(outA, 'model.onnx'))).toBe(false);
    const md = readFileSync(join(outA, 'report.md'), 'utf8');
    expect(md).toContain('**site-a holds no final model of this scenario.** Its approval came after the run plan was made and was not admitted');
    expect(md).not.toContain('model.onnx');
    expect(md).toContain('- Approved in time (signed approvals in the launcher\'s run plan): site-b, site-c, site-d.');
    expect(md).toContain('- Approved late: site-a (after the run plan was made, not admitted).');
    expect(md).toContain('Participants (trained up to the last round; their models make up the final model): site-b, site-c, site-d.');
    const mA = JSON.parse(readFileSync(join(outA, 'metrics.json'), 'utf8')) as MetricsJson;
    expect(mA.final_model).toBe(false);
    expect(mA.participants).toEqual(['site-b', 'site-c', 'site-d']);
    expect(mA.answers.in_time).toEqual(['site-b', 'site-c', 'site-d']);
    expect(mA.answers.late).toEqual([{ name: 'site-a', admitted_from_round: null }]);

    // each site's metric with its held-out n and the interval computed at the site (Wilson for accuracy, bootstrap for AUC)
    expect(mA.sites.map((s) => s.name)).toEqual(['site-b', 'site-c', 'site-d']);
    for (const s of mA.sites) {
      const n = s.held_out!;
      expect(n, s.name).toBeGreaterThan(0);
      const acc = s.scores!.accuracy!;
      expect(acc.method).toBe('wilson');
      expect(acc.value).toBe(s.metric);
      const k = Math.round(acc.value * n);
      expect(Math.abs(acc.value - k / n)).toBeLessThan(1e-9);
      const w = wilsonInterval(k, n);
      expect([acc.lo, acc.hi]).toEqual([w.lo, w.hi]);
      const auc = s.scores!.auc;
      if (auc) {
        expect(auc.method).toBe('bootstrap');
        expect(auc.lo).toBeLessThanOrEqual(auc.value);
        expect(auc.hi).toBeGreaterThanOrEqual(auc.value);
      }
      expect(md).toContain(`| ${s.name} | ${acc.value.toFixed(3)} [${acc.lo.toFixed(3)}, ${acc.hi.toFixed(3)}] |`);
    }

    // a participant's export holds the model and exits 0
    const outB = join(c.dir, 'export-b');
    const expB = cli(['scenario', 'export', id.slice(0, 12), '--out', outB, '--peer', c.sites[B]!.dir]);
    expect(expB.code, expB.stderr).toBe(0);
    expect(existsSync(join(outB, 'model.onnx'))).toBe(true);
    expect(readFileSync(join(outB, 'report.md'), 'utf8')).toContain('Files: model.onnx');
    expect((JSON.parse(readFileSync(join(outB, 'metrics.json'), 'utf8')) as MetricsJson).final_model).toBe(true);

    // that model.onnx reads raw rows (issue 13.2): on site-a's table, which never trained it, `cohort predict` scores within the
    // participants' stated intervals, and the file names its scenario and participants
    const pred = cli(['predict', '--model', join(outB, 'model.onnx'), '--data', join(c.sites[A]!.dir, 'data', 'wdbc.csv'), '--out', join(c.dir, 'predict-a.csv'), '--json']);
    expect(pred.code, pred.stderr).toBe(0);
    const p = JSON.parse(pred.stdout) as { n: number; labelled: number; accuracy: number; model: { scenario: { id: string }; participants: string[]; rounds: number } };
    expect(p.model.scenario.id).toBe(id);
    expect(p.model.participants.sort()).toEqual([peerId(1), peerId(2), peerId(3)].sort());
    expect(p.labelled).toBe(p.n);
    const stated = mA.sites.map((s) => s.scores!.accuracy!);
    expect(p.accuracy).toBeGreaterThanOrEqual(Math.min(...stated.map((a) => a.lo)));
    expect(p.accuracy).toBeLessThanOrEqual(Math.max(...stated.map((a) => a.hi)));
  }, 420_000);
});
