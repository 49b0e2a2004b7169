/**
 * `cohort store verify|backup|repair [--peer DIR] [--json]`: maintenance of a stopped peer's store (each refuses while the daemon
 * holds it: stop the daemon first).
 *   verify                 reads every sublevel to the end, walks the audit chain against the signed head, checks every checkpoint;
 *                          exit 1 when anything is damaged or missing
 *   backup --out DIR       copies store/ and audit.head into DIR (a peer-directory-like folder) and verifies the copy
 *   repair                 keeps a copy of the damaged store beside it, runs LevelDB's repair, reports what was lost
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadIdentity } from '../../net/identity.ts';
import { headAnchor, type HeadAnchor } from '../../store/head.ts';
import { backupStore, repairStore, verifyStore, type StoreReport } from '../../store/maintenance.ts';

/** The peer directory of `--peer` (a directory or its cohort.json). */
export function peerDirOf(target: string): string {
  return existsSync(target) && statSync(target).isFile() ? dirname(resolve(target)) : resolve(target);
}

/** The head anchor of a peer directory, bound to this peer's ID when its key is there (a head signed by another is refused). */
export function readAnchor(dir: string): HeadAnchor {
  const key = join(dir, 'peer.key');
  let peer: string | undefined;
  try { if (existsSync(key)) peer = loadIdentity(key).peerId.toString(); } catch { peer = undefined; }
  return headAnchor(dir, undefined, peer);
}

function describe(r: StoreReport): string {
  const lines = Object.entries(r.sublevels).map(([n, s]) => `  ${n.padEnd(12)} ${String(s.entries).padStart(8)} entries${s.damaged ? `  DAMAGED after them: ${s.error ?? ''}` : ''}`);
  const a = r.audit;
  lines.push(a.intact ? `  audit chain intact: ${a.entries} entries (head ${a.head ? `signed, ${a.anchor}` : 'file absent'})`
    : `  audit chain intact up to ${a.intact_up_to}; ${a.missing} entries missing after ${a.missing_after ?? '-'}; damaged ranges ${JSON.stringify(a.damaged_ranges)}; broken links ${JSON.stringify(a.broken)}; head ${a.anchor}`);
  lines.push(`  checkpoints: ${r.checkpoints.checked} checked${r.checkpoints.bad.length ? `, BAD: ${r.checkpoints.bad.join(', ')}` : ', all match their round state'}`);
  return `${r.ok ? 'store OK' : 'store DAMAGED'}: ${r.location}\n${lines.join('\n')}`;
}

export function registerStore(program: Command): void {
  const store = program.command('store').description('verify, back up and repair a stopped peer\'s store');
  const common = (c: Command): Command => c.option('--peer <dir>', 'peer directory or its cohort.json', process.env.COHORT_PEER ?? '.').option('--json', 'print JSON on stdout');

  common(store.command('verify')).description('read the whole store: sublevels, audit chain against the signed head, checkpoints (exit 1 when damaged)')
    .action(async (o: { peer: string; json?: boolean }) => {
      const dir = peerDirOf(o.peer);
      const r = await verifyStore(dir, readAnchor(dir));
      process.stdout.write((o.json ? JSON.stringify(r) : describe(r)) + '\n');
      if (!r.ok) process.exitCode = 1;
    });

  common(store.command('backup')).requiredOption('--out <dir>', 'new folder for the copy (gets store/ and audit.head)')
    .description('copy the store and the audit head (daemon stopped), then verify the copy')
    .action(async (o: { peer: string; out: string; json?: boolean }) => {
      const dir = peerDirOf(o.peer);
      const r = await backupStore(dir, resolve(o.out), readAnchor(dir));
      process.stdout.write((o.json ? JSON.stringify(r) : `backed up ${r.files} files (${r.bytes} B) to ${r.out}\n${describe(r.verify)}`) + '\n');
      if (!r.verify.ok) process.exitCode = 1;
    });

  common(store.command('repair')).description('LevelDB repair of a damaged store (a copy of it is kept beside it); reports what was lost')
    .action(async (o: { peer: string; json?: boolean }) => {
      const dir = peerDirOf(o.peer);
      const r = await repairStore(dir, readAnchor(dir));
      const lost = Object.entries(r.lost).filter(([, n]) => n > 0).map(([k, n]) => `${k}: ${n}`).join(', ');
      process.stdout.write((o.json ? JSON.stringify(r) : `repaired ${r.location} (the damaged store is kept at ${r.keptCopy})\n`
        + `lost: ${r.before ? lost || 'no entry that was readable before' : 'unknown (the store could not be opened before the repair)'}`
        + `${r.lostFiles.length ? `; unusable files moved to store/lost: ${r.lostFiles.join(', ')}` : ''}\n${describe(r.after)}`) + '\n');
      if (!r.after.ok) process.exitCode = 1;
    });
}
