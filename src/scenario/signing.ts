/**
 * Scenario signing. A scenario is content-addressed: its id is the sha256 (hex) of the manifest's canonical JSON, so any change
 * to the manifest is a different scenario (and needs new approvals). The launching peer signs the id with its Ed25519 key.
 *
 *   signScenario(manifest, identity) -> SignedScenario { id, manifest, author, sig }
 *   verifyScenario(signed, roster) -> { ok: true } | { ok: false, reason }   (hash, signature, author in roster with role researcher)
 *   scenarioId(manifest)
 * The manifest is validated against src/scenario/manifest.ts by the caller; this module only needs it to be JSON.
 */
import { sha256Hex } from '../util/hash.ts';
import { z } from 'zod';
import { peerIdFromString } from '@libp2p/peer-id';
import { canonicalJson } from '../util/canonical.ts';
import type { Roster } from '../net/roster.ts';
import type { Identity } from '../net/identity.ts';

const DOMAIN = 'cohort-scenario-v1\n';

export const SignedScenarioSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{64}$/),
  manifest: z.record(z.string(), z.unknown()),
  author: z.string().min(1),
  sig: z.string().min(1),
  launchedAt: z.string(),
}).strict();
export type SignedScenario = z.infer<typeof SignedScenarioSchema>;

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

export function scenarioId(manifest: unknown): string {
  return sha256Hex(canonicalJson(manifest));
}

const signedBytes = (id: string, author: string, launchedAt: string): Uint8Array =>
  new TextEncoder().encode(`${DOMAIN}${id}\n${author}\n${launchedAt}`);

export async function signScenario(manifest: Record<string, unknown>, identity: Identity, launchedAt = new Date().toISOString()): Promise<SignedScenario> {
  const id = scenarioId(manifest);
  const author = identity.peerId.toString();
  const sig = await identity.privateKey.sign(signedBytes(id, author, launchedAt));
  return { id, manifest, author, sig: Buffer.from(sig).toString('base64'), launchedAt };
}

/** Checks, in order: shape, content hash, signature by the claimed author, author's roster role. */
export async function verifyScenario(input: unknown, roster: Roster): Promise<Verdict> {
  const parsed = SignedScenarioSchema.safeParse(input);
  if (!parsed.success) return { ok: false, reason: `malformed: ${parsed.error.issues[0]?.message ?? ''}` };
  const s = parsed.data;
  if (scenarioId(s.manifest) !== s.id) return { ok: false, reason: 'tampered: the manifest does not hash to its id' };
  let valid = false;
  try {
    const key = peerIdFromString(s.author).publicKey;
    valid = key !== undefined && (await key.verify(signedBytes(s.id, s.author, s.launchedAt), Buffer.from(s.sig, 'base64')));
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, reason: 'bad signature: not signed by its author' };
  if (!roster.has(s.author)) return { ok: false, reason: `author ${s.author} is not in the roster` };
  if (!roster.hasRole(s.author, 'researcher')) return { ok: false, reason: `author ${roster.member(s.author)?.name ?? s.author} is not a researcher` };
  return { ok: true };
}

/** Signs a small lifecycle event (approval, rejection, cancel, state change) so that peers can check who sent it. */
export async function signEvent(body: Record<string, unknown>, identity: Identity): Promise<string> {
  const sig = await identity.privateKey.sign(new TextEncoder().encode(`cohort-event-v1\n${canonicalJson(body)}`));
  return Buffer.from(sig).toString('base64');
}

export async function verifyEvent(body: Record<string, unknown>, signer: string, sig: string): Promise<boolean> {
  try {
    const key = peerIdFromString(signer).publicKey;
    return key !== undefined && (await key.verify(new TextEncoder().encode(`cohort-event-v1\n${canonicalJson(body)}`), Buffer.from(sig, 'base64')));
  } catch {
    return false;
  }
}
