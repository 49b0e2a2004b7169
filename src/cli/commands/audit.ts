/** `cohort audit [--peer DIR] [--scenario ID] [--json]`: what left this peer — to whom, what, size, sha256 — and every approval. */
import type { Command } from 'commander';
import { AdminClient } from '../../peer/client.ts';
import type { AuditEntry, AuditVerdict } from '../../store/audit.ts';

export function registerAudit(program: Command): void {
  program.command('audit').description('the audit log: every outbound message and model transfer, every approval (append-only, hash-chained)')
    .option('--peer <dir>', 'peer directory or its cohort.json', process.env.COHORT_PEER ?? '.')
    .option('--scenario <id>', 'only entries of one scenario')
    .option('--limit <n>', 'only the most recent N entries (0: all)', '0')
    .option('--json', 'print JSON on stdout')
    .action(async (o: { peer: string; scenario?: string; limit: string; json?: boolean }) => {
      const q = new URLSearchParams({ ...(o.scenario ? { scenario: o.scenario } : {}), limit: String(Number(o.limit) || 0) });
      const r = await AdminClient.forPeer(o.peer).get<{ verify: AuditVerdict; total: number; entries: AuditEntry[] }>(`/audit?${q.toString()}`);
      if (o.json) return void process.stdout.write(JSON.stringify(r) + '\n');
      const status = await AdminClient.forPeer(o.peer).get<{ members: { name: string; peerId: string }[] }>('/status');
      const names = new Map(status.members.map((m) => [m.peerId, m.name]));
      const who = (to: string): string => names.get(to) ?? to;
      const lines = r.entries.map((e) => `${String(e.seq).padStart(6)} ${e.at} ${e.kind.padEnd(14)} ${who(e.to).length > 40 ? `…${who(e.to).slice(-39)}` : who(e.to).padEnd(40)} ${e.bytes !== undefined ? `${e.bytes} B`.padStart(10) : ''.padStart(10)} ${e.sha256 ? e.sha256.slice(0, 16) : ''.padEnd(16)} ${e.what}${e.detail ? ` — ${e.detail}` : ''}`);
      lines.push(`${r.entries.length} of ${r.total} entries shown; chain of ${r.verify.entries} entries ${r.verify.ok ? 'intact' : `BROKEN at entry ${r.verify.brokenAt ?? '?'}`}`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}
