/**
 * Privacy in the simulator (docs/privacy.md): the effective privacy settings of a run (manifest `privacy` block plus
 * `cohort sim --secure / --dp-epsilon`), each peer's DP-SGD noise multiplier solved from its own data size and the planned
 * steps, and the `privacy` block of the report with the epsilon each peer actually spent (RDP accountant).
 */
import { planDp } from '../privacy/dp-plan.ts';
import { CohortError } from '../util/errors.ts';
import type { LocalLearner } from '../averaging/types.ts';
import type { SimOverrides, SimPrivacy } from './run.ts';
import { stepsPerTrain, type LocalWork, type TrainerLearner } from './trainer-learner.ts';

export const DEFAULT_DP = { delta: 1e-5, clip: 1 };

/** The run's privacy: the manifest's block, with --secure and --dp-epsilon applied (--dp-epsilon Infinity turns DP off). */
export function resolvePrivacy(p: SimPrivacy | undefined, o: Pick<SimOverrides, 'dpEpsilon' | 'secure'>): SimPrivacy | undefined {
  if (!p && o.dpEpsilon === undefined && o.secure === undefined) return undefined;
  const secure = o.secure ?? p?.secure ?? false;
  let dp = p?.dp;
  if (o.dpEpsilon !== undefined) {
    if (!(o.dpEpsilon > 0)) throw new CohortError('BAD_FLAG', `--dp-epsilon ${o.dpEpsilon} is not valid: epsilon must be > 0`, 'give e.g. 1, 3 or 8 (or inf for no DP)');
    dp = Number.isFinite(o.dpEpsilon) ? { ...dp, delta: dp?.delta ?? DEFAULT_DP.delta, clip: dp?.clip ?? DEFAULT_DP.clip, epsilon: o.dpEpsilon } : undefined;
  }
  return dp ? { secure, dp } : { secure };
}

/** DP-SGD settings for one peer: sigma such that `rounds` trainings of its data stay within epsilon (or null without DP). */
export function peerDp(p: SimPrivacy | undefined, n: number, batchSize: number, work: LocalWork, rounds: number, noiseSeed: number):
  { clip: number; noiseMultiplier: number; noiseSeed: number; maxSteps: number } | null {
  if (!p?.dp) return null;
  // the same plan a real peer's training worker makes (src/privacy/dp-plan.ts)
  const { clip, noiseMultiplier, maxSteps } = planDp(p.dp, n, batchSize, stepsPerTrain(n, batchSize, work), rounds);
  return { clip, noiseMultiplier, noiseSeed, maxSteps };
}

export interface PrivacyReport {
  readonly secure: boolean;
  readonly dp: null | {
    readonly epsilon_target: number; readonly delta: number; readonly clip: number;
    /** Over the peers running the rule: the largest epsilon any peer spent (each peer's budget is for its own patients). */
    readonly epsilon_spent: number;
    readonly epsilon_spent_mean: number;
    readonly noise_multiplier: { readonly min: number; readonly max: number };
    readonly steps_per_peer: { readonly min: number; readonly max: number };
  };
}

export function privacyReport(p: SimPrivacy, learners: readonly LocalLearner[]): PrivacyReport {
  if (!p.dp) return { secure: p.secure, dp: null };
  const ls = learners.filter((l): l is TrainerLearner => 'privacyPhases' in l);
  if (ls.length !== learners.length) throw new CohortError('SIM_LEARNER', 'DP-SGD runs on the engine learner only', 'drop --learner softmax');
  const eps = ls.map((l) => l.epsilonSpent(p.dp!.delta));
  const sig = ls.map((l) => l.dpConfig?.noiseMultiplier ?? 0);
  const steps = ls.map((l) => l.privacyPhases.reduce((a, x) => a + x.steps, 0));
  const r4 = (v: number) => Math.round(v * 1e4) / 1e4;
  return {
    secure: p.secure,
    dp: {
      epsilon_target: p.dp.epsilon, delta: p.dp.delta, clip: p.dp.clip,
      epsilon_spent: r4(Math.max(...eps)), epsilon_spent_mean: r4(eps.reduce((a, b) => a + b, 0) / eps.length),
      noise_multiplier: { min: r4(Math.min(...sig)), max: r4(Math.max(...sig)) },
      steps_per_peer: { min: Math.min(...steps), max: Math.max(...steps) },
    },
  };
}

/** The simulator's own check of a run's privacy against its rule, codec, task and learner (overrides included). */
export function checkSimPrivacy(p: SimPrivacy, algorithm: string, codec: string, taskKind: string, learner: string, topology = 'complete', real = false,
  receivers: 'random' | 'public' = 'random', lossType?: string): void {
  if (p.secure && algorithm !== 'dpsgd' && algorithm !== 'epidemic') {
    throw new CohortError('SIM_PRIVACY', `secure (masked) averaging is built for dpsgd and epidemic, not "${algorithm}"`, 'use --algorithm dpsgd or epidemic with --secure (docs/privacy.md says why the other rules cannot mask)');
  }
  if (p.secure && algorithm === 'epidemic' && receivers !== 'public') {
    throw new CohortError('SIM_PRIVACY', 'secure Epidemic Learning needs public receivers (a receiver must know its senders in advance for their masks to cancel)',
      'set averaging.receivers to "public" in the manifest (who sends to whom becomes predictable: docs/privacy.md)');
  }
  if (p.secure && algorithm === 'dpsgd' && topology === 'time-varying') throw new CohortError('SIM_PRIVACY', 'secure averaging needs a static graph (weights are agreed at setup)', 'use complete, ring or random-regular');
  if (p.secure && real && algorithm !== 'dpsgd') throw new CohortError('SIM_PRIVACY', `secure averaging over real peers (--libp2p) runs D-PSGD, not "${algorithm}"`, 'use --algorithm dpsgd with --libp2p --secure, or drop --libp2p');
  if (p.secure && codec !== 'f32') throw new CohortError('SIM_PRIVACY', `secure averaging needs the exact f32 codec, not "${codec}"`, 'drop --codec');
  if (p.dp && taskKind === 'survival' && lossType !== 'discrete-hazard') {
    throw new CohortError('SIM_PRIVACY', 'DP-SGD is not available for the Cox loss (the partial likelihood is not a sum of per-patient terms)',
      'use loss {"type": "discrete-hazard", "cuts": [...]} for DP survival (docs/privacy.md), or drop --dp-epsilon / privacy.dp');
  }
  if (p.dp && learner !== 'engine') throw new CohortError('SIM_PRIVACY', 'DP-SGD runs on the engine learner only', 'drop --learner softmax');
}
