// The manifest's privacy block: consistent settings parse, inconsistent ones are refused with the reason; the simulator's
// overrides (--dp-epsilon, --secure) and the epsilon a DP run reports as spent.
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseManifest } from '../../src/scenario/manifest.ts';
import { releaseSessions } from '../../src/engine/index.ts';
import { resolvePrivacy } from '../../src/sim/privacy.ts';
import { runScenarioSim } from '../../src/sim/run.ts';
import { CohortError } from '../../src/util/errors.ts';

afterAll(releaseSessions);

const base = (): Record<string, any> => JSON.parse(readFileSync('scenarios/wdbc-radiomics.json', 'utf8'));
const refused = (m: Record<string, unknown>, re: RegExp): void => {
  let err: unknown;
  try { parseManifest(m, 'x.json'); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(CohortError);
  expect((err as CohortError).code).toBe('BAD_MANIFEST');
  expect((err as Error).message).toMatch(re);
};

describe('manifest privacy block', () => {
  it('parses {"secure": true, "dp": {epsilon, delta, clip}} and fills delta', () => {
    const m = parseManifest({ ...base(), privacy: { secure: true, dp: { epsilon: 3, clip: 1 } } });
    expect(m.privacy).toEqual({ secure: true, dp: { epsilon: 3, delta: 1e-5, clip: 1 } });
    expect(parseManifest(base()).privacy).toBeUndefined();
  });

  it('refuses dp without clip, epsilon <= 0, delta outside (0,1), unknown keys', () => {
    refused({ ...base(), privacy: { dp: { epsilon: 3 } } }, /privacy\.dp\.clip is required/);
    refused({ ...base(), privacy: { dp: { epsilon: 0, clip: 1 } } }, /epsilon must be a positive/);
    refused({ ...base(), privacy: { dp: { epsilon: -2, clip: 1 } } }, /epsilon must be a positive/);
    refused({ ...base(), privacy: { dp: { epsilon: 3, clip: 1, delta: 1 } } }, /delta must be in \(0, 1\)/);
    refused({ ...base(), privacy: { dp: { epsilon: 3, clip: 0 } } }, /clip must be positive/);
    refused({ ...base(), privacy: { secure: true, k: 2 } }, /Unrecognized key/);
  });

  it('refuses secure averaging with a rule that cannot mask, a lossy codec, or a degree-1 graph, naming why', () => {
    for (const [algorithm, why] of [['gossip', /one model to one peer/], ['pushsum', /push-sum/], ['choco', /CHOCO/], ['epidemic', /private random receivers/]] as const) {
      const m = base();
      m.averaging.algorithm = algorithm;
      refused({ ...m, privacy: { secure: true } }, why);
    }
    refused({ ...base(), compression: { codec: 'int8' }, privacy: { secure: true } }, /exact fixed-point/);
    const ring1 = base();
    ring1.averaging.topology = { kind: 'random-regular', degree: 1 };
    refused({ ...ring1, privacy: { secure: true } }, /degree-1/);
  });

  it('refuses DP-SGD for a survival (Cox) task', () => {
    const t = JSON.parse(readFileSync('scenarios/tcga-brca.json', 'utf8'));
    refused({ ...t, privacy: { dp: { epsilon: 3, clip: 1 } } }, /Cox/);
  });
});

describe('simulator privacy settings', () => {
  it('--dp-epsilon adds DP with the manifest delta/clip (defaults 1e-5, 1); inf turns it off; --secure alone', () => {
    expect(resolvePrivacy(undefined, {})).toBeUndefined();
    expect(resolvePrivacy(undefined, { dpEpsilon: 3 })).toEqual({ secure: false, dp: { epsilon: 3, delta: 1e-5, clip: 1 } });
    expect(resolvePrivacy({ secure: true, dp: { epsilon: 8, delta: 1e-6, clip: 0.5 } }, { dpEpsilon: 1 })).toEqual({ secure: true, dp: { epsilon: 1, delta: 1e-6, clip: 0.5 } });
    expect(resolvePrivacy({ secure: false, dp: { epsilon: 8, delta: 1e-6, clip: 0.5 } }, { dpEpsilon: Infinity })).toEqual({ secure: false });
    expect(() => resolvePrivacy(undefined, { dpEpsilon: 0 })).toThrow(/epsilon must be > 0/);
  });

  it('a DP run reports the epsilon each peer spent: at most the target, and the budget used (>= 95%)', async () => {
    const m = parseManifest({ ...base(), privacy: { secure: false, dp: { epsilon: 2, delta: 1e-5, clip: 1 } } });
    const r = await runScenarioSim(m, { peers: 4, rounds: 3, baselines: false, seed: 3 });
    expect(r.privacy?.secure).toBe(false);
    const dp = r.privacy!.dp!;
    expect(dp.epsilon_target).toBe(2);
    expect(dp.epsilon_spent).toBeLessThanOrEqual(2);
    expect(dp.epsilon_spent).toBeGreaterThan(1.9);
    expect(dp.noise_multiplier.min).toBeGreaterThan(0.5);
    expect(Number.isFinite(r.final.mean)).toBe(true);
    // the report without privacy settings has no privacy block
    const plain = await runScenarioSim(parseManifest(base()), { peers: 4, rounds: 1, baselines: false, seed: 3 });
    expect(plain.privacy).toBeUndefined();
  });
});
