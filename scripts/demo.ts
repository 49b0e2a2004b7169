/**
 * `npm run demo` — four hospital peers (peers/site-a..d) as separate processes on loopback: provision them (identities at first
 * run, a signed roster, each site's WDBC partition), start the daemons, wait until they are connected, launch a scenario from
 * site-a (a researcher), follow it live, print per-site metrics beside local-only training, and shut everything down cleanly.
 *
 *   npm run demo                       scenarios/wdbc-radiomics.json, with demo timing (short rounds)
 *   npm run demo -- --scenario FILE    another manifest
 *   npm run demo -- --json             one JSON document on stdout: {scenario, peers:[{name, metric, local_only, rounds, bytes_sent}], seconds}
 *   npm run demo -- --as-is            keep the manifest's own round length and round count
 *   npm run demo -- --dashboard        print each site's dashboard URL and token; the peers stay up after the run (Ctrl-C stops them)
 */
import '../src/util/polyfills.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AdminClient } from '../src/peer/client.ts';
import { EXAMPLE_SITES, provisionSites, type ProvisionedSite } from '../src/peer/provision.ts';
import { siteResults } from '../src/scenario/report.ts';
import { followScenario, type Detail } from '../src/cli/commands/scenario.ts';

const { values: args } = parseArgs({ options: { json: { type: 'boolean' }, scenario: { type: 'string' }, 'as-is': { type: 'boolean' }, peers: { type: 'string' }, dashboard: { type: 'boolean' } } });
const json = Boolean(args.json);
const say = (s: string): void => void (json ? process.stderr : process.stdout).write(s + '\n');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const t0 = performance.now();
// the compiled CLI (dist/, built by `npm ci`) when present: peers and their training workers start in JavaScript, not through tsx
const PEER_CLI = existsSync('dist/cli/main.js') ? ['bin/cohort.js'] : ['--import', 'tsx', 'src/cli/main.ts'];


function startPeer(site: ProvisionedSite): ChildProcess {
  rmSync(join(site.dir, 'admin.json'), { force: true });
  const log = openSync(join(site.dir, 'daemon.log'), 'a');
  return spawn(process.execPath, [...PEER_CLI, 'peer', 'start', '--config', site.config], {
    stdio: ['ignore', 'ignore', log], env: { ...process.env, COHORT_LOG_LEVEL: process.env.COHORT_LOG_LEVEL ?? 'warn' },
  });
}

async function waitConnected(sites: readonly ProvisionedSite[], procs: readonly ChildProcess[]): Promise<AdminClient[]> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    procs.forEach((p, i) => { if (p.exitCode !== null) throw new Error(`${sites[i]!.name} exited (code ${p.exitCode}); see ${join(sites[i]!.dir, 'daemon.log')}`); });
    if (sites.every((s) => existsSync(join(s.dir, 'admin.json')))) {
      const clients = sites.map((s) => AdminClient.forPeer(s.dir));
      const conns = await Promise.all(clients.map((c) => c.get<{ connections: { peer: string }[] }>('/status').then((s) => new Set(s.connections.map((x) => x.peer)).size).catch(() => 0)));
      if (conns.every((n) => n >= sites.length - 1)) return clients;
    }
    if (Date.now() > deadline) throw new Error('peers did not connect within 120 s; see peers/*/daemon.log');
    await sleep(500);
  }
}

function demoManifest(file: string): Record<string, unknown> {
  const m = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown> & { averaging: Record<string, unknown>; rounds: Record<string, unknown> };
  const run = { ...(m.launch as object | undefined), minPeers: 4, run: new Date().toISOString() };
  if (args['as-is']) return { ...m, launch: run };
  // demo timing: a few minutes on 2 cores; the manifest's own timing is for real networks. Image models need longer rounds.
  const tabular = (m.model as { type?: string } | undefined)?.type === 'mlp';
  const roundMs = tabular ? 1500 : 4000;
  const rounds = Math.min(Number(m.rounds.max), tabular ? 15 : 10);
  say(`demo timing: ${rounds} rounds of ${roundMs / 1000} s (the manifest says ${String(m.rounds.max)} rounds of ${String(m.averaging.roundMs)} ms; --as-is keeps them)`);
  return { ...m, averaging: { ...m.averaging, roundMs, deadlineMs: Math.round(roundMs * 0.8) }, rounds: { ...m.rounds, max: rounds }, launch: { ...run, startDelayMs: tabular ? 4000 : 8000 } };
}

