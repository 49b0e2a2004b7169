/**
 * The test-only adversarial participant (issue 11): a real daemon whose outgoing exchange models are rewritten by the attack suite
 * (attackTransport), so the e2e can run a Byzantine member over real libp2p. It is switched on by the environment only, never by a
 * manifest, a config file or the admin API, and only when all three hold:
 *
 *   COHORT_TEST_ATTACK=<attack>   the attack (scaling, sign-flip, gaussian, free-ride, nan, wrong-layout)
 *   VITEST is set                 the process was started by the test runner (vitest sets it; the e2e harness passes it on)
 *   running from the sources      src/*.ts through tsx: the compiled build (dist/, what `bin/cohort.js` and a deployment run) never
 *                                 honours it
 *
 * A daemon that sees COHORT_TEST_ATTACK without the other two ignores it and logs an error: a stray variable in production cannot
 * turn a hospital into an attacker. An attack that needs the simulator's omniscient view (alie, ipm, dissensus) or the worker's
 * data (label-flip) is refused in test mode: a real peer knows only its own model, so those would silently send honest models.
 */
import { CohortError } from '../../util/errors.ts';
import { OMNISCIENT, parseAttack, type AttackName } from './index.ts';

export const TEST_ATTACK_ENV = 'COHORT_TEST_ATTACK';

export type TestAttackDecision =
  | { readonly attack: AttackName }
  | { readonly attack: null; readonly ignored?: string };

/** What the environment asks for, given whether this code runs from the TypeScript sources (not the compiled build). */
export function testAttackFromEnv(env: NodeJS.ProcessEnv, fromSources: boolean): TestAttackDecision {
  const asked = env[TEST_ATTACK_ENV];
  if (!asked) return { attack: null };
  if (!fromSources || !env['VITEST']) {
    return { attack: null, ignored: `${TEST_ATTACK_ENV}=${asked} ignored: the adversarial mode exists for the test suite only (needs VITEST and a run from the sources)` };
  }
  const attack = parseAttack(asked);
  if ((OMNISCIENT as readonly string[]).includes(attack) || attack === 'label-flip') {
    throw new CohortError('BAD_FLAG', `${TEST_ATTACK_ENV}=${attack} cannot run on a real peer`, 'a real adversarial peer knows only its own model: use scaling, sign-flip, gaussian, free-ride, nan or wrong-layout');
  }
  return { attack };
}

