/**
 * Scenario lifecycle as a state-based CRDT, so that every peer converges on the same view whatever the order (or repetition)
 * in which it hears gossip:
 *   - state only moves forward along a total order: announced < approved < running < finished < failed < cancelled
 *     (merge = max; the terminal states are ordered too, so two peers that heard different endings still agree);
 *   - approvals, rejections and declines are grow-only sets keyed by peer, each bound to the manifest hash it answers;
 *   - per-site progress is a last-writer-wins register per peer, ordered by (round, seq).
 * merge() is commutative, associative and idempotent (unit-tested under shuffled message orders).
 */
import type { ScoreInterval } from '../util/stats.ts';
import type { SignedSuspicion } from './suspicion.ts';

export const STATES = ['announced', 'approved', 'running', 'finished', 'failed', 'cancelled'] as const;
export type ScenarioState = (typeof STATES)[number];
export const TERMINAL: ReadonlySet<ScenarioState> = new Set(['finished', 'failed', 'cancelled']);

/**
 * A peer's answer to a scenario, bound to the manifest hash. Approvals carry the approver's Ed25519 signature over
 * (scenario, decision, hash, at) — see src/scenario/participants.ts — so that a run plan can prove who approved.
 */
export interface Answer { readonly hash: string; readonly reason?: string; readonly at: string; readonly sig?: string }

/** A participant's own signed failure: a code and a redacted message (no paths, file or host names: src/util/redact.ts). */
export interface SiteFailure { readonly code: string; readonly message: string }

export interface SecureProgress {
  readonly maskedSent: number; readonly recovered: number; readonly roundsWithRecovery: number; readonly roundsNotMixed: number;
  readonly sharesReleased: number;
  /** Released shares refused (tampered, replayed, unsolicited) and masked models refused (not a sender, twice, late). */
  readonly sharesRefused: number; readonly maskedRefused: number;
  /** Setup messages refused: forged key announcements and tampered or replayed dealt shares. */
  readonly refusedSetup: number;
  /**
   * Burn notices (docs/privacy.md): this peer's keys burnt (a holder released a share of it: it was late at a receiver), notices
   * accepted, sent (one per share released or used in a rebuild) and refused (from a non-holder or naming another dealer).
   */
  readonly keyBurnt?: number; readonly burnNotices?: number; readonly burnNoticesSent?: number; readonly burnRefused?: number;
}

export interface SiteProgress {
  readonly round: number;
  /** Tie-break within a round (the site's own counter). */
  readonly seq: number;
  readonly loss?: number;
  readonly metric?: number;
  readonly metricName?: string;
  readonly localOnly?: number;
  readonly bytesSent?: number;
  readonly done?: boolean;
  /** This participant's run failed (its own claim: it stops counting towards the finish; the others go on). */
  readonly failed?: SiteFailure;
  /** Held-out samples the metric was measured on (so that a reader can judge a difference). */
  readonly heldOut?: number;
  /** Back after the end: the last round this peer trained in (it took the final model from a participant). */
  readonly lastTrainedRound?: number;
  /** Rounds in which this participant's local training really ran (a late or restarted worker takes part in fewer). */
  readonly roundsTrained?: number;
  /** Robust aggregation: this participant's latest signed suspicion report on its neighbours (scenario/suspicion.ts). */
  readonly suspicion?: SignedSuspicion;
  /** sha256 of the standardiser this participant's inputs were scaled with (src/data/standardiser-stats.ts): one value across
   *  the participants when the scenario standardises consortium-wide. */
  readonly standardiser?: string;
  /** DP-SGD: the epsilon this participant spent on its own patients so far (its accountant, docs/privacy.md). */
  readonly epsilon?: number;
  /** Secure averaging: this participant's counters (masked models sent, dropped senders rebuilt from shares, refusals). */
  readonly secure?: SecureProgress;
  /** The final model's metrics on the held-out data with 95% intervals (engine/evaluate.ts: computeIntervals), computed at the site. */
  readonly scores?: Readonly<Record<string, ScoreInterval>>;
  /** The local-only baseline's, likewise. */
  readonly localOnlyScores?: Readonly<Record<string, ScoreInterval>>;
}

export interface ScenarioView {
  readonly id: string;
  readonly state: ScenarioState;
  readonly approvals: Readonly<Record<string, Answer>>;
  readonly rejections: Readonly<Record<string, Answer>>;
  readonly declines: Readonly<Record<string, Answer>>;
  readonly progress: Readonly<Record<string, SiteProgress>>;
  /** Why it ended (failed / cancelled), if known; the lexicographically greatest reason wins so that merge stays commutative. */
  readonly reason?: string;
  /** Set once by the launcher when enough peers approved: the agreed round clock and who trains. */
  readonly run?: RunPlan;
  /** Set by the launcher when the manifest's stopping rule fired: participants run rounds 0 .. stopAt-1 (merge: the earliest). */
  readonly stopAt?: number;
}

export interface RunPlan {
  /** Epoch ms at which round 0 starts on every participant (rounds follow at startAt + r * roundMs). */
  readonly startAt: number;
  readonly participants: readonly string[];
  /** Each participant's signed approval of this manifest hash: any peer checks the participant set without trusting the launcher. */
  readonly approvals?: Readonly<Record<string, Answer>>;
  /** Late approvers the launcher admitted after the start (grow-only): they take part from `fromRound` on. */
  readonly admitted?: Readonly<Record<string, Admission>>;
}

