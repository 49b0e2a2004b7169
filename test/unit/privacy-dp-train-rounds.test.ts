// privacy.dp.trainRounds: the DP budget is planned over the first trainRounds rounds; the later rounds only average models
// already released under DP (post-processing, no privacy cost). Real engine learners on WDBC, the simulator's real averaging.
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseManifest } from '../../src/scenario/manifest.ts';
import { releaseSessions } from '../../src/engine/index.ts';
import { planDp } from '../../src/privacy/dp-plan.ts';
import { resolvePrivacy } from '../../src/sim/privacy.ts';
import { runScenarioSim } from '../../src/sim/run.ts';
import { CohortError } from '../../src/util/errors.ts';

afterAll(releaseSessions);

const base = (): Record<string, any> => JSON.parse(readFileSync('scenarios/wdbc-radiomics.json', 'utf8'));

describe('privacy.dp.trainRounds', () => {
  it('plans sigma and the step cap over the training rounds only', () => {
    const dp = { epsilon: 8, delta: 1e-5, clip: 0.3 };
    const over30 = planDp(dp, 5, 64, 1, 30);
    const first30of45 = planDp({ ...dp, trainRounds: 30 }, 5, 64, 1, 45);
    expect(first30of45.maxSteps).toBe(30);
    expect(first30of45.noiseMultiplier).toBe(over30.noiseMultiplier);
    expect(first30of45.q).toBe(1);
    // more training rounds need more noise for the same epsilon; trainRounds above rounds.max changes nothing
    expect(planDp(dp, 5, 64, 1, 45).noiseMultiplier).toBeGreaterThan(over30.noiseMultiplier);
    expect(planDp({ ...dp, trainRounds: 60 }, 5, 64, 1, 45).maxSteps).toBe(45);
  });

  it('is parsed from the manifest, refused unless a positive whole number, and kept by --dp-epsilon', () => {
    const m = parseManifest({ ...base(), privacy: { secure: true, dp: { epsilon: 8, clip: 0.3, trainRounds: 20 } } });
    expect(m.privacy?.dp?.trainRounds).toBe(20);
    for (const [bad, re] of [[0, /at least 1/], [2.5, /whole number/]] as const) {
      let err: unknown;
      try { parseManifest({ ...base(), privacy: { dp: { epsilon: 8, clip: 0.3, trainRounds: bad } } }, 'x.json'); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(CohortError);
      expect((err as CohortError).code).toBe('BAD_MANIFEST');
      expect((err as Error).message).toMatch(re);
    }
    expect(resolvePrivacy(m.privacy, { dpEpsilon: 3 })?.dp).toEqual({ epsilon: 3, delta: 1e-5, clip: 0.3, trainRounds: 20 });
  });

  it('a run with averaging-only rounds after the DP rounds spends the same epsilon and ends closer to consensus', async () => {
    const dp = { epsilon: 4, delta: 1e-5, clip: 1 };
    const o = { peers: 6, baselines: false, seed: 11, evalEvery: 100 } as const;
    const trainOnly = await runScenarioSim(parseManifest({ ...base(), privacy: { secure: false, dp } }), { ...o, rounds: 2 });
    const thenMix = await runScenarioSim(parseManifest({ ...base(), privacy: { secure: false, dp: { ...dp, trainRounds: 2 } } }), { ...o, rounds: 6 });
    const [a, b] = [trainOnly.privacy!.dp!, thenMix.privacy!.dp!];
    expect(b.noise_multiplier).toEqual(a.noise_multiplier);
    expect(b.steps_per_peer).toEqual(a.steps_per_peer);
    expect(b.epsilon_spent).toBe(a.epsilon_spent);
    expect(b.epsilon_spent).toBeLessThanOrEqual(4);
    expect(b.epsilon_spent).toBeGreaterThan(3.8);
    // four more rounds of Metropolis averaging on a 3-regular graph and no training: the peers' models draw together
    expect(thenMix.consensus_distance).toBeLessThan(0.5 * trainOnly.consensus_distance);
  });
});
