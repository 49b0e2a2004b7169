/**
 * A hospital's approval policy (the `approval` section of its peer config). A scenario is auto-approved when its model family,
 * its author (peer ID or roster name) or its exact manifest hash is listed; otherwise it waits for
 * `cohort scenario approve|reject ID --reason ...`. Every decision is bound to the manifest hash it was made for.
 */
import { z } from 'zod';
import type { Roster } from '../net/roster.ts';
import type { SignedScenario } from './signing.ts';

export const ApprovalPolicySchema = z.object({
  autoApprove: z.object({
    /** Model types (manifest.model.type), e.g. "mlp". */
    families: z.array(z.string()).default([]),
    /** Author peer IDs or roster names. */
    authors: z.array(z.string()).default([]),
    /** Exact scenario ids (manifest hashes). */
    manifests: z.array(z.string()).default([]),
  }).strict().default({ families: [], authors: [], manifests: [] }),
  /**
   * What this hospital demands of a scenario's privacy (docs/privacy.md): secure (masked) averaging, a maximum sample-level epsilon
   * per scenario, and a lifetime epsilon per dataset over all scenarios (basic composition: the epsilons add up). A scenario that
   * would break any of them is declined with the reason.
   */
  privacy: z.object({
    requireSecure: z.boolean().default(false),
    maxEpsilon: z.number().positive().optional(),
    lifetimeEpsilon: z.number().positive().optional(),
  }).strict().default({ requireSecure: false }),
}).strict();
export type ApprovalPolicy = z.infer<typeof ApprovalPolicySchema>;

export type PolicyDecision = { readonly auto: true; readonly rule: string } | { readonly auto: false };

export function modelFamily(manifest: Record<string, unknown>): string | undefined {
  const model = manifest.model as { type?: unknown } | undefined;
  return typeof model?.type === 'string' ? model.type : undefined;
}

/** The privacy block of a manifest as the policy reads it (raw JSON: a peer checks before anything else parses it). */
function privacyOf(manifest: Record<string, unknown>): { secure: boolean; epsilon?: number } {
  const p = manifest.privacy as { secure?: unknown; dp?: { epsilon?: unknown } } | undefined;
  const eps = p?.dp?.epsilon;
  return { secure: p?.secure === true, ...(typeof eps === 'number' ? { epsilon: eps } : {}) };
}

/**
 * Why this peer's privacy policy declines the scenario, or null. `spent`: epsilon already spent on the dataset the scenario would
 * use (the lifetime budget's ledger, src/privacy/budget.ts).
 */
export function privacyDecline(policy: ApprovalPolicy, manifest: Record<string, unknown>, spent = 0): string | null {
  const want = policy.privacy;
  const p = privacyOf(manifest);
  if (want.requireSecure && !p.secure) return 'this peer requires secure averaging (privacy.secure: true); the scenario sends plain models';
  if (want.maxEpsilon !== undefined) {
    if (p.epsilon === undefined) return `this peer requires differential privacy with epsilon <= ${want.maxEpsilon}; the scenario has no privacy.dp`;
    if (p.epsilon > want.maxEpsilon) return `the scenario asks for epsilon ${p.epsilon}, above this peer's maximum of ${want.maxEpsilon} per scenario`;
  }
  if (want.lifetimeEpsilon !== undefined) {
    if (p.epsilon === undefined) return `this peer has a lifetime privacy budget (epsilon ${want.lifetimeEpsilon}); a scenario without privacy.dp would spend it without bound`;
    if (spent + p.epsilon > want.lifetimeEpsilon + 1e-12) {
      return `the scenario's epsilon ${p.epsilon} would exceed this dataset's lifetime budget: ${spent} spent of ${want.lifetimeEpsilon}`;
    }
  }
  return null;
}

export function decide(policy: ApprovalPolicy, s: SignedScenario, roster: Roster): PolicyDecision {
  const a = policy.autoApprove;
  if (a.manifests.includes(s.id)) return { auto: true, rule: `manifest ${s.id.slice(0, 12)}` };
  const authorName = roster.member(s.author)?.name;
  if (a.authors.includes(s.author) || (authorName !== undefined && a.authors.includes(authorName))) {
    return { auto: true, rule: `author ${authorName ?? s.author}` };
  }
  const family = modelFamily(s.manifest);
  if (family !== undefined && a.families.includes(family)) return { auto: true, rule: `model family ${family}` };
  return { auto: false };
}
