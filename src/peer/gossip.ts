/**
 * The daemon's gossip vocabulary on the consortium's announce topic, and the rule that keeps a peer from writing for others.
 *   scenario-announce  a SignedScenario (verified on receipt: content hash, author signature, author is a researcher)
 *   scenario-view      a lifecycle delta (src/scenario/lifecycle.ts) from its sender
 * Gossipsub runs with StrictSign, so `from` is the authenticated originator; sanitiseDelta() keeps only what that sender may say.
 */
import { z } from 'zod';
import { registerGossipType } from '../net/pubsub.ts';
import { STATES, emptyView, type ScenarioView } from '../scenario/lifecycle.ts';
import { SignedScenarioSchema, type SignedScenario } from '../scenario/signing.ts';

const AnswerSchema = z.object({ hash: z.string(), reason: z.string().max(2000).optional(), at: z.string() }).strict();
const ProgressSchema = z.object({
  round: z.number().int().nonnegative(), seq: z.number().int().nonnegative(), loss: z.number().optional(), metric: z.number().optional(),
  metricName: z.string().optional(), localOnly: z.number().optional(), bytesSent: z.number().optional(), done: z.boolean().optional(),
}).strict();
export const ScenarioViewSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{64}$/),
  state: z.enum(STATES),
  approvals: z.record(z.string(), AnswerSchema),
  rejections: z.record(z.string(), AnswerSchema),
  declines: z.record(z.string(), AnswerSchema),
  progress: z.record(z.string(), ProgressSchema),
  reason: z.string().max(2000).optional(),
  run: z.object({ startAt: z.number(), participants: z.array(z.string()) }).strict().optional(),
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

/**
 * What `from` may contribute: its own answers and progress; the launcher alone may start (run plan) or cancel; a participant
 * (or the launcher) may mark the scenario finished or failed.
 */
export function sanitiseDelta(d: ScenarioView, from: string, author: string, participants: readonly string[]): ScenarioView {
  const own = <T>(r: Readonly<Record<string, T>>): Record<string, T> => (r[from] ? { [from]: r[from] } : {});
  const out: ScenarioView = { ...emptyView(d.id), approvals: own(d.approvals), rejections: own(d.rejections), declines: own(d.declines), progress: own(d.progress) };
  const isAuthor = from === author;
  if (isAuthor && d.stopAt !== undefined) return { ...sanitiseDelta({ ...d, stopAt: undefined }, from, author, participants), stopAt: d.stopAt };
  const mayEnd = isAuthor || participants.includes(from) || (d.run?.participants.includes(from) ?? false);
  if (isAuthor && (d.state === 'approved' || d.state === 'running')) return { ...out, state: d.state, ...(d.run ? { run: d.run } : {}) };
  if (isAuthor && d.state === 'cancelled') return { ...out, state: 'cancelled', ...(d.reason ? { reason: d.reason } : {}) };
  if (mayEnd && (d.state === 'finished' || d.state === 'failed')) return { ...out, state: d.state, ...(d.reason ? { reason: d.reason } : {}) };
  return out;
}