export interface Admission { readonly fromRound: number; readonly approval: Answer }

function mergeAdmitted(a: RunPlan['admitted'], b: RunPlan['admitted']): Record<string, Admission> {
  const out: Record<string, Admission> = { ...a };
  for (const [peer, adm] of Object.entries(b ?? {})) {
    const mine = out[peer];
    if (!mine || adm.fromRound < mine.fromRound || (adm.fromRound === mine.fromRound && JSON.stringify(adm) < JSON.stringify(mine))) out[peer] = adm;
  }
  return out;
}

/**
 * Deterministic choice between two plans (there should be only one writer; this keeps merge commutative anyway); admissions
 * are a grow-only map merged on top of whichever base plan wins.
 */
function pickRun(a: RunPlan | undefined, b: RunPlan | undefined): RunPlan | undefined {
  if (!a || !b) return a ?? b;
  const { admitted: aa, ...baseA } = a;
  const { admitted: ab, ...baseB } = b;
  const base = a.startAt !== b.startAt ? (a.startAt < b.startAt ? baseA : baseB) : JSON.stringify(baseA) <= JSON.stringify(baseB) ? baseA : baseB;
  const admitted = mergeAdmitted(aa, ab);
  return Object.keys(admitted).length ? { ...base, admitted } : base;
}

export function emptyView(id: string): ScenarioView {
  return { id, state: 'announced', approvals: {}, rejections: {}, declines: {}, progress: {} };
}

export const rank = (s: ScenarioState): number => STATES.indexOf(s);
export const maxState = (a: ScenarioState, b: ScenarioState): ScenarioState => (rank(a) >= rank(b) ? a : b);

function mergeAnswers(a: Readonly<Record<string, Answer>>, b: Readonly<Record<string, Answer>>): Record<string, Answer> {
  const out: Record<string, Answer> = { ...a };
  for (const [peer, ans] of Object.entries(b)) {
    const mine = out[peer];
    // a peer answers once per hash; should two copies differ, keep a deterministic one (earliest time, then hash)
    if (!mine || ans.at < mine.at || (ans.at === mine.at && ans.hash < mine.hash)) out[peer] = ans;
  }
  return out;
}

const progressKey = (p: SiteProgress): [number, number] => [p.round, p.seq];

function laterProgress(a: SiteProgress, b: SiteProgress): SiteProgress {
  const [ra, sa] = progressKey(a);
  const [rb, sb] = progressKey(b);
  if (rb !== ra) return rb > ra ? b : a;
  if (sb !== sa) return sb > sa ? b : a;
  return JSON.stringify(b) > JSON.stringify(a) ? b : a;
}

export function merge(a: ScenarioView, b: ScenarioView): ScenarioView {
  const progress: Record<string, SiteProgress> = { ...a.progress };
  for (const [peer, p] of Object.entries(b.progress)) progress[peer] = progress[peer] ? laterProgress(progress[peer], p) : p;
  const reason = a.reason === undefined ? b.reason : b.reason === undefined ? a.reason : a.reason >= b.reason ? a.reason : b.reason;
  const out: ScenarioView = {
    id: a.id,
    state: maxState(a.state, b.state),
    approvals: mergeAnswers(a.approvals, b.approvals),
    rejections: mergeAnswers(a.rejections, b.rejections),
    declines: mergeAnswers(a.declines, b.declines),
    progress,
  };
  const run = pickRun(a.run, b.run);
  const stopAt = a.stopAt === undefined ? b.stopAt : b.stopAt === undefined ? a.stopAt : Math.min(a.stopAt, b.stopAt);
  return { ...out, ...(reason === undefined ? {} : { reason }), ...(run === undefined ? {} : { run }), ...(stopAt === undefined ? {} : { stopAt }) };
}

/** Approvals that answer this exact manifest hash (an approval of another version does not count). */
export function approvalsFor(view: ScenarioView, hash: string): string[] {
  return Object.entries(view.approvals).filter(([, a]) => a.hash === hash).map(([p]) => p).sort();
}

/** One-step deltas, the shape of gossip: each is a tiny view merged into the local one. */
export const delta = {
  state: (id: string, state: ScenarioState, reason?: string): ScenarioView => ({ ...emptyView(id), state, ...(reason ? { reason } : {}) }),
  run: (id: string, run: RunPlan): ScenarioView => ({ ...emptyView(id), state: 'running', run }),
  admit: (id: string, run: RunPlan, peer: string, admission: Admission): ScenarioView =>
    ({ ...emptyView(id), state: 'running', run: { ...run, admitted: { ...run.admitted, [peer]: admission } } }),
  stopAt: (id: string, stopAt: number): ScenarioView => ({ ...emptyView(id), stopAt }),
  approve: (id: string, peer: string, ans: Answer): ScenarioView => ({ ...emptyView(id), approvals: { [peer]: ans } }),
  reject: (id: string, peer: string, ans: Answer): ScenarioView => ({ ...emptyView(id), rejections: { [peer]: ans } }),
  decline: (id: string, peer: string, ans: Answer): ScenarioView => ({ ...emptyView(id), declines: { [peer]: ans } }),
  progress: (id: string, peer: string, p: SiteProgress): ScenarioView => ({ ...emptyView(id), progress: { [peer]: p } }),
};
