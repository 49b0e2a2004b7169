/**
 * The lifetime privacy budget and DP-SGD on real peer daemons (issue 10, steps 1-2): two peer processes (real libp2p, LevelDB,
 * onnxruntime workers) with `approval.privacy.lifetimeEpsilon: 5`. A DP-SGD scenario at epsilon 3 runs and finishes: each site's
 * worker calibrates sigma to its own data size and planned steps, reports the epsilon it spent (<= 3) in its progress, the ledger
 * settles it (audit entry kind `privacy`) and `cohort status --json` shows spent / remaining per dataset. A second scenario at
 * epsilon 3 would exceed the budget: both peers decline it with the reason, shown in `cohort scenario status`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScenarioView } from '../../src/scenario/lifecycle.ts';
import { cli, client, disposeCluster, provisionCluster, waitFor, wdbcManifest, type Cluster, startConnected } from './daemon-harness.ts';

const A = 0, B = 1;
const LIFETIME = 5;
let c: Cluster;

beforeAll(async () => {
  c = await provisionCluster([], (s) => ({ ...s, config: { ...s.config, approval: { autoApprove: { families: ['mlp'] }, privacy: { lifetimeEpsilon: LIFETIME } } } }));
  await startConnected(c, [A, B]);
}, 150_000);

afterAll(async () => {
  await disposeCluster(c);
}, 240_000);

interface Detail { view: ScenarioView }
interface Budget { dataset: string; spent: number; reserved: number; lifetime: number | null; remaining: number | null; scenarios: number }
interface AuditEntry { kind: string; what: string; scenario?: string; detail?: string }

const dpManifest = (name: string) => ({ ...wdbcManifest({ name, rounds: 3, roundMs: 6000, launch: { minPeers: 2, startDelayMs: 12_000 } }),
  privacy: { dp: { epsilon: 3, delta: 1e-5, clip: 1 } } });

describe('privacy budget and DP-SGD on real peers', () => {
  it('a DP scenario runs within its epsilon, the ledger records it, and the next one that would exceed the lifetime budget is declined', async () => {
    const id = (await client(c, A).post<{ id: string }>('/scenarios', { manifest: dpManifest('wdbc-dp-budget-1') })).id;
    const done = await waitFor('DP scenario finished at both', async () => {
      const x = await client(c, A).get<Detail>(`/scenarios/${id}`);
      if (x.view.state === 'failed' || x.view.state === 'cancelled') throw new Error(`scenario ${x.view.state}: ${x.view.reason}`);
      return x.view.state === 'finished' && [A, B].every((i) => x.view.progress[c.sites[i]!.peerId]?.done) ? x : false;
    }, 240_000);
    for (const i of [A, B]) {
      const p = done.view.progress[c.sites[i]!.peerId]!;
      expect(p.epsilon, `${c.sites[i]!.name} reports the epsilon it spent`).toBeGreaterThan(0);
      expect(p.epsilon!).toBeLessThanOrEqual(3);
      console.log(`${c.sites[i]!.name}: epsilon spent ${p.epsilon}, accuracy ${p.metric}, held-out n ${p.heldOut}`);
    }
    // the ledger: settled with the spent epsilon, shown in `cohort status --json` and audited
    for (const i of [A, B]) {
      const spent = done.view.progress[c.sites[i]!.peerId]!.epsilon!;
      const b = await waitFor('settled in the ledger', async () => {
        const s = await client(c, i).get<{ privacy: Budget[] }>('/status');
        const w = s.privacy.find((x) => x.dataset === 'wdbc');
        return w && w.reserved === 0 && w.scenarios === 1 ? w : false;
      }, 60_000);
      expect(b.spent).toBeCloseTo(spent, 5);
      expect(b.remaining).toBeCloseTo(LIFETIME - spent, 5);
      const st = cli(['status', '--json', '--peer', c.sites[i]!.dir]);
      expect(st.code, st.stderr).toBe(0);
      expect((JSON.parse(st.stdout) as { privacy: Budget[] }).privacy.find((x) => x.dataset === 'wdbc')?.spent).toBeCloseTo(spent, 5);
      const human = cli(['status', '--peer', c.sites[i]!.dir]);
      expect(human.stdout).toMatch(/privacy wdbc: epsilon [\d.]+ spent .* left of the lifetime budget 5/);
      const audit = await client(c, i).get<{ entries: AuditEntry[] }>(`/audit?scenario=${id}&limit=0`);
      const privacy = audit.entries.filter((e) => e.kind === 'privacy').map((e) => e.what);
      expect(privacy).toContain('privacy budget: reserved epsilon 3 on wdbc');
      expect(privacy.some((w) => /^privacy budget: spent epsilon [\d.]+ of 3 reserved on wdbc$/.test(w))).toBe(true);
    }

    // what the operator and the report say: each site's epsilon spent
    const st = cli(['scenario', 'status', id.slice(0, 10), '--peer', c.sites[A]!.dir]);
    expect(st.stdout).toMatch(/epsilon spent: .*site-a 2\.99\d/);
    const out = join(c.dir, 'export-dp');
    const ex = cli(['scenario', 'export', id.slice(0, 10), '--out', out, '--peer', c.sites[A]!.dir]);
    expect(ex.code, ex.stderr).toBe(0);
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { sites: { name: string; epsilon_spent: number | null }[] };
    for (const i of [A, B]) expect(metrics.sites.find((x) => x.name === c.sites[i]!.name)?.epsilon_spent).toBeCloseTo(done.view.progress[c.sites[i]!.peerId]!.epsilon!, 5);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(/Privacy: DP-SGD at epsilon 3, delta 0\.00001 per site; epsilon spent \(each site's accountant\): site-a 2\.99\d, site-b 2\.99\d\./);

    // a second scenario at epsilon 3: 3 (or a little less) spent + 3 > 5
    const id2 = (await client(c, A).post<{ id: string }>('/scenarios', { manifest: dpManifest('wdbc-dp-budget-2') })).id;
    const d2 = await waitFor('both declines heard', async () => {
      const x = await client(c, A).get<Detail>(`/scenarios/${id2}`);
      return Object.keys(x.view.declines).length === 2 ? x : false;
    }, 60_000);
    for (const i of [A, B]) expect(d2.view.declines[c.sites[i]!.peerId]?.reason).toMatch(/privacy: the scenario's epsilon 3 would exceed this dataset's lifetime budget: [\d.]+ spent of 5/);
    const status = cli(['scenario', 'status', id2.slice(0, 10), '--peer', c.sites[B]!.dir]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/site-b \(privacy: the scenario's epsilon 3 would exceed this dataset's lifetime budget/);
  }, 420_000);
});
