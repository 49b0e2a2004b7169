/**
 * The participant rule: who may receive, send or speak for a scenario's models (docs/daemon.md, "Who takes part").
 *
 *   - A peer takes part only with a signed approval of the exact manifest hash (signAnswer / verifyAnswer).
 *   - The launcher's run plan names the participants and carries their signed approvals; every peer checks the plan
 *     (verifyRunPlan) before it believes it, so a launcher cannot enrol a peer that did not approve.
 *   - A late approver is admitted by the launcher (a signed run-plan amendment, grow-only) from a stated round on; it never joins
 *     by asking another peer.
 *   - The scenario ends by rules every peer evaluates on the same merged view (endOf): finished when every participant is done,
 *     has failed, or has been silent for `dropAfterRounds` rounds (dropped), and at least `minPeers` are done; failed when fewer
 *     than `minPeers` are left after their own failures, or fewer than `minPeers` finished; or the launcher's signed cancel /
 *     deadline. Never on one other peer's word.
 */
import type { Roster } from '../net/roster.ts';
import type { Identity } from '../net/identity.ts';
import type { Answer, ScenarioView } from './lifecycle.ts';
import { signEvent, verifyEvent } from './signing.ts';

export type Decision = 'approve' | 'reject' | 'decline';

const answerBody = (scenario: string, decision: Decision, a: Answer): Record<string, unknown> =>
  ({ type: 'scenario-answer', scenario, decision, hash: a.hash, at: a.at, ...(a.reason === undefined ? {} : { reason: a.reason }) });

/** The answer with its author's signature over (scenario, decision, hash, at, reason). */
export async function signAnswer(scenario: string, decision: Decision, a: Answer, identity: Identity): Promise<Answer> {
  const { sig: _old, ...plain } = a;
  return { ...plain, sig: await signEvent(answerBody(scenario, decision, plain), identity) };
}

export async function verifyAnswer(scenario: string, decision: Decision, peer: string, a: Answer): Promise<boolean> {
  if (a.sig === undefined) return false;
  const { sig, ...plain } = a;
  return verifyEvent(answerBody(scenario, decision, plain), peer, sig);
}

/** Every peer that takes part in the run at some round: the plan's participants and the admitted late approvers. */
export function participantsOf(view: Pick<ScenarioView, 'run'>): string[] {
  if (!view.run) return [];
  return [...new Set([...view.run.participants, ...Object.keys(view.run.admitted ?? {})])].sort();
}

export function isParticipant(view: Pick<ScenarioView, 'run'>, peer: string): boolean {
  return participantsOf(view).includes(peer);
}

/** Who takes part in `round` (sorted, so that every peer draws the same topology). */
export function participantsAt(view: Pick<ScenarioView, 'run'>, round: number): string[] {
  if (!view.run) return [];
  const late = Object.entries(view.run.admitted ?? {}).filter(([, a]) => a.fromRound <= round).map(([p]) => p);
  return [...new Set([...view.run.participants, ...late])].sort();
}

/** The round the wall clock is in for a run that started at `startAt` (negative before round 0). */
export function clockRound(run: { readonly startAt: number }, roundMs: number, now = Date.now()): number {
  return Math.floor((now - run.startAt) / roundMs);
}

/** Rounds a scenario runs: the manifest's maximum, or fewer once the launcher's stopping rule set `stopAt`. */
export function roundsToRun(maxRounds: number, stopAt: number | undefined): number {
  return Math.min(maxRounds, stopAt ?? Number.POSITIVE_INFINITY);
}

export type PlanVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Each participant (and admitted peer) is a roster member whose signed approval of this manifest hash is in the plan. */
export async function verifyRunPlan(scenario: string, run: NonNullable<ScenarioView['run']>, roster: Roster): Promise<PlanVerdict> {
  const check = async (peer: string, a: Answer | undefined): Promise<string | undefined> => {
    if (!roster.has(peer)) return `participant ${peer} is not in the roster`;
    if (!a) return `participant ${roster.member(peer)?.name ?? peer} has no approval in the run plan`;
    if (a.hash !== scenario) return `the approval of ${roster.member(peer)?.name ?? peer} is for another manifest`;
    if (!(await verifyAnswer(scenario, 'approve', peer, a))) return `the approval of ${roster.member(peer)?.name ?? peer} is not signed by it`;
    return undefined;
  };
  for (const p of run.participants) {
    const why = await check(p, run.approvals?.[p]);
    if (why) return { ok: false, reason: why };
  }
  for (const [p, adm] of Object.entries(run.admitted ?? {})) {
    const why = await check(p, adm.approval);
    if (why) return { ok: false, reason: why };
  }
  return { ok: true };
}

export interface Standing {
  readonly participants: readonly string[];
  readonly done: readonly string[];
  readonly failed: readonly string[];
  /** Silent for more than `dropAfterRounds` rounds: no longer waited for. */
  readonly dropped: readonly { readonly peer: string; readonly lastRound: number }[];
  /** Still expected to report. */
  readonly active: readonly string[];
}

export interface EndRule {
  /** The round the wall clock is in now (floor((now - startAt) / roundMs)). */
  readonly clockRound: number;
  readonly dropAfterRounds: number;
  readonly minPeers: number;
  /** Rounds this scenario runs (the manifest's maximum, or the stopping rule's round). */
  readonly rounds: number;
}

export function standing(view: ScenarioView, rule: Pick<EndRule, 'clockRound' | 'dropAfterRounds'>): Standing {
  const participants = participantsOf(view);
  const done: string[] = [];
  const failed: string[] = [];
  const dropped: { peer: string; lastRound: number }[] = [];
  const active: string[] = [];
  for (const p of participants) {
    const prog = view.progress[p];
    if (prog?.done) done.push(p);
    else if (prog?.failed) failed.push(p);
    else {
      // a late admission counts from the round it was admitted for
      const from = view.run?.admitted?.[p]?.fromRound ?? 0;
      const last = prog?.round ?? from - 1;
      if (rule.clockRound > last + rule.dropAfterRounds) dropped.push({ peer: p, lastRound: last });
      else active.push(p);
    }
  }
  return { participants, done, failed, dropped, active };
}

/** How the scenario ends by the rules above, judged on this view; undefined while it goes on. */
export function endOf(view: ScenarioView, rule: EndRule): { state: 'finished' | 'failed'; reason?: string } | undefined {
  if (view.state !== 'running' || !view.run) return undefined;
  const s = standing(view, rule);
  const left = s.participants.length - s.failed.length;
  if (s.failed.length > 0 && left < rule.minPeers) {
    return { state: 'failed', reason: `too few participants left: ${left} of ${s.participants.length} (${s.failed.length} failed), fewer than minPeers ${rule.minPeers}` };
  }
  if (s.active.length > 0 || s.done.length === 0) return undefined;
  // dropped peers are not waited for, but only once the last round is over (a slow peer may still be training)
  if (s.dropped.length > 0 && rule.clockRound < rule.rounds) return undefined;
  // the same count whether a missing peer is known to have failed or only fell silent, so peers that heard of a failure at
  // different times still reach the same end
  if (s.done.length < rule.minPeers) {
    return { state: 'failed', reason: `too few participants finished: ${s.done.length} of ${s.participants.length} (${s.failed.length} failed, ${s.dropped.length} silent), fewer than minPeers ${rule.minPeers}` };
  }
  return { state: 'finished' };
}
