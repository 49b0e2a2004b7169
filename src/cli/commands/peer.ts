/**
 * `cohort peer start --config FILE`   run the peer daemon in the foreground (logs on stderr; SIGINT/SIGTERM stop it cleanly)
 * `cohort peer provision [--dir peers]` example hospitals: identities, a signed roster and WDBC partitions for peers/site-*
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Daemon } from '../../peer/daemon.ts';
import { EXAMPLE_SITES, provisionSites } from '../../peer/provision.ts';

export function registerPeer(program: Command): void {
  const peer = program.command('peer').description('run and prepare peer daemons');
  peer.command('start')
    .description('run the peer daemon (foreground); admin API on 127.0.0.1 with a token in the peer directory')
    .requiredOption('--config <file>', 'the peer\'s cohort.json')
    .action(async (o: { config: string }) => {
      const daemon = await Daemon.start(resolve(o.config));
      process.stdout.write(`${JSON.stringify({ event: 'ready', name: daemon.cfg.name, peerId: daemon.self, addrs: daemon.node.multiaddrs() })}\n`);
      await new Promise<void>((done) => {
        const stop = (signal: string): void => {
          process.stderr.write(`cohort: ${signal}: stopping ${daemon.cfg.name}\n`);
          void daemon.stop().finally(done);
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
      // libp2p leaves timers behind for about a second; the store is closed, so leave now
      process.exit(0);
    });
  peer.command('provision')
    .description('create the example hospitals\' identities, signed roster and data partitions (peers/site-a..d)')
    .option('--dir <dir>', 'folder of the example peers', 'peers')
    .option('--json', 'print the result as JSON')
    .action(async (o: { dir: string; json?: boolean }) => {
      const sites = await provisionSites(o.dir, EXAMPLE_SITES);
      if (o.json) process.stdout.write(JSON.stringify(sites) + '\n');
      else for (const s of sites) process.stdout.write(`${s.name}  ${s.peerId}  ${s.config}\n`);
    });
}
