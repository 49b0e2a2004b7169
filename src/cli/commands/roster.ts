import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { peerIdFromString } from '@libp2p/peer-id';
import { CohortError } from '../../util/errors.ts';
import { loadIdentity } from '../../net/identity.ts';
import { AdminClient } from '../../peer/client.ts';
import { peerDirOf } from './store.ts';
import { suspicionLine, suspicionsAt } from './suspicions.ts';
import {
  newRosterBody, parseRosterDoc, readRosterFile, Roster, ROLES, signRoster, verifyRoster, writeRosterFile, type Role, type RosterDoc,
} from '../../net/roster.ts';

/**
 * `cohort roster create|add|remove|sign|verify|show`: edit and sign the consortium roster file.
 * Editing a signed roster starts the next version (signatures cleared); admins then sign it and it spreads over gossip
 * when a peer publishes it (the daemon does this when the file changes).
 */
export function registerRoster(program: Command): void {
  const roster = program.command('roster').description('create, edit, sign and verify the consortium roster');

  roster.command('create').description('a new, empty roster (version 1)')
    .requiredOption('--file <file>', 'roster file to write')
    .requiredOption('--consortium <id>', 'consortium id')
    .option('--threshold <n>', 'admin signatures required', '1')
    .option('--json', 'print the result as JSON')
    .action((o: { file: string; consortium: string; threshold: string; json?: boolean }) => {
      if (existsSync(o.file)) throw new CohortError('ROSTER_EXISTS', `${o.file} already exists`, 'edit it with `cohort roster add|remove`');
      const body = { ...newRosterBody(o.consortium, positiveInt(o.threshold, '--threshold')) };
      writeRosterFile(o.file, parseRosterDoc({ body, signatures: [] }));
      if (o.json) process.stdout.write(JSON.stringify({ file: o.file, version: 1, threshold: body.threshold, members: 0 }) + '\n');
      else process.stdout.write(`wrote ${o.file} (version 1, threshold ${body.threshold})\n`);
    });

  roster.command('add').description('add or update a member')
    .requiredOption('--file <file>', 'roster file')
    .option('--peer-id <peerId>', 'member peer ID (from `cohort init`)')
    .addOption(peerIdAlias())
    .requiredOption('--name <name>', 'hospital / site name')
    .option('--roles <roles>', `comma-separated: ${ROLES.join(', ')}`, 'data-provider')
    .option('--threshold <n>', 'also set the admin signatures required')
    .option('--addrs <multiaddr...>', 'known addresses of the member (peers dial them to connect)')
    .option('--json', 'print the result as JSON')
    .action((o: MemberOpts & { name: string; roles: string; threshold?: string; addrs?: string[] }) => {
      const doc = readRosterFile(o.file);
      const peer = memberId(o);
      checkPeerId(peer);
      const member = { peerId: peer, name: o.name, roles: parseRoles(o.roles), ...(o.addrs?.length ? { addrs: o.addrs } : {}) };
      const members = [...doc.body.members.filter((m) => m.peerId !== peer), member];
      const threshold = o.threshold ? positiveInt(o.threshold, '--threshold') : doc.body.threshold;
      save(o.file, nextDraft(doc, { members, threshold }), o.json);
    });

  roster.command('remove').description('remove a member (it is disconnected once the signed roster spreads)')
    .requiredOption('--file <file>', 'roster file')
    .option('--peer-id <peerId>', 'member peer ID')
    .addOption(peerIdAlias())
    .option('--json', 'print the result as JSON')
    .action((o: MemberOpts) => {
      const doc = readRosterFile(o.file);
      const peer = memberId(o);
      if (!doc.body.members.some((m) => m.peerId === peer)) throw new CohortError('ROSTER_NO_MEMBER', `${peer} is not on the roster`, 'see `cohort roster show`');
      save(o.file, nextDraft(doc, { members: doc.body.members.filter((m) => m.peerId !== peer) }), o.json);
    });

  roster.command('sign').description('sign the roster with an admin key')
    .requiredOption('--file <file>', 'roster file')
    .requiredOption('--key <keyfile>', 'admin\'s peer.key')
    .option('--json', 'print the result as JSON')
    .action(async (o: { file: string; key: string; json?: boolean }) => {
      const doc = readRosterFile(o.file);
      const id = loadIdentity(o.key);
      if (!new Roster(doc).hasRole(id.peerId, 'admin')) {
        throw new CohortError('ROSTER_NOT_ADMIN', `${id.peerId} is not an admin on this roster`, 'add it with `cohort roster add --roles admin` first, or sign with an admin key');
      }
      const signed = await signRoster(doc, id.privateKey, id.peerId);
      writeRosterFile(o.file, signed);
      const v = await verifyRoster(signed);
      if (o.json) process.stdout.write(JSON.stringify({ file: o.file, signedBy: id.peerId.toString(), signatures: v.validSigners.length, needed: v.needed, ok: v.ok, version: signed.body.version }) + '\n');
      else process.stdout.write(`signed by ${id.peerId}: ${v.validSigners.length}/${v.needed} admin signatures${v.ok ? ' (valid)' : ''}\n`);
    });

  roster.command('verify').description('check the signatures (against a trusted previous roster when given)')
    .requiredOption('--file <file>', 'roster file')
    .option('--trusted <file>', 'the roster currently trusted: the update must be newer and signed by its admins')
    .option('--json', 'print the verdict as JSON')
    .action(async (o: { file: string; trusted?: string; json?: boolean }) => {
      const doc = readRosterFile(o.file);
      const authority = o.trusted ? new Roster(readRosterFile(o.trusted)) : undefined;
      const verdict = await verifyRoster(doc, authority);
      const newer = !authority || doc.body.version > authority.version;
      const ok = verdict.ok && newer;
      if (o.json) process.stdout.write(JSON.stringify({ ...verdict, ok, version: doc.body.version, newer }) + '\n');
      else process.stdout.write(`${ok ? 'valid' : 'INVALID'}: version ${doc.body.version}, ${verdict.validSigners.length}/${verdict.needed} admin signatures${newer ? '' : ', not newer than the trusted roster'}\n`);
      if (!ok) throw new CohortError('ROSTER_UNVERIFIED', `roster ${o.file} is not valid: ${verdict.reason ?? 'not newer'}`, 'collect the missing admin signatures with `cohort roster sign`');
    });

  roster.command('show').description('print the members; with --peer, also the suspicion reports that peer received about each of them')
    .option('--file <file>', 'roster file (default with --peer: that peer\'s roster file)')
    .option('--peer <dir>', 'a running peer (directory or its cohort.json): list the signed suspicion reports it holds about each member')
    .option('--json', 'print the document as JSON')
    .action(async (o: { file?: string; peer?: string; json?: boolean }) => {
      const file = o.file ?? (o.peer ? rosterFileOf(o.peer) : undefined);
      if (!file) throw new CohortError('CLI_INVALID', 'which roster? give --file or --peer', 'e.g. cohort roster show --file roster.json, or --peer peers/site-a');
      const doc = readRosterFile(file);
      const v = await verifyRoster(doc);
      const names = new Map(doc.body.members.map((m) => [m.peerId, m.name]));
      const suspicions = o.peer ? await suspicionsAt(AdminClient.forPeer(o.peer), (p) => names.get(p) ?? p) : undefined;
      if (o.json) {
        const members = suspicions ? doc.body.members.map((m) => ({ ...m, suspicions: suspicions.get(m.peerId) ?? [] })) : undefined;
        process.stdout.write(JSON.stringify({ ...doc, verified: v.ok, ...(members ? { members } : {}) }) + '\n');
        return;
      }
      process.stdout.write(`consortium ${doc.body.consortium}, version ${doc.body.version}, threshold ${doc.body.threshold}, signatures ${v.validSigners.length}/${v.needed}${v.ok ? ' (valid)' : ''}\n`);
      for (const m of doc.body.members) {
        process.stdout.write(`  ${m.peerId}  ${m.name}  [${m.roles.join(', ')}]\n`);
        for (const s of suspicions?.get(m.peerId) ?? []) {
          process.stdout.write(`      ${suspicionLine(s)}\n`);
        }
      }
      if (suspicions) process.stdout.write(suspicions.size ? 'suspicion reports are evidence for the roster admins, not a verdict: eviction is `cohort roster remove` + signatures\n' : 'no suspicion reports held by this peer\n');
    });
}

