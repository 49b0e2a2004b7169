/**
 * The daemon's gossip vocabulary on the consortium's announce topic, and the rule that keeps a peer from writing for others.
 *   scenario-announce  a SignedScenario (verified on receipt: content hash, author signature, author is a researcher)
 *   scenario-view      a lifecycle delta (src/scenario/lifecycle.ts) from its sender
 * Gossipsub runs with StrictSign, so `from` is the authenticated originator; sanitiseDelta() keeps only what that sender may say
 * (src/scenario/participants.ts states the rule) and names what it refused.
 */
import { z } from 'zod';
import { registerGossipType } from '../net/pubsub.ts';
import { STATES, emptyView, type ScenarioView } from '../scenario/lifecycle.ts';
import { SignedScenarioSchema, type SignedScenario } from '../scenario/signing.ts';
import { redact } from '../util/redact.ts';
import { SignedSuspicionSchema } from '../scenario/suspicion.ts';

const AnswerSchema = z.object({ hash: z.string(), reason: z.string().max(2000).optional(), at: z.string(), sig: z.string().max(200).optional() }).strict();
const ScoreSchema = z.object({ value: z.number(), lo: z.number(), hi: z.number(), method: z.enum(['wilson', 'bootstrap']) }).strict();
const ScoresSchema = z.record(z.string().max(64), ScoreSchema).refine((r) => Object.keys(r).length <= 32, 'at most 32 scores');
const ProgressSchema = z.object({
  round: z.number().int().nonnegative(), seq: z.number().int().nonnegative(), loss: z.number().optional(), metric: z.number().optional(),
  metricName: z.string().optional(), localOnly: z.number().optional(), bytesSent: z.number().optional(), done: z.boolean().optional(),
  failed: z.object({ code: z.string().max(64), message: z.string().max(300) }).strict().optional(),
  heldOut: z.number().int().nonnegative().optional(), lastTrainedRound: z.number().int().min(-1).optional(),
  roundsTrained: z.number().int().nonnegative().optional(),
  suspicion: SignedSuspicionSchema.optional(),
  standardiser: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  epsilon: z.number().nonnegative().optional(),
  secure: z.object(Object.fromEntries(['maskedSent', 'recovered', 'roundsWithRecovery', 'roundsNotMixed', 'sharesReleased', 'sharesRefused', 'maskedRefused', 'refusedSetup']
    .map((k) => [k, z.number().int().nonnegative()]))).extend(Object.fromEntries(['keyBurnt', 'burnNotices', 'burnNoticesSent', 'burnRefused']   // burn notices (docs/privacy.md)
    .map((k) => [k, z.number().int().nonnegative().optional()]))).strict().optional(),
  scores: ScoresSchema.optional(), localOnlyScores: ScoresSchema.optional(),
}).strict();
const RunSchema = z.object({
  startAt: z.number(), participants: z.array(z.string()).max(10_000),
  approvals: z.record(z.string(), AnswerSchema).optional(),
  admitted: z.record(z.string(), z.object({ fromRound: z.number().int().nonnegative(), approval: AnswerSchema }).strict()).optional(),
}).strict();
export const ScenarioViewSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{64}$/),
  state: z.enum(STATES),
  approvals: z.record(z.string(), AnswerSchema),
  rejections: z.record(z.string(), AnswerSchema),
  declines: z.record(z.string(), AnswerSchema),
  progress: z.record(z.string(), ProgressSchema),
  reason: z.string().max(2000).optional(),
  run: RunSchema.optional(),
  stopAt: z.number().int().positive().optional(),
}).strict();

declare module '../net/pubsub.ts' {
  interface GossipTypes {
    'scenario-announce': SignedScenario;
    'scenario-view': ScenarioView;
  }
}

let registered = false;
export function registerDaemonGossip(): void {
  if (registered) return;
  registerGossipType('scenario-announce', SignedScenarioSchema);
  registerGossipType('scenario-view', ScenarioViewSchema);
  registered = true;
}

/** Why a gossiped claim about a scenario was refused (counted per sender, audited in aggregate). */
export type ClaimRefusal = 'not-participant' | 'not-launcher' | 'speaks-for-other' | 'bad-signature' | 'bad-run-plan';

/**
 * What `from` may say about a scenario, and what it tried to say but may not:
 *   - its own answers (approvals must be signed: checked by the caller) and, if it is a participant, its own progress;
 *   - the launcher alone moves the state (approved, running with the run plan, cancelled, failed by its deadline, finished),
 *     admits late approvers and sets the stopping round.
 * Anything else (another peer's progress or answer, a state change by a non-launcher, progress from a non-participant) is dropped
 * and named in `refused`. `participants` is the participant set this peer believes (the verified run plan).
 */
export function sanitiseDelta(d: ScenarioView, from: string, author: string, participants: readonly string[]): { delta: ScenarioView; refused: ClaimRefusal[] } {
  const refused = new Set<ClaimRefusal>();
  const own = <T>(r: Readonly<Record<string, T>>): Record<string, T> => {
    if (Object.keys(r).some((p) => p !== from)) refused.add('speaks-for-other');
    return r[from] ? { [from]: r[from] } : {};
  };
  let progress = own(d.progress);
  if (Object.keys(progress).length && !participants.includes(from)) {
    refused.add('not-participant');
    progress = {};
  }
  let out: ScenarioView = { ...emptyView(d.id), approvals: own(d.approvals), rejections: own(d.rejections), declines: own(d.declines), progress };
  if (from === author) {
    out = { ...out, state: d.state, ...(d.run ? { run: d.run } : {}), ...(d.stopAt !== undefined ? { stopAt: d.stopAt } : {}),
      ...(d.reason && (d.state === 'cancelled' || d.state === 'failed') ? { reason: d.reason } : {}) };
  } else if (d.state !== 'announced' || d.run || d.stopAt !== undefined) {
    refused.add('not-launcher');
  }
  return { delta: out, refused: [...refused] };
}

/** This peer's own contributions to a view, for anti-entropy: its answers and progress; the launcher adds state and plan. */
export function ownContribution(view: ScenarioView, self: string, author: string): ScenarioView {
  const own = <T>(r: Readonly<Record<string, T>>): Record<string, T> => (r[self] ? { [self]: r[self] } : {});
  const out: ScenarioView = { ...emptyView(view.id), approvals: own(view.approvals), rejections: own(view.rejections), declines: own(view.declines), progress: own(view.progress) };
  if (self !== author) return out;
  return { ...out, state: view.state, ...(view.run ? { run: view.run } : {}), ...(view.stopAt !== undefined ? { stopAt: view.stopAt } : {}),
    ...(view.reason && (view.state === 'cancelled' || view.state === 'failed') ? { reason: view.reason } : {}) };
}

/** What leaves the peer in a scenario view: every free-text reason redacted (no paths, file or host names: src/util/redact.ts). */
export function redactView(v: ScenarioView): ScenarioView {
  const answers = (r: ScenarioView['approvals']) => Object.fromEntries(Object.entries(r).map(([p, a]) => [p, a.reason === undefined ? a : { ...a, reason: redact(a.reason) }]));
  const progress = Object.fromEntries(Object.entries(v.progress).map(([p, s]) => [p, s.failed ? { ...s, failed: { code: s.failed.code, message: redact(s.failed.message) } } : s]));
  return { ...v, rejections: answers(v.rejections), declines: answers(v.declines), progress, ...(v.reason === undefined ? {} : { reason: redact(v.reason) }) };
}
