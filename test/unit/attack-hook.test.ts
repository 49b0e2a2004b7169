// The test-only adversarial peer (issue 11, src/sim/attacks/test-hook.ts): COHORT_TEST_ATTACK is honoured only under the test runner
// on a run from the sources; anywhere else it is ignored with a reason, and attacks a real peer cannot carry out are refused.
import { describe, expect, it } from 'vitest';
import { testAttackFromEnv } from '../../src/sim/attacks/test-hook.ts';
import { CohortError } from '../../src/util/errors.ts';

describe('the test-only adversarial mode', () => {
  it('is off without the variable', () => {
    expect(testAttackFromEnv({ VITEST: 'true' }, true)).toEqual({ attack: null });
  });

  it('is honoured only under the test runner and from the sources', () => {
    expect(testAttackFromEnv({ COHORT_TEST_ATTACK: 'scaling', VITEST: 'true' }, true)).toEqual({ attack: 'scaling' });
    const compiled = testAttackFromEnv({ COHORT_TEST_ATTACK: 'scaling', VITEST: 'true' }, false);
    expect(compiled.attack).toBeNull();
    expect('ignored' in compiled && compiled.ignored).toMatch(/ignored: the adversarial mode exists for the test suite only/);
    const production = testAttackFromEnv({ COHORT_TEST_ATTACK: 'scaling' }, true);
    expect(production.attack).toBeNull();
    expect('ignored' in production && production.ignored).toMatch(/COHORT_TEST_ATTACK=scaling ignored/);
  });

  it('refuses unknown attacks and those a real peer cannot carry out', () => {
    const env = (a: string) => ({ COHORT_TEST_ATTACK: a, VITEST: 'true' });
    expect(() => testAttackFromEnv(env('telekinesis'), true)).toThrow(/unknown attack "telekinesis"/);
    for (const a of ['alie', 'ipm', 'dissensus', 'label-flip']) {
      expect(() => testAttackFromEnv(env(a), true)).toThrow(CohortError);
      expect(() => testAttackFromEnv(env(a), true)).toThrow(/cannot run on a real peer/);
    }
    for (const a of ['sign-flip', 'gaussian', 'free-ride', 'nan', 'wrong-layout']) expect(testAttackFromEnv(env(a), true)).toEqual({ attack: a });
  });
});
