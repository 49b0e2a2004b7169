/**
 * Consortium roster: who may connect, under which hospital name and roles, signed by a threshold of admins.
 *
 * Document (JSON file / gossip payload): { body: { consortium, version, threshold, members: [{peerId, name, roles}] , issuedAt },
 *                                          signatures: [{ peerId, sig }] }
 * Trust: a peer trusts the roster file it was installed with (the operator's decision). An update is accepted only if it is for the
 * same consortium, has a higher version, and carries signatures from at least `threshold` admins *of the roster currently trusted*
 * (so a removed admin cannot sign itself back in, and an outsider cannot mint a roster).
 * API: Roster (has, roles, member, members, admins, version, consortium), RosterDocSchema, signRoster, verifyRoster,
 *      newRosterBody, RosterStore (current, update(doc) -> result, onChange).
 */
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { z } from 'zod';
import { peerIdFromString } from '@libp2p/peer-id';
import type { PeerId, PrivateKey } from '@libp2p/interface';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import { canonicalJson } from '../util/canonical.ts';

const log = logger('net:roster');

export const ROLES = ['data-provider', 'researcher', 'relay', 'admin'] as const;
export type Role = (typeof ROLES)[number];

const PeerIdString = z.string().refine((s) => {
  try {
    return peerIdFromString(s).type === 'Ed25519';
  } catch {
    return false;
  }
}, 'not an Ed25519 libp2p peer ID');

export const RosterMemberSchema = z.object({
  peerId: PeerIdString,
  name: z.string().min(1).max(200),
  roles: z.array(z.enum(ROLES)).min(1),
  /** Optional known addresses (multiaddrs), a hint for dialling. */
  addrs: z.array(z.string()).optional(),
}).strict();
export type RosterMember = z.infer<typeof RosterMemberSchema>;

export const RosterBodySchema = z.object({
  consortium: z.string().min(1),
  version: z.number().int().nonnegative(),
  threshold: z.number().int().positive(),
  members: z.array(RosterMemberSchema),
  issuedAt: z.string(),
}).strict();
export type RosterBody = z.infer<typeof RosterBodySchema>;

export const RosterSignatureSchema = z.object({ peerId: PeerIdString, sig: z.string().min(1) }).strict();

export const RosterDocSchema = z.object({
  body: RosterBodySchema,
  signatures: z.array(RosterSignatureSchema),
}).strict();
export type RosterDoc = z.infer<typeof RosterDocSchema>;

const DOMAIN = 'cohort-roster-v1\n';

function signedBytes(body: RosterBody): Uint8Array {
  return new TextEncoder().encode(DOMAIN + canonicalJson(body));
}

/** An immutable, verified view of a roster. */
export class Roster {
  readonly doc: RosterDoc;
  private readonly byId: Map<string, RosterMember>;

  constructor(doc: RosterDoc) {
    this.doc = doc;
    this.byId = new Map(doc.body.members.map((m) => [m.peerId, m]));
  }

  get version(): number { return this.doc.body.version; }
  get consortium(): string { return this.doc.body.consortium; }
  get threshold(): number { return this.doc.body.threshold; }
  get members(): readonly RosterMember[] { return this.doc.body.members; }
  get admins(): string[] { return this.members.filter((m) => m.roles.includes('admin')).map((m) => m.peerId); }

  has(peer: PeerId | string): boolean { return this.byId.has(peer.toString()); }
  member(peer: PeerId | string): RosterMember | undefined { return this.byId.get(peer.toString()); }
  roles(peer: PeerId | string): readonly Role[] { return this.byId.get(peer.toString())?.roles ?? []; }
  hasRole(peer: PeerId | string, role: Role): boolean { return this.roles(peer).includes(role); }
}

export function newRosterBody(consortium: string, threshold = 1): RosterBody {
  return { consortium, version: 1, threshold, members: [], issuedAt: new Date().toISOString() };
}

/** Parse a roster document from JSON text or a value; throws CohortError on a malformed one. */
export function parseRosterDoc(input: unknown, where = 'roster'): RosterDoc {
  const r = RosterDocSchema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new CohortError('ROSTER_INVALID', `${where} is malformed at "${i?.path.join('.') ?? ''}": ${i?.message ?? ''}`, 'create rosters with `cohort roster create` and edit them with `cohort roster add|remove`');
  }
  const ids = r.data.body.members.map((m) => m.peerId);
  if (new Set(ids).size !== ids.length) throw new CohortError('ROSTER_INVALID', `${where} lists a peer twice`, 'remove the duplicate with `cohort roster remove`');
  return r.data;
}

