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
}).strict();
export type ApprovalPolicy = z.infer<typeof ApprovalPolicySchema>;

export type PolicyDecision = { readonly auto: true; readonly rule: string } | { readonly auto: false };

export function modelFamily(manifest: Record<string, unknown>): string | undefined {
  const model = manifest.model as { type?: unknown } | undefined;
  return typeof model?.type === 'string' ? model.type : undefined;
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
