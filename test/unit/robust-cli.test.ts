// `cohort sim --attack --byzantine --aggregator` (issue 11): the "attack" block and honest-only `final`, and bad input as a clear error
// with exit code 2 (unknown attack or aggregator, a fraction outside [0, 0.5), an aggregator the rule cannot serve).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runScenarioSim } from '../../src/sim/run.ts';
import { loadManifest } from '../../src/scenario/manifest.ts';

const run = promisify(execFile);

async function cohort(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { timeout: 240_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

describe('cohort sim with attacks and robust aggregators', () => {
  it('bad input is a clear error with exit code 2, never a silent fallback', async () => {
    const base = ['sim', 'scenarios/wdbc-radiomics.json', '--peers', '8', '--learner', 'softmax', '--json'];
    const [attack, aggregator, fraction, rule, alone] = await Promise.all([
      cohort([...base, '--attack', 'telekinesis']),
      cohort([...base, '--aggregator', 'krum']),
      cohort([...base, '--attack', 'alie', '--byzantine', '0.5']),
      cohort([...base, '--algorithm', 'gossip', '--aggregator', 'median']),
      cohort([...base, '--byzantine', '0.1']),
    ]);
    expect(attack.code).toBe(2);
    expect(attack.stderr).toMatch(/unknown attack "telekinesis".*sign-flip/s);
    expect(aggregator.code).toBe(2);
    expect(aggregator.stderr).toMatch(/unknown aggregator "krum".*clipped/s);
    expect(fraction.code).toBe(2);
    expect(fraction.stderr).toMatch(/outside \[0, 0\.5\)/);
    expect(rule.code).toBe(2);
    expect(rule.stderr).toMatch(/gossip learning/);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toMatch(/--byzantine goes with --attack/);
  }, 300_000);

  it('bad input, continued: a negative or non-numeric fraction, push-sum / CHOCO / masking with a robust aggregator', async () => {
    const base = ['sim', 'scenarios/wdbc-radiomics.json', '--peers', '8', '--learner', 'softmax', '--json'];
    const [negative, word, pushsum, choco, masked] = await Promise.all([
      cohort([...base, '--attack', 'scaling', '--byzantine', '-0.1']),
      cohort([...base, '--attack', 'scaling', '--byzantine', 'many']),
      cohort([...base, '--algorithm', 'pushsum', '--aggregator', 'clipped']),
      cohort([...base, '--algorithm', 'choco', '--aggregator', 'trimmed-mean']),
      cohort([...base, '--secure', '--aggregator', 'median']),
    ]);
    for (const r of [negative, word, pushsum, choco, masked]) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe('');   // nothing ran: no silent fallback to plain averaging
    }
    expect(negative.stderr).toMatch(/--byzantine -0\.1 is outside \[0, 0\.5\)/);
    expect(word.stderr).toMatch(/outside \[0, 0\.5\)/);
    expect(pushsum.stderr).toMatch(/push-sum/);
    expect(choco.stderr).toMatch(/CHOCO/);
    expect(masked.stderr).toMatch(/masked/);
  }, 300_000);

  it('prints final over the honest peers and an "attack" block; scaling attackers are named; Gaussian noise wrecks plain averaging only', async () => {
    const m = loadManifest('scenarios/wdbc-radiomics.json');
    const o = { peers: 16, learner: 'softmax' as const, baselines: false, rounds: 20, seed: 1 };
    const clipped = await runScenarioSim(m, { ...o, aggregator: 'clipped', attack: { name: 'scaling', fraction: 0.1 } });
    // a linear classifier's accuracy does not care about scale (x1000 keeps the argmax): noise is what hurts plain averaging here
    const plain = await runScenarioSim(m, { ...o, attack: { name: 'gaussian', fraction: 0.1 } });
    const noisyClipped = await runScenarioSim(m, { ...o, aggregator: 'clipped', attack: { name: 'gaussian', fraction: 0.1 } });
    const free = await runScenarioSim(m, { ...o, aggregator: 'clipped' });
    expect(clipped.attack).toMatchObject({ name: 'scaling', byzantine_fraction: 0.1, aggregator: 'clipped', byzantine: ['p1', 'p11'] });
    expect(Object.keys(clipped).indexOf('attack')).toBeGreaterThan(Object.keys(clipped).indexOf('final'));
    expect(clipped.attack!.crafted).toBeGreaterThan(0);
    expect(clipped.attack!.suspicion).toMatchObject({ byzantine_named: 2, honest_named: 0, named: ['p1', 'p11'] });
    expect(clipped.final.mean).toBeGreaterThan(free.final.mean - 0.03);
    expect(noisyClipped.final.mean).toBeGreaterThan(free.final.mean - 0.03);
    expect(plain.final.mean).toBeLessThan(noisyClipped.final.mean - 0.2);
    expect(plain.attack!.suspicion).toBeNull();
    expect(free.attack).toBeUndefined();
  }, 300_000);
});
