/** `cohort status [--peer DIR] [--json]`: the running peer — connections, scenarios, device in use, disk. */
import type { Command } from 'commander';
import { AdminClient } from '../../peer/client.ts';
import { suspicionLine, suspicionsAt } from './suspicions.ts';
import type { GraphReport } from '../../engine/trainer.ts';

interface Status {
  name: string; peerId: string; addrs: string[]; device: string; datasets: string[];
  roster: { consortium: string; version: number; roles: string[] };
  connections: { peer: string; name?: string; addr: string }[];
  members: { name: string; peerId: string; roles: string[]; connected: boolean; lastHeartbeatSecondsAgo: number | null; load: number | null; device: string | null }[];
  scenarios: { id: string; name: string; state: string; running: boolean; round?: number; suspicions?: { by: string; round: number; names: string[] }[];
    /** This peer's training worker: the provider of each graph, refusals, nodes left on CPU (latest run of the scenario here). */
    graphs?: GraphReport[] }[];
  disk: { freeBytes: number; totalBytes: number };
  /** The privacy ledger per dataset (src/privacy/peer-ledger.ts): epsilon spent + reserved, and what the lifetime budget leaves. */
  privacy?: { dataset: string; spent: number; reserved: number; lifetime: number | null; remaining: number | null; scenarios: number }[];
}

/** One line per graph (provider, nodes, CPU fallback), then the providers refused and why (once: usually the same for all graphs). */
export function graphLines(graphs: readonly GraphReport[]): string[] {
  const refused = [...new Set(graphs.flatMap((g) => g.refused))];
  return [
    ...graphs.map((g) => `    graph ${g.graph.padEnd(14)} on ${g.provider}${g.nodes !== undefined ? `, ${g.nodes} nodes` : ''}` +
      (g.cpuFallbackNodes === null ? ', CPU fallback not measured' : `, ${g.cpuFallbackNodes} fell back to CPU`)),
    ...(refused.length ? [`    providers refused: ${refused.join('; ')}`] : []),
  ];
}

export function registerStatus(program: Command): void {
  program.command('status').description('show the running peer: connections, scenarios, device, disk')
    .option('--peer <dir>', 'peer directory or its cohort.json', process.env.COHORT_PEER ?? '.')
    .option('--json', 'print JSON on stdout')
    .action(async (o: { peer: string; json?: boolean }) => {
      const api = AdminClient.forPeer(o.peer);
      const s = await api.get<Status>('/status');
      // reports this peer holds about each member (and about itself): who reported, after which round, the score (issue 11)
      const names = new Map([...s.members.map((m) => [m.peerId, m.name] as const), [s.peerId, s.name] as const]);
      const about = await suspicionsAt(api, (p) => names.get(p) ?? p);
      if (o.json) {
        return void process.stdout.write(JSON.stringify({ ...s, members: s.members.map((m) => ({ ...m, suspicions: about.get(m.peerId) ?? [] })), suspicionsAboutSelf: about.get(s.peerId) ?? [] }) + '\n');
      }
      const gib = (b: number): string => (b / 2 ** 30).toFixed(1);
      process.stdout.write([
        `${s.name}  ${s.peerId}  roles ${s.roster.roles.join(', ')}  (consortium ${s.roster.consortium}, roster v${s.roster.version})`,
        `listening ${s.addrs.join(' ')}`,
        `device ${s.device}   disk ${gib(s.disk.freeBytes)} GiB free of ${gib(s.disk.totalBytes)}   datasets ${s.datasets.join(', ') || 'none'}`,
        ...(s.privacy ?? []).map((b) => `privacy ${b.dataset}: epsilon ${b.spent} spent (${b.reserved} of it reserved by unfinished scenarios, ${b.scenarios} scenario(s))` +
          (b.lifetime === null ? ', no lifetime budget' : `, ${b.remaining} left of the lifetime budget ${b.lifetime}`)),
        `connections (${s.connections.length}): ${[...new Set(s.connections.map((c) => c.name ?? c.peer.slice(-8)))].join(', ') || 'none'}`,
        'members:',
        ...s.members.flatMap((m) => [`  ${m.name.padEnd(16)} ${m.connected ? 'connected   ' : 'unreachable '} ${m.lastHeartbeatSecondsAgo === null ? 'no heartbeat yet' : `heartbeat ${m.lastHeartbeatSecondsAgo} s ago, ${m.load ?? 0} running, ${m.device ?? '?'}`}  (${m.roles.join(', ')})`,
          ...(about.get(m.peerId) ?? []).map((x) => `    ${suspicionLine(x)}`)]),
        ...(about.get(s.peerId) ?? []).map((x) => `  this peer is ${suspicionLine(x)}`),
        `scenarios (${s.scenarios.length}):`,
        ...s.scenarios.flatMap((x) => [`  ${x.id.slice(0, 12)} ${x.name.padEnd(28)} ${x.state}${x.running ? `  training, round ${x.round ?? '-'}` : ''}`,
          ...(x.suspicions ?? []).map((r) => `    suspicion report: ${r.by} names ${r.names.join(', ')} (after round ${r.round})`),
          ...graphLines(x.graphs ?? [])]),
      ].join('\n') + '\n');
    });
}
