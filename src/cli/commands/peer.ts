/**
 * `cohort peer start --peer DIR` (or --config FILE)   run the peer daemon in the foreground (logs on stderr; SIGINT/SIGTERM stop it cleanly)
 * `cohort peer stop --peer DIR`        stop the daemon of that peer directory (SIGTERM to the pid in admin.json; waits until it is down)
 * `cohort peer provision [--dir peers]` example hospitals: identities, a signed roster and WDBC partitions for peers/site-*
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { CohortError } from '../../util/errors.ts';

/** A peer directory or its cohort.json -> the config file. */
function configOf(peerOrConfig: string): string {
  const p = resolve(peerOrConfig);
  return existsSync(p) && statSync(p).isDirectory() ? join(p, 'cohort.json') : p;
}

/** The dashboard's address, from the admin API's port file in the peer directory. */
function dashboardUrl(dir: string): string | null {
  try { return `http://127.0.0.1:${(JSON.parse(readFileSync(join(dir, 'admin.json'), 'utf8')) as { port: number }).port}/ui`; } catch { return null; }
}

export function registerPeer(program: Command): void {
  const peer = program.command('peer').description('run and prepare peer daemons');
  peer.command('start')
    .description('run the peer daemon (foreground); admin API on 127.0.0.1 with a token in the peer directory')
    .option('--peer <dir>', 'the peer directory (its cohort.json)', process.env.COHORT_PEER)
    .option('--config <file>', 'the peer\'s cohort.json (instead of --peer)')
    .option('--json', 'print one JSON line on stdout once ready: {event, name, peerId, addrs, dashboard}')
    .action(async (o: { config?: string; peer?: string; json?: boolean }) => {
      const file = o.config ?? (o.peer ? configOf(o.peer) : undefined);
      if (!file) throw new CohortError('BAD_OPTION', 'peer start needs --peer DIR (or --config FILE)', 'e.g. cohort peer start --peer peers/site-a');
      const { Daemon } = await import('../../peer/daemon.ts');
      const daemon = await Daemon.start(configOf(file));
      const ready = { event: 'ready', name: daemon.cfg.name, peerId: daemon.self, addrs: daemon.node.multiaddrs(), dashboard: dashboardUrl(daemon.cfg.dir) };
      process.stdout.write(o.json ? `${JSON.stringify(ready)}\n` : `${ready.name} ready: ${ready.peerId}\n  listening on ${ready.addrs.join(' ')}\n  dashboard ${ready.dashboard ?? '(admin API not up)'}\n`);
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
  peer.command('stop')
    .description('stop the running daemon of a peer directory (clean shutdown: store closed, admin API down)')
    .option('--peer <dir>', 'the peer directory (or its cohort.json)', process.env.COHORT_PEER ?? '.')
    .option('--timeout <s>', 'how long to wait for it to stop', '30')
    .option('--json', 'print the result as JSON')
    .action(async (o: { peer: string; timeout: string; json?: boolean }) => {
      const cfg = configOf(o.peer);
      const dir = cfg.endsWith('.json') ? resolve(cfg, '..') : cfg;
      const info = join(dir, 'admin.json');
      if (!existsSync(info)) throw new CohortError('PEER_NOT_RUNNING', `no daemon is running for ${dir} (no admin.json)`, 'start it with `cohort peer start --peer DIR`');
      const { pid } = JSON.parse(readFileSync(info, 'utf8')) as { pid: number };
      try { process.kill(pid, 'SIGTERM'); } catch (e) {
        throw new CohortError('PEER_NOT_RUNNING', `the daemon of ${dir} (pid ${pid}) is not running: ${(e as Error).message}`, 'a stale admin.json is removed at the next start');
      }
      const until = Date.now() + Number(o.timeout) * 1000;
      const alive = (): boolean => {
        try { process.kill(pid, 0); } catch { return false; }
        try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return true; } // a zombie has exited
      };
      while (alive() && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
      if (alive()) throw new CohortError('PEER_STOP_TIMEOUT', `the daemon of ${dir} (pid ${pid}) did not stop within ${o.timeout} s`, 'look at its log; kill it with SIGKILL only as a last resort');
      if (o.json) process.stdout.write(JSON.stringify({ stopped: true, pid, dir }) + '\n');
      else process.stdout.write(`stopped the daemon of ${dir} (pid ${pid})\n`);
    });
  peer.command('provision')
    .description('create the example hospitals\' identities, signed roster and data partitions (peers/site-a..d)')
    .option('--dir <dir>', 'folder of the example peers', 'peers')
    .option('--json', 'print the result as JSON')
    .action(async (o: { dir: string; json?: boolean }) => {
      const { EXAMPLE_SITES, provisionSites } = await import('../../peer/provision.ts');
      const sites = await provisionSites(o.dir, EXAMPLE_SITES);
      if (o.json) process.stdout.write(JSON.stringify(sites) + '\n');
      else for (const s of sites) process.stdout.write(`${s.name}  ${s.peerId}  ${s.config}\n`);
    });
}
