/**
 * One consortium standardiser on real peer processes (issue 13.1): four daemons on loopback (real libp2p, LevelDB, ONNX
 * training), a WDBC scenario with data.preprocessing.standardize "consortium"; site-d approves only after the start and is
 * admitted from a later round. Every participant's progress names the standardiser it trains with (its hash): one value, the
 * late one included. The statistics and the standardiser are in the audit logs as transfers. Checked while the run goes on,
 * then cancelled: what this file tests is the start, not the end of a run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScenarioView } from '../../src/scenario/lifecycle.ts';
import { transfers, type AuditEntry } from '../../src/store/audit.ts';
import { cli, client, disposeCluster, provisionCluster, waitFor, wdbcManifest, type Cluster, startConnected } from './daemon-harness.ts';

interface Detail { id: string; view: ScenarioView }
const A = 0, B = 1, C = 2, D = 3;
let c: Cluster;

beforeAll(async () => {
  c = await provisionCluster([], (s) => s.name === 'site-d'
    ? { ...s, config: { ...s.config, approval: { autoApprove: { families: [], authors: [], manifests: [] } } } } : s);
  await startConnected(c, [A, B, C, D]);
}, 120_000);

afterAll(async () => {
  await disposeCluster(c);
});

const detail = (i: number, id: string): Promise<Detail> => client(c, i).get<Detail>(`/scenarios/${id}`);

describe('consortium standardiser on real peers', () => {
  it('every participant, the one admitted late too, trains with the same standardiser; only aggregates were sent', async () => {
    // long rounds: site-d's worker must be ready while rounds are left on a loaded machine
    const m = wdbcManifest({ name: 'wdbc-e2e-standardiser', rounds: 40, roundMs: 3000, launch: { minPeers: 3, approvalWindowMs: 0, startDelayMs: 5000 } });
    expect((m.data as { preprocessing: { standardize: unknown } }).preprocessing.standardize).toBe('consortium');
    const id = (await client(c, A).post<{ id: string }>('/scenarios', { manifest: m })).id;
    await waitFor('running without site-d', async () => {
      const d = await detail(A, id);
      return d.view.state === 'running' && (d.view.progress[c.sites[A]!.peerId]?.round ?? -1) >= 0;
    }, 120_000);
    await client(c, D).post(`/scenarios/${id}/approve`, {});
    const all = [A, B, C, D].map((i) => c.sites[i]!.peerId);
    const d = await waitFor('every participant reports its standardiser', async () => {
      const x = await detail(B, id);
      return all.every((p) => x.view.progress[p]?.standardiser) ? x : false;
    }, 180_000);
    expect(d.view.run?.admitted?.[c.sites[D]!.peerId]).toBeDefined();   // site-d joined from a later round
    const hashes = all.map((p) => d.view.progress[p]!.standardiser);
    expect(hashes[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(hashes).size).toBe(1);
    // what left the launcher for this: statistics (aggregates) and the standardiser, to participants only, audited
    const { entries } = await client(c, A).get<{ entries: AuditEntry[] }>(`/audit?scenario=${id}`);
    const sent = transfers(entries).filter((e) => e.kind === 'model-sent' && /preprocessing statistics|agreed standardiser/.test(e.what));
    expect(sent.length).toBeGreaterThan(0);
    for (const e of sent) expect(all).toContain(e.peer);
    const r = cli(['scenario', 'cancel', id.slice(0, 8), '--reason', 'test done', '--peer', c.sites[A]!.dir]);
    expect(r.code, r.stderr).toBe(0);
  }, 360_000);
});
