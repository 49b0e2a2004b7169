import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { CohortError } from '../../util/errors.ts';
import { NetConfigSchema } from '../../net/config.ts';
import { createIdentity } from '../../net/identity.ts';
import { writeNewPsk } from '../../net/pnet.ts';
import { DaemonSectionsSchema } from '../../peer/config.ts';

/** 4001 when nothing listens there, else a port the system says is free now. */
async function freeListenPort(preferred = 4001): Promise<number> {
  const tryPort = (port: number): Promise<number | undefined> => new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(undefined));
    s.listen(port, '0.0.0.0', () => { const got = (s.address() as { port: number }).port; s.close(() => res(got)); });
  });
  return (await tryPort(preferred)) ?? (await tryPort(0)) ?? preferred;
}

/**
 * `cohort init --dir DIR --name NAME`: an Ed25519 identity (mode 0600) and a complete, commented config for a new peer: every
 * section (net, approval, data, compute, admission, admin, store) with its defaults written out, listening on a free TCP port.
 */
export function registerInit(program: Command): void {
  program
    .command('init')
    .description('create the identity key and a commented config for a new peer')
    .requiredOption('--dir <dir>', 'folder for this peer (created if missing)')
    .requiredOption('--name <name>', 'hospital / site name shown to the consortium')
    .option('--consortium <id>', 'consortium id (namespaces gossip topics)', 'default')
    .option('--listen <multiaddr...>', 'listen addresses (default: /ip4/0.0.0.0/tcp/4001, or a free port when 4001 is taken)')
    .option('--announce <multiaddr...>', 'public addresses to announce (port forwarding behind NAT)', [])
    .option('--bootstrap <multiaddr...>', 'members to connect to at start (/ip4/.../tcp/.../p2p/PEERID)', [])
    .option('--psk', 'also create a new pre-shared key (swarm.key) for a private network')
    .option('--json', 'print the result as JSON')
    .action(async (o: { dir: string; name: string; consortium: string; listen?: string[]; announce: string[]; bootstrap: string[]; psk?: boolean; json?: boolean }) => {
      const dir = resolve(o.dir);
      const configFile = join(dir, 'cohort.json');
      if (existsSync(configFile)) throw new CohortError('INIT_EXISTS', `${configFile} already exists`, 'choose another --dir, or edit the existing config');
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const identity = await createIdentity(join(dir, 'peer.key'));
      if (o.psk) writeNewPsk(join(dir, 'swarm.key'));
      const listen = o.listen ?? [`/ip4/0.0.0.0/tcp/${await freeListenPort()}`];
      const parsed = NetConfigSchema.safeParse({
        listen, announce: o.announce, bootstrap: o.bootstrap, consortium: o.consortium,
        ...(o.psk ? { pskFile: 'swarm.key' } : {}),
      });
      if (!parsed.success) throw new CohortError('INIT_INVALID', `invalid option: ${parsed.error.issues[0]?.message ?? ''}`, 'see `cohort init --help`');
      const sections = DaemonSectionsSchema.parse({}); // approval, data, compute, admission, admin, heartbeatMs, store: the defaults, written out
      writeFileSync(configFile, JSON.stringify({ '//': CONFIG_COMMENTS, name: o.name, net: parsed.data, ...sections }, null, 2) + '\n');
      const out = { dir, config: configFile, peerId: identity.peerId.toString(), key: join(dir, 'peer.key'), psk: o.psk ? join(dir, 'swarm.key') : null, listen };
      if (o.json) process.stdout.write(JSON.stringify(out) + '\n');
      else {
        process.stdout.write(`peer ID ${out.peerId}\nwrote ${configFile} and ${out.key} (mode 0600)\n`);
        process.stdout.write(`next: send your peer ID and name to a consortium admin, and put the signed roster at ${join(dir, 'roster.json')}\n`);
      }
    });
}

const CONFIG_COMMENTS = [
  'Cohort peer configuration. JSON; this "//" field holds the comments. Paths are relative to this file.',
  'name: your hospital/site name as the consortium roster lists it.',
  'net.listen: multiaddrs to listen on. net.announce: public addresses to tell others (set when behind NAT with port forwarding).',
  'net.bootstrap: /ip4/HOST/tcp/PORT/p2p/PEERID of members to connect to at start. net.mdns: find members on the local network.',
  'net.pskFile: optional pre-shared key (libp2p pnet) shared by the whole consortium: defence in depth, halves throughput.',
  'net.keyFile: this peer\'s Ed25519 identity (keep it secret, mode 0600). net.rosterFile: the signed consortium roster.',
  'net.consortium: the consortium id. net.relayServer: relay connections for members behind NAT (a member with a public address).',
  'net.limits.maxModelBytes: largest model accepted; net.limits.maxGossipBytes: largest gossip message (<= 4 MiB).',
  'net.timeouts: dialMs, idleMs (no progress in a transfer), ackMs (wait for the receiver to verify a model).',
  'approval.autoApprove: scenarios approved without an operator (by model family, author peer ID or manifest hash); empty lists: every scenario waits for `cohort scenario approve` or the dashboard.',
  'data: the datasets this hospital offers, by the name scenarios ask for: { "wdbc": { "path": "data/wdbc.csv", "options": { "label": "diagnosis" } } } (paths relative to this file); or `cohort data add`.',
  'compute: maxConcurrentScenarios trained at once, threads per training worker, execution providers tried in order (cuda needs `npm run setup:gpu`), providerFallback: "cpu" (a provider that cannot run falls back to CPU, logged) or "error" (this peer\'s run fails with PROVIDER_UNAVAILABLE).',
  'admission: limits checked before approving (parameters, memory, rounds x epochs, duration, queue). admin.port: the admin API and dashboard on 127.0.0.1 (0: any free port, written to admin.json).',
  'heartbeatMs: how often this peer tells the others it is alive. store: free-space floor (minFreeBytes) and audit entries per second cap. Details: docs/daemon.md.',
];
