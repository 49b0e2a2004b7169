// Fed-TCGA-BRCA on simulated peers (real engine, linear Cox model): one peer per region, FLamby's fixed split, C-index on the
// pooled test set, per-site results beside the baselines. Few rounds: the test checks the shape and sanity, not the headline figure.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/scenario/manifest.ts';
import { runScenarioSim } from '../../src/sim/run.ts';

const manifest = loadManifest('scenarios/tcga-brca.json');
const REGIONS = ['Northeast', 'West', 'South', 'Europe', 'Midwest', 'Canada'];

describe('Fed-TCGA-BRCA (one peer per region)', () => {
  it('reports c_index on the pooled test set, per-site entries in peer order, and is deterministic for a seed', async () => {
    const r = await runScenarioSim(manifest, { rounds: 6, seed: 2 });
    expect(r.peers).toBe(6);
    expect(r.final.metric).toBe('c_index');
    expect(r.details.samples_per_peer).toEqual([248, 164, 156, 129, 129, 40]);
    expect(r.per_site!.map((s) => s.site)).toEqual(REGIONS);
    expect(r.per_site!.map((s) => s.test)).toEqual([63, 42, 40, 33, 33, 11]);
    for (const s of r.per_site!) {
      for (const v of [s.metric, s.local_only, s.fedavg, s.centralised]) if (v !== null) expect(v).toBeGreaterThanOrEqual(0), expect(v).toBeLessThanOrEqual(1);
    }
    // a linear Cox model learns something in 6 rounds: well above chance on the pooled test set
    expect(r.final.mean).toBeGreaterThan(0.6);
    expect(r.baselines.centralised).toBeGreaterThan(0.6);
    const again = await runScenarioSim(manifest, { rounds: 6, seed: 2, baselines: false });
    expect(again.final).toEqual(r.final);
    expect(again.per_site!.map((s) => s.metric)).toEqual(r.per_site!.map((s) => s.metric));
    expect(again.per_site!.every((s) => s.fedavg === null && s.local_only === null)).toBe(true);
  });

  it('--peers and --alpha do not apply to a natural split', async () => {
    await expect(runScenarioSim(manifest, { rounds: 1, peers: 8 })).rejects.toThrow(/6 sites, one peer each/);
    await expect(runScenarioSim(manifest, { rounds: 1, alpha: 0.5 })).rejects.toThrow(/partition \(--alpha\) does not apply/);
  });

  it('cohort sim --json prints final, baselines and per_site', () => {
    const out = execFileSync('npx', ['tsx', 'src/cli/main.ts', 'sim', 'scenarios/tcga-brca.json', '--seed', '1', '--rounds', '3', '--json'],
      { encoding: 'utf8', env: { ...process.env, COHORT_LOG_LEVEL: 'warn' } });
    const j = JSON.parse(out) as { final: { metric: string; mean: number }; baselines: Record<string, unknown>; per_site: { site: string; metric: number }[] };
    // the documented keys in order, per_site right after baselines (later keys may follow)
    expect(Object.keys(j).slice(0, 8)).toEqual(['algorithm', 'peers', 'rounds', 'final', 'baselines', 'per_site', 'bytes_sent_per_peer', 'consensus_distance']);
    expect(j.final.metric).toBe('c_index');
    expect(Object.keys(j.baselines)).toEqual(['centralised', 'local_only', 'fedavg']);
    expect(j.per_site.map((s) => s.site)).toEqual(REGIONS);
  });
});
