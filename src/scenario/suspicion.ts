/**
 * Accountability without a server (issue 11): a peer that mixes robustly scores its neighbours (averaging/robust.ts NeighbourScores:
 * how often and how far their models were clipped or trimmed) and can publish a *signed suspicion report* naming the neighbours its
 * scores flag. A report is evidence for the roster admins, never a verdict: evicting a member stays their decision (threshold-signed
 * roster). Anyone can check who wrote a report (the reporter's Ed25519 signature over the canonical body, domain "suspicion"), and a
 * report that names its own author, or is signed by anyone but the reporter, is refused.
 *
 *   suspicionReport(scenario, round, aggregator, scores, reporter) -> SuspicionReport | null   (null: nobody flagged)
 *   signSuspicion(report, identity) -> SignedSuspicion      verifySuspicion(signed) -> boolean
 *   SignedSuspicionSchema (zod, for the gossip body)         suspicionAudit(signed, direction) -> the audit entry
 */
import { z } from 'zod';
import type { Identity } from '../net/identity.ts';
import { DEFAULT_SUSPICION, type AggregatorName, type NeighbourScores, type SuspicionRule } from '../averaging/robust.ts';
import { signEvent, verifyEvent } from './signing.ts';

export const SuspectSchema = z.object({
  peer: z.string().min(1).max(128),
  /** Models of this neighbour that went through a robust mix, and how many of them were clipped / mostly trimmed. */
  observed: z.number().int().nonnegative(),
  outliers: z.number().int().nonnegative(),
  /** Mean distance / radius (clipping) or mean share of coordinates trimmed, per observation. */
  severity: z.number().nonnegative(),
}).strict();

export const SuspicionReportSchema = z.object({
  type: z.literal('suspicion'),
  scenario: z.string().min(1).max(128),
  reporter: z.string().min(1).max(128),
  round: z.number().int().nonnegative(),
  aggregator: z.enum(['clipped', 'trimmed-mean', 'median']),
  suspects: z.array(SuspectSchema).min(1).max(64),
}).strict();

export const SignedSuspicionSchema = z.object({ report: SuspicionReportSchema, sig: z.string().min(1).max(512) }).strict();

export type SuspicionReport = z.infer<typeof SuspicionReportSchema>;
export type SignedSuspicion = z.infer<typeof SignedSuspicionSchema>;

/** The report a peer would publish after `round`, or null when its scores flag nobody (or it does not mix robustly). */
export function suspicionReport(scenario: string, round: number, aggregator: AggregatorName, scores: NeighbourScores, reporter: string,
  rule: SuspicionRule = DEFAULT_SUSPICION): SuspicionReport | null {
  if (aggregator === 'mean') return null;
  const suspects = scores.suspects(aggregator, rule).filter((s) => s.peer !== reporter)
    .map((s) => ({ peer: s.peer, observed: s.observed, outliers: s.outliers, severity: Math.round((s.severity / s.observed) * 1000) / 1000 }))
    .sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0))
    .slice(0, 64);
  if (!suspects.length) return null;
  return { type: 'suspicion', scenario, reporter, round, aggregator, suspects };
}

export async function signSuspicion(report: SuspicionReport, identity: Identity): Promise<SignedSuspicion> {
  if (report.reporter !== identity.peerId.toString()) throw new Error('a suspicion report is signed by its reporter');
  return { report, sig: await signEvent(report as unknown as Record<string, unknown>, identity) };
}

/** True when the body is well formed, signed by its reporter, and does not name the reporter itself. */
export async function verifySuspicion(input: unknown): Promise<boolean> {
  const p = SignedSuspicionSchema.safeParse(input);
  if (!p.success) return false;
  const { report, sig } = p.data;
  if (report.suspects.some((s) => s.peer === report.reporter)) return false;
  return verifyEvent(report as unknown as Record<string, unknown>, report.reporter, sig);
}

/** The audit-log entry of a report this peer sent (to `gossip:<topic>`) or received (from its reporter). */
export function suspicionAudit(s: SignedSuspicion, direction: { sent: string } | { received: true }): { kind: 'suspicion'; to: string; what: string; scenario: string; detail: string } {
  const names = s.report.suspects.map((x) => `${x.peer} (${x.outliers}/${x.observed} ${s.report.aggregator === 'clipped' ? 'clipped' : 'trimmed'}, severity ${x.severity})`).join(', ');
  return {
    kind: 'suspicion',
    to: 'sent' in direction ? direction.sent : 'local',
    what: `suspicion report by ${s.report.reporter} after round ${s.report.round}: ${names}`,
    scenario: s.report.scenario,
    detail: JSON.stringify(s),
  };
}

/** One report about a member, as the roster view shows it: who reported, in which scenario, after which round, with what score. */
export interface SuspicionAbout {
  readonly by: string;
  readonly reporter: string;
  readonly scenario: string;
  readonly scenarioName: string;
  readonly round: number;
  readonly aggregator: SuspicionReport['aggregator'];
  readonly observed: number;
  readonly outliers: number;
  readonly severity: number;
}

/**
 * The latest reports each participant carries in a scenario's progress (verified by the coordinator on receipt), regrouped by the
 * member they name: peer ID -> reports about it, newest round first. `nameOf` turns a peer ID into its roster name.
 */
export function suspicionsByMember(scenarios: readonly { id: string; name: string; progress: Readonly<Record<string, { suspicion?: SignedSuspicion }>> }[],
  nameOf: (peer: string) => string): Map<string, SuspicionAbout[]> {
  const out = new Map<string, SuspicionAbout[]>();
  for (const sc of scenarios) {
    for (const p of Object.values(sc.progress)) {
      const r = p.suspicion?.report;
      if (!r) continue;
      for (const s of r.suspects) {
        const list = out.get(s.peer) ?? [];
        list.push({ by: nameOf(r.reporter), reporter: r.reporter, scenario: sc.id, scenarioName: sc.name, round: r.round, aggregator: r.aggregator,
          observed: s.observed, outliers: s.outliers, severity: s.severity });
        out.set(s.peer, list);
      }
    }
  }
  for (const list of out.values()) list.sort((a, b) => b.round - a.round || (a.by < b.by ? -1 : a.by > b.by ? 1 : 0));
  return out;
}