/** The roster file a peer's cohort.json names (net.rosterFile, relative to the peer directory). */
export function rosterFileOf(peer: string): string {
  const dir = peerDirOf(peer);
  const cfgFile = join(dir, 'cohort.json');
  let name = 'roster.json';
  if (existsSync(cfgFile)) {
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as { net?: { rosterFile?: unknown } };
    if (typeof cfg.net?.rosterFile === 'string') name = cfg.net.rosterFile;
  }
  return resolve(dir, name);
}

/** Editing a signed roster makes the next version; editing an unsigned draft keeps its version. */
function nextDraft(doc: RosterDoc, change: Partial<RosterDoc['body']>): RosterDoc {
  const version = doc.signatures.length > 0 ? doc.body.version + 1 : doc.body.version;
  return parseRosterDoc({ body: { ...doc.body, ...change, version, issuedAt: new Date().toISOString() }, signatures: [] });
}

function save(file: string, doc: RosterDoc, json?: boolean): void {
  writeRosterFile(file, doc);
  if (json) process.stdout.write(JSON.stringify({ file, version: doc.body.version, members: doc.body.members.length, signed: false }) + '\n');
  else process.stdout.write(`wrote ${file} (version ${doc.body.version}, ${doc.body.members.length} members, unsigned: run \`cohort roster sign\`)\n`);
}

interface MemberOpts { file: string; peerId?: string; peer?: string; json?: boolean }
/** --peer is the old spelling of --peer-id here (--peer names a peer directory everywhere else); still accepted, hidden. */
const peerIdAlias = (): Option => new Option('--peer <peerId>', 'old spelling of --peer-id').hideHelp();
function memberId(o: MemberOpts): string {
  const id = o.peerId ?? o.peer;
  if (!id) throw new CohortError('CLI_INVALID', 'which member? --peer-id is required', 'e.g. --peer-id 12D3KooW... (from `cohort init`)');
  return id;
}

function parseRoles(s: string): Role[] {
  const roles = s.split(',').map((r) => r.trim()).filter(Boolean);
  for (const r of roles) {
    if (!(ROLES as readonly string[]).includes(r)) throw new CohortError('ROSTER_ROLE', `unknown role "${r}"`, `roles: ${ROLES.join(', ')}`);
  }
  if (roles.length === 0) throw new CohortError('ROSTER_ROLE', 'no role given', `roles: ${ROLES.join(', ')}`);
  return roles as Role[];
}

function positiveInt(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new CohortError('CLI_INVALID', `${what} must be a positive integer, got "${s}"`, `e.g. ${what} 2`);
  return n;
}

function checkPeerId(s: string): void {
  try {
    if (peerIdFromString(s).type === 'Ed25519') return;
  } catch {
    // fall through
  }
  throw new CohortError('ROSTER_PEER_ID', `"${s}" is not an Ed25519 peer ID`, 'copy the peer ID that `cohort init` printed (12D3KooW...)');
}
