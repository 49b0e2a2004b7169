/**
 * DP-SGD across a restart (docs/privacy.md "Restart and late join"): a peer whose daemon restarts during a DP scenario resumes
 * from its last checkpoint with its accountant continued, never spending beyond the scenario's epsilon.
 *
 * Two records in the peer's LevelDB (the store's `scenarios` sublevel):
 *   - the accounting state (phases of (q, sigma, steps), epsilon spent) inside each round's checkpoint state (saveRound writes
 *     state and checkpoint in one synced batch), so the restored model and its accounting always go together;
 *   - a claim, written (synced) before every training call: the phases so far plus the steps this call may take. A model
 *     trained after the last checkpoint may have reached a neighbour before the crash; its steps are in the claim though not in
 *     the checkpoint, so the resumed accountant starts from whichever of the two counts more steps (never fewer than released).
 * A resumed worker gets those phases as its prior (worker op `dpPrior`) and caps every later round at the steps that keep the
 * composed epsilon (prior + new phases, RDP accountant) within the target: when the claim counted steps that never ran, the
 * run stops training early (it keeps averaging) and says so.
 */
import type { Store } from '../store/db.ts';
import { CohortError } from '../util/errors.ts';
import type { RoundState } from '../store/checkpoints.ts';
import { epsilonSpent, type DpPhase } from './accountant.ts';
import type { DpPlan } from './dp-plan.ts';

/** What a checkpoint and a claim record of the accountant. */
export interface DpAccounting {
  readonly phases: readonly DpPhase[];
  readonly steps: number;
  /** Epsilon of `phases` at the scenario's delta (rounded to 1e-6 for reading; recomputed from the phases on resume). */
  readonly epsilon: number;
}

export interface ResumedAccounting extends DpAccounting {
  /** Which record the count came from: the checkpoint, the claim of a training call after it, or nothing (no step was taken). */
  readonly source: 'checkpoint' | 'claim' | 'none';
}

const claimKey = (scenario: string): string => `dp-claim/${scenario}`;

export const totalSteps = (phases: readonly DpPhase[]): number => phases.reduce((a, p) => a + p.steps, 0);

/** The accounting of `phases` at `delta`. */
export function accountingOf(phases: readonly DpPhase[], delta: number): DpAccounting {
  const epsilon = totalSteps(phases) === 0 ? 0 : epsilonSpent(phases, delta).epsilon;
  return { phases: phases.map((p) => ({ ...p })), steps: totalSteps(phases), epsilon: Math.round(epsilon * 1e6) / 1e6 };
}

/** `phases` followed by k more steps of the plan's (q, sigma), consecutive equal phases merged. */
export function withSteps(phases: readonly DpPhase[], plan: Pick<DpPlan, 'q' | 'noiseMultiplier'>, k: number): DpPhase[] {
  const out = phases.map((p) => ({ ...p }));
  if (k <= 0) return out;
  const last = out[out.length - 1];
  if (last && last.q === plan.q && last.sigma === plan.noiseMultiplier) last.steps += k;
  else out.push({ q: plan.q, sigma: plan.noiseMultiplier, steps: k });
  return out;
}

/**
 * Steps a round may take after `done` (prior + this worker's phases): at most `wanted`, at most the plan's step cap, and no
 * more than keep epsilon(done + k steps) <= `epsilon` (epsilon grows with k: bisection). 0 when the budget is used up.
 */
export function stepsWithinBudget(plan: Pick<DpPlan, 'q' | 'noiseMultiplier' | 'maxSteps'>, done: readonly DpPhase[], wanted: number, dp: { epsilon: number; delta: number }): number {
  let hi = Math.max(0, Math.min(wanted, plan.maxSteps - totalSteps(done)));
  const fits = (k: number): boolean => k === 0 || epsilonSpent(withSteps(done, plan, k), dp.delta).epsilon <= dp.epsilon;
  if (fits(hi)) return hi;
  let lo = 0; // fits(lo) holds, fits(hi) does not
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid; else hi = mid;
  }
  return lo;
}

/** Before a training call: the phases so far plus the `planned` steps of this call, synced (a kill -9 or power cut keeps it). */
export async function claimSteps(store: Store, scenario: string, done: readonly DpPhase[], plan: Pick<DpPlan, 'q' | 'noiseMultiplier'>, planned: number, delta: number): Promise<void> {
  const claim = accountingOf(withSteps(done, plan, planned), delta);
  await store.db.batch().put(claimKey(scenario), claim, { sublevel: store.scenarios }).write({ sync: true });
}

/** The accountant to continue with after a restart: the checkpoint's record or the later claim, whichever counts more steps. */
export async function resumeAccounting(store: Store, scenario: string, checkpoint: RoundState | undefined, delta: number): Promise<ResumedAccounting> {
  const fromCheckpoint = parse(checkpoint?.dp);
  const fromClaim = parse(await store.scenarios.get(claimKey(scenario)));
  const pick = (fromClaim?.steps ?? 0) > (fromCheckpoint?.steps ?? 0) ? { rec: fromClaim!, source: 'claim' as const }
    : fromCheckpoint && fromCheckpoint.steps > 0 ? { rec: fromCheckpoint, source: 'checkpoint' as const } : undefined;
  if (!pick) return { phases: [], steps: 0, epsilon: 0, source: 'none' };
  return { ...accountingOf(pick.rec.phases, delta), source: pick.source };
}

/**
 * A stored record, checked: absent is undefined; a damaged one is refused (DP_STATE_CORRUPT) rather than read as fewer steps,
 * so the run is not resumed and the ledger keeps the whole reservation.
 */
function parse(v: unknown): DpAccounting | undefined {
  if (v === undefined) return undefined;
  const r = v as Partial<DpAccounting> | null;
  const phases = Array.isArray(r?.phases) ? r.phases.filter((p): p is DpPhase => typeof p?.q === 'number' && typeof p.sigma === 'number'
    && Number.isInteger(p.steps) && p.steps >= 0 && p.q >= 0 && p.q <= 1 && p.sigma >= 0) : [];
  if (!Array.isArray(r?.phases) || phases.length !== r.phases.length) {
    throw new CohortError('DP_STATE_CORRUPT', 'this peer\'s stored DP accounting for the scenario is damaged: it is not resumed (the privacy ledger keeps the whole reservation)',
      'the store was altered outside cohort; restore it from backup');
  }
  return { phases, steps: totalSteps(phases), epsilon: typeof r.epsilon === 'number' ? r.epsilon : 0 };
}
