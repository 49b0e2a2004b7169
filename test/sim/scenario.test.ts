// Whole scenario runs on simulated peers with the real engine (onnxruntime sessions): WDBC over 8 peers, baselines, determinism, CLI JSON.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/scenario/manifest.ts';
import { runScenarioSim } from '../../src/sim/run.ts';

const manifest = loadManifest('scenarios/wdbc-radiomics.json');

describe('WDBC over 8 simulated peers (engine Trainer, Dirichlet 0.5)', () => {
  it('D-PSGD beats local-only training and comes close to the centralised ceiling; deterministic for a seed', async () => {
    const a = await runScenarioSim(manifest, { rounds: 20, peers: 8 });
    expect(a.details.learner).toBe('engine');
    expect(a.rounds).toBe(20);
    expect(a.baselines.centralised).toBeGreaterThan(0.94);
    expect(a.final.mean).toBeGreaterThan(a.baselines.local_only! + 0.02);
    expect(a.final.mean).toBeGreaterThan(a.baselines.centralised! - 0.05);
    expect(a.bytes_sent_per_peer).toBeGreaterThan(20 * 3 * a.details.parameters * 4);
    expect(Object.values(a.details.rejected).every((v) => v === 0)).toBe(true);
    const b = await runScenarioSim(manifest, { rounds: 20, peers: 8, baselines: false });
    expect(b.final).toEqual(a.final);
    expect(b.consensus_distance).toBe(a.consensus_distance);
  });

  it('30% churn with int8 Epidemic Learning: the peers that stayed and those that came back all end near the others', async () => {
    const r = await runScenarioSim(manifest, { rounds: 24, peers: 10, algorithm: 'epidemic', codec: 'int8', churn: 0.3, baselines: false });
    expect(r.details.online_at_end).toBe(10);
    expect(r.final.min).toBeGreaterThan(0.9);
    const f32 = await runScenarioSim(manifest, { rounds: 24, peers: 10, algorithm: 'epidemic', churn: 0.3, baselines: false });
    expect(r.bytes_sent_per_peer).toBeLessThan(f32.bytes_sent_per_peer * 0.35);
  });
});

describe('stopping rules', () => {
  it('a target stops the run at the first evaluated round that reaches it; plateau after `patience` rounds without gain', async () => {
    const target = await runScenarioSim({ ...manifest, rounds: { max: 40, stopping: { kind: 'target', value: 0.9 } } },
      { learner: 'softmax', baselines: false, algorithm: 'epidemic' });
    expect(target.rounds).toBeLessThan(40);
    const curve = target.details.curves['epidemic']!;
    expect(curve.at(-1)!.metric).toBeGreaterThanOrEqual(0.9);
    expect(curve.slice(0, -1).every((p) => p.metric < 0.9)).toBe(true);
    const plateau = await runScenarioSim({ ...manifest, rounds: { max: 200, stopping: { kind: 'plateau', patience: 3, minDelta: 0.001 } } },
      { learner: 'softmax', baselines: false, algorithm: 'gossip' });
    expect(plateau.rounds).toBeLessThan(200);
  });
});

describe('cohort sim (a real process)', () => {
  it('--json prints exactly the documented keys; --plot writes SVG curves', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-sim-'));
    const out = execFileSync('npx', ['tsx', 'src/cli/main.ts', 'sim', 'scenarios/wdbc-pushsum.json', '--peers', '6', '--rounds', '8', '--seed', '3', '--json', '--plot', dir],
      { encoding: 'utf8', env: { ...process.env, COHORT_LOG_LEVEL: 'warn' } });
    const j = JSON.parse(out) as Record<string, unknown>;
    expect(Object.keys(j)).toEqual(['algorithm', 'peers', 'rounds', 'final', 'baselines', 'bytes_sent_per_peer', 'consensus_distance', 'standardiser']);
    expect(j).toMatchObject({ algorithm: 'pushsum', peers: 6, rounds: 8, final: { metric: 'accuracy' } });
    expect(Object.keys(j.baselines as object)).toEqual(['centralised', 'local_only', 'fedavg']);
    expect(readdirSync(dir).filter((f) => f.endsWith('.svg')).length).toBe(3);
  });

  it('a bad flag is refused with a hint', () => {
    let err = '';
    try {
      execFileSync('npx', ['tsx', 'src/cli/main.ts', 'sim', 'scenarios/wdbc-radiomics.json', '--algorithm', 'magic'], { encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      err = String((e as { stderr: string }).stderr);
    }
    expect(err).toMatch(/unknown algorithm "magic"/);
    expect(err).toMatch(/hint: use one of dpsgd/);
  });
});