async function stopAll(procs: readonly ChildProcess[]): Promise<void> {
  await Promise.all(procs.map((p) => new Promise<void>((done) => {
    if (p.exitCode !== null) return done();
    p.once('exit', () => done());
    p.kill('SIGTERM');
    setTimeout(() => { p.kill('SIGKILL'); }, 15_000).unref();
  })));
}

const scenarioFile = resolve(args.scenario ?? 'scenarios/wdbc-radiomics.json');
say('Cohort demo: four hospital peers on loopback, no central server. Data stays at each site; only model parameters move.');
const sites = await provisionSites(args.peers ?? 'peers', EXAMPLE_SITES);
say(`provisioned ${sites.map((s) => s.name).join(', ')} (identities, signed roster, WDBC partitions in ${args.peers ?? 'peers'}/*/data)`);
const procs = sites.map(startPeer);
let exitCode = 0;
try {
  const clients = await waitConnected(sites, procs);
  say(`all four peers connected (${((performance.now() - t0) / 1000).toFixed(1)} s); launching ${scenarioFile} from site-a`);
  if (args.dashboard) {
    for (const s of sites) {
      const port = (JSON.parse(readFileSync(join(s.dir, 'admin.json'), 'utf8')) as { port: number }).port;
      say(`dashboard of ${s.name}: http://127.0.0.1:${port}/ui   token: ${readFileSync(join(s.dir, 'admin.token'), 'utf8').trim()}  (${join(s.dir, 'admin.token')})`);
    }
  }
  const { id } = await clients[0]!.post<{ id: string }>('/scenarios', { manifest: demoManifest(scenarioFile) });
  const d = await followScenario(clients[0]!, id, { json, to: process.stdout });
  const peers = siteResults(d).map((s) => ({ name: s.name, metric: s.metric, local_only: s.local_only, rounds: s.rounds, bytes_sent: s.bytes_sent }));
  const seconds = Number(((performance.now() - t0) / 1000).toFixed(1));
  if (json) process.stdout.write(JSON.stringify({ scenario: String(d.manifest.name), id, state: d.view.state, peers, seconds }) + '\n');
  else {
    say(`\n${String(d.manifest.name)} ${d.view.state} in ${seconds} s. Per-site held-out metric, federated vs local-only training:`);
    for (const p of peers) say(`  ${p.name}: ${p.metric?.toFixed(3) ?? '–'} vs ${p.local_only?.toFixed(3) ?? '–'} local-only  (${p.rounds} rounds, ${(p.bytes_sent / 1024).toFixed(0)} KiB sent)`);
    const dir = args.peers ?? 'peers';
    if (args.dashboard) say(`While the peers are up: npx cohort scenario export ${id.slice(0, 12)} --peer ${dir}/site-a --out out/  ·  npx cohort audit --peer ${dir}/site-c`);
    else say('To browse the run in the dashboard and export the model, run `npm run demo -- --dashboard`: the peers then stay up until Ctrl-C.');
  }
  if (d.view.state !== 'finished') exitCode = 1;
  if (args.dashboard) {
    say('peers stay up for the dashboard; Ctrl-C stops them');
    await new Promise<void>((done) => { process.once('SIGINT', () => done()); process.once('SIGTERM', () => done()); });
  }
} catch (e) {
  process.stderr.write(`demo failed: ${(e as Error).message}\n`);
  exitCode = 1;
} finally {
  await stopAll(procs);
  say('all peers stopped cleanly');
}
process.exit(exitCode);