/** Adds (or replaces) the signature of `key` over the body. Signing does not change the body. */
export async function signRoster(doc: RosterDoc, key: PrivateKey, signer: PeerId): Promise<RosterDoc> {
  const sig = await key.sign(signedBytes(doc.body));
  const others = doc.signatures.filter((s) => s.peerId !== signer.toString());
  return { body: doc.body, signatures: [...others, { peerId: signer.toString(), sig: Buffer.from(sig).toString('base64') }] };
}

export interface RosterVerdict {
  readonly ok: boolean;
  readonly validSigners: string[];
  readonly needed: number;
  readonly reason?: string;
}

/**
 * Valid signatures from the admins of `authority` (default: the document itself, for a first roster), at least its threshold.
 */
export async function verifyRoster(doc: RosterDoc, authority: Roster = new Roster(doc)): Promise<RosterVerdict> {
  const needed = authority.threshold;
  if (doc.body.threshold > new Roster(doc).admins.length) {
    return { ok: false, validSigners: [], needed, reason: `threshold ${doc.body.threshold} exceeds the ${new Roster(doc).admins.length} admins it lists` };
  }
  const admins = new Set(authority.admins);
  const bytes = signedBytes(doc.body);
  const valid: string[] = [];
  for (const s of doc.signatures) {
    if (!admins.has(s.peerId) || valid.includes(s.peerId)) continue;
    const key = peerIdFromString(s.peerId).publicKey;
    if (key && (await key.verify(bytes, Buffer.from(s.sig, 'base64')))) valid.push(s.peerId);
  }
  if (valid.length < needed) {
    return { ok: false, validSigners: valid, needed, reason: `${valid.length} valid admin signature(s), ${needed} needed` };
  }
  return { ok: true, validSigners: valid, needed };
}

export function readRosterFile(file: string): RosterDoc {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CohortError('ROSTER_READ', `cannot read roster ${file}`, 'get the consortium roster from your admin, or create one with `cohort roster create`', { cause: e });
  }
  try {
    return parseRosterDoc(JSON.parse(text), file);
  } catch (e) {
    if (e instanceof CohortError) throw e;
    throw new CohortError('ROSTER_INVALID', `roster ${file} is not JSON`, 'restore it from your admin', { cause: e });
  }
}

/** Atomic write (rename) so that a crash never leaves half a roster. */
export function writeRosterFile(file: string, doc: RosterDoc): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(doc, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

export type RosterUpdateResult =
  | { readonly accepted: true; readonly removed: string[]; readonly added: string[] }
  | { readonly accepted: false; readonly reason: 'malformed' | 'wrong-consortium' | 'not-newer' | 'signatures'; readonly detail: string };

type RosterListener = (next: Roster, prev: Roster, removed: string[]) => void;

/** The roster a peer currently trusts; accepts newer, validly signed versions only. */
export class RosterStore {
  private roster: Roster;
  private readonly listeners: RosterListener[] = [];
  private readonly file: string | undefined;

  constructor(initial: RosterDoc, file?: string) {
    this.roster = new Roster(initial);
    this.file = file;
  }

  get current(): Roster { return this.roster; }

  onChange(listener: RosterListener): void { this.listeners.push(listener); }

  async update(input: unknown): Promise<RosterUpdateResult> {
    let doc: RosterDoc;
    try {
      doc = parseRosterDoc(input);
    } catch (e) {
      return { accepted: false, reason: 'malformed', detail: (e as Error).message };
    }
    const prev = this.roster;
    if (doc.body.consortium !== prev.consortium) return { accepted: false, reason: 'wrong-consortium', detail: doc.body.consortium };
    if (doc.body.version <= prev.version) return { accepted: false, reason: 'not-newer', detail: `version ${doc.body.version} <= ${prev.version}` };
    const verdict = await verifyRoster(doc, prev);
    if (!verdict.ok) return { accepted: false, reason: 'signatures', detail: verdict.reason ?? '' };
    // a second concurrent update may have won while we verified
    if (this.roster.version >= doc.body.version) return { accepted: false, reason: 'not-newer', detail: 'superseded' };
    const next = new Roster(doc);
    this.roster = next;
    if (this.file) writeRosterFile(this.file, doc);
    const removed = prev.members.filter((m) => !next.has(m.peerId)).map((m) => m.peerId);
    const added = next.members.filter((m) => !prev.has(m.peerId)).map((m) => m.peerId);
    log.info({ version: next.version, removed: removed.length, added: added.length }, 'roster updated');
    for (const l of this.listeners) l(next, prev, removed);
    return { accepted: true, removed, added };
  }
}
