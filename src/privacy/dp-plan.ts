/**
 * One peer's DP-SGD plan, the same in the simulator (src/sim/privacy.ts) and on a real peer (src/peer/worker.ts): the noise
 * multiplier sigma that keeps the planned steps (rounds x local steps per round) of Poisson sampling at q = batchSize / n within
 * the scenario's (epsilon, delta), by the RDP accountant (accountant.ts); and the steps cap a learner must never pass.
 */
import { epsilonSpent, noiseMultiplierFor, type DpPhase } from './accountant.ts';

export interface DpSettings {
  readonly epsilon: number; readonly delta: number; readonly clip: number;
  /**
   * Rounds that train under DP (privacy.dp.trainRounds); the scenario's later rounds only average. Averaging models that were
   * already released under DP is post-processing: it spends nothing, and it spreads each peer's noise over the network
   * (docs/privacy.md, "Small sites"). Absent: every round trains.
   */
  readonly trainRounds?: number;
}
export interface DpPlan { readonly clip: number; readonly noiseMultiplier: number; readonly maxSteps: number; readonly q: number }

/**
 * `n`: this peer's training samples; `stepsPerRound`: local steps of one round; `rounds`: the scenario's maximum rounds (the
 * budget is planned over min(rounds, dp.trainRounds) of them).
 */
export function planDp(dp: DpSettings, n: number, batchSize: number, stepsPerRound: number, rounds: number): DpPlan {
  const trainRounds = Math.min(rounds, dp.trainRounds ?? rounds);
  const maxSteps = Math.max(1, trainRounds * stepsPerRound);
  const q = Math.min(batchSize, n) / n;
  return { clip: dp.clip, noiseMultiplier: noiseMultiplierFor(dp.epsilon, dp.delta, q, maxSteps), maxSteps, q };
}

/** Steps a learner may still take under the plan (0 once the budget's steps are used up). */
export function stepsLeft(plan: Pick<DpPlan, 'maxSteps'>, phases: readonly DpPhase[], wanted: number): number {
  const done = phases.reduce((a, p) => a + p.steps, 0);
  return Math.max(0, Math.min(wanted, plan.maxSteps - done));
}

/** Epsilon spent over the steps actually taken (0 before any). */
export function spentOf(phases: readonly DpPhase[], delta: number): number {
  return phases.length === 0 ? 0 : epsilonSpent([...phases], delta).epsilon;
}
