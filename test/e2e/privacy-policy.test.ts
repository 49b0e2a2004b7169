/**
 * Privacy policy on real peer daemons (issue 10.3): site-b's config demands epsilon <= 1 per scenario; a scenario asking for
 * epsilon 8 is declined by site-b with that reason, shown in `cohort scenario status`. site-a (no privacy policy) declines it too:
 * secure averaging with launch.minPeers 2 could run with one sender per receiver, whose model would be exposed (docs/privacy.md).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScenarioView } from '../../src/scenario/lifecycle.ts';
import { cli, client, provisionCluster, waitFor, wdbcManifest, type Cluster, disposeCluster, startConnected } from './daemon-harness.ts';

const A = 0;
const B = 1;
let c: Cluster;

beforeAll(async () => {
  c = await provisionCluster([], (s) => (s.name === 'site-b'
    ? { ...s, config: { ...s.config, approval: { ...((s.config?.approval as object | undefined) ?? {}), privacy: { maxEpsilon: 1 } } } } : s));
  await startConnected(c, [A, B]);
}, 150_000);

afterAll(async () => {
  await disposeCluster(c);
}, 240_000);

describe('privacy policy', () => {
  it('a peer whose policy demands epsilon <= 1 declines a scenario asking for 8, with the reason in scenario status', async () => {
    const manifest = { ...wdbcManifest({ launch: { minPeers: 2 }, name: 'wdbc-eps8' }), privacy: { secure: true, dp: { epsilon: 8, clip: 1 } } };
    const id = (await client(c, A).post<{ id: string }>('/scenarios', { manifest })).id;
    const d = await waitFor('both declines heard', async () => {
      const x = await client(c, A).get<{ view: ScenarioView }>(`/scenarios/${id}`);
      return Object.keys(x.view.declines).length === 2 ? x : false;
    }, 60_000);
    expect(Object.keys(d.view.approvals)).toHaveLength(0);
    expect(d.view.declines[c.sites[B]!.peerId]?.reason).toMatch(/privacy: the scenario asks for epsilon 8, above this peer's maximum of 1/);
    expect(d.view.declines[c.sites[A]!.peerId]?.reason).toMatch(/privacy: secure averaging needs at least 3 participants \(a receiver with one sender would see its model\); launch.minPeers is 2/);
    const status = cli(['scenario', 'status', id.slice(0, 10), '--peer', c.sites[B]!.dir]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/site-b \(privacy: the scenario asks for epsilon 8, above this peer's maximum of 1/);
  }, 120_000);
});
