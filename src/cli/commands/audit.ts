/**
 * `cohort audit [--peer DIR] [--scenario ID] [--json]`: what left this peer — to whom, what, size, sha256 — and every approval;
 * from the running daemon, or from the store of a stopped peer (read-only; `offline: true` in the JSON).
 * `cohort audit --verify [--json]`: walks the whole chain against the signed head (the running daemon's, or the store of a
 * stopped peer): `{"intact","entries","missing_after","damaged_ranges",...}`; exit 1 when not intact.
 */
import type { Command } from 'commander';
import { readRosterFile } from '../../net/roster.ts';
import { AdminClient } from '../../peer/client.ts';
import { AuditLog, type AuditEntry, type AuditVerdict } from '../../store/audit.ts';
import { openStore } from '../../store/db.ts';
import { isCohortError } from '../../util/errors.ts';
import { rosterFileOf } from './roster.ts';
import { peerDirOf, readAnchor } from './store.ts';

/** The verdict from the running daemon, or, when none runs, from the store itself (opened read-only). */
async function verdict(peer: string): Promise<AuditVerdict> {
  try {
    return await AdminClient.forPeer(peer).get<AuditVerdict>('/audit/verify');
  } catch (e) {
    if (!isCohortError(e) || e.code !== 'DAEMON_NOT_RUNNING') throw e;
  }
  const dir = peerDirOf(peer);
  const store = await openStore(dir, { create: false });
  try {
    return await (await AuditLog.open(store, { anchor: readAnchor(dir), readOnly: true })).verify();
  } finally {
    await store.close();
  }
}

interface Listing { verify: AuditVerdict; total?: number; entries: AuditEntry[]; damaged_ranges?: { from: number; to: number }[]; offline?: boolean }

/**
 * The entries from the running daemon, or, when none runs, from the store itself (opened read-only, as --verify does): the log is
 * the hospital's record and must stay readable with the daemon down. A scenario may be named by a prefix of its id.
 */
async function listing(peer: string, q: { scenario?: string; limit: number }): Promise<Listing> {
  try {
    const query = new URLSearchParams({ ...(q.scenario ? { scenario: q.scenario } : {}), limit: String(q.limit) });
    return await AdminClient.forPeer(peer).get<Listing>(`/audit?${query.toString()}`);
  } catch (e) {
    if (!isCohortError(e) || e.code !== 'DAEMON_NOT_RUNNING') throw e;
  }
  const dir = peerDirOf(peer);
  const store = await openStore(dir, { create: false });
  try {
    const log = await AuditLog.open(store, { anchor: readAnchor(dir), readOnly: true });
    const all = (await log.list()).filter((e) => !q.scenario || (e.scenario ?? '').startsWith(q.scenario));
    return { verify: await log.verify(), total: all.length, entries: q.limit > 0 ? all.slice(-q.limit) : all, offline: true };
  } finally {
    await store.close();
  }
}

/** Roster names for the human listing: the daemon's status, or the peer's roster file when it is stopped. */
async function memberNames(peer: string, offline: boolean | undefined): Promise<Map<string, string>> {
  if (!offline) {
    const status = await AdminClient.forPeer(peer).get<{ members: { name: string; peerId: string }[] }>('/status');
    return new Map(status.members.map((m) => [m.peerId, m.name]));
  }
  try {
    const doc = readRosterFile(rosterFileOf(peer));
    return new Map(doc.body.members.map((m) => [m.peerId, m.name]));
  } catch {
    return new Map();
  }
}

function printVerdict(v: AuditVerdict, json: boolean | undefined): void {
  const { intact, entries, missing_after, damaged_ranges, ...rest } = v;
  if (json) process.stdout.write(JSON.stringify({ intact, entries, missing_after, damaged_ranges, ...rest }) + '\n');
  else {
    process.stdout.write((intact ? `chain intact: ${entries} entries, head ${v.anchor}`
      : `chain intact up to ${v.intact_up_to}${v.missing ? `, ${v.missing} entries missing after it (${v.missing_ranges.map((r) => `${r.from}..${r.to}`).join(', ')})` : ''}`
        + `${damaged_ranges.length ? `; damaged: ${damaged_ranges.map((r) => `${r.from}..${r.to}`).join(', ')}` : ''}${v.broken.length ? `; broken links at ${v.broken.join(', ')}` : ''}; head ${v.anchor}; ${entries} entries readable`) + '\n');
  }
  if (!intact) process.exitCode = 1;
}

export function registerAudit(program: Command): void {
  program.command('audit').description('the audit log: every outbound message and model transfer, every approval (append-only, hash-chained)')
    .option('--peer <dir>', 'peer directory or its cohort.json', process.env.COHORT_PEER ?? '.')
    .option('--scenario <id>', 'only entries of one scenario')
    .option('--limit <n>', 'only the most recent N entries (0: all)', '0')
    .option('--json', 'print JSON on stdout')
    .option('--verify', 'walk the whole chain against the signed head: intact, or intact up to N with M entries missing after it')
    .action(async (o: { peer: string; scenario?: string; limit: string; json?: boolean; verify?: boolean }) => {
      if (o.verify) return printVerdict(await verdict(o.peer), o.json);
      const r = await listing(o.peer, { scenario: o.scenario, limit: Number(o.limit) || 0 });
      if (o.json) return void process.stdout.write(JSON.stringify(r) + '\n');
      if (r.offline) process.stderr.write('cohort: the daemon is not running: read from its store (read-only)\n');
      const names = await memberNames(o.peer, r.offline);
      const who = (to: string): string => names.get(to) ?? to;
      const lines = r.entries.map((e) => `${String(e.seq).padStart(6)} ${e.at} ${e.kind.padEnd(14)} ${who(e.to).length > 40 ? `…${who(e.to).slice(-39)}` : who(e.to).padEnd(40)} ${e.bytes !== undefined ? `${e.bytes} B`.padStart(10) : ''.padStart(10)} ${e.sha256 ? e.sha256.slice(0, 16) : ''.padEnd(16)} ${e.what}${e.detail ? ` — ${e.detail}` : ''}`);
      const damaged = [...(r.damaged_ranges ?? []), ...(r.verify.damaged_ranges ?? [])].map((d) => `${d.from}..${d.to}`);
      lines.push(`${r.entries.length} of ${r.total ?? '?'} entries shown; chain of ${r.verify.entries} entries ${r.verify.ok ? 'intact' : `BROKEN at entry ${r.verify.brokenAt ?? '?'}`}`
        + `${r.verify.missing ? `; intact up to ${r.verify.intact_up_to}, ${r.verify.missing} entries missing after it` : ''}${damaged.length ? `; damaged (unreadable) entries: ${[...new Set(damaged)].join(', ')}` : ''}`
        + `${r.verify.ok ? '' : ' (cohort audit --verify for the whole verdict)'}`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}
