/**
 * Real peer daemons for the e2e tests: provisioned example sites in a temp folder, free loopback ports, each daemon a separate
 * `node --import tsx src/cli/main.ts peer start` process; the CLI run the same way. Nothing is mocked.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AdminClient } from '../../src/peer/client.ts';
import { EXAMPLE_SITES, provisionSites, type ProvisionedSite, type SiteSpec } from '../../src/peer/provision.ts';

export const ROOT = resolve(import.meta.dirname, '../..');

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

export interface Cluster { dir: string; sites: ProvisionedSite[]; procs: (ChildProcess | undefined)[] }

export async function provisionCluster(extra: SiteSpec[] = [], tweak: (s: SiteSpec) => SiteSpec = (s) => s): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-e2e-'));
  const specs: SiteSpec[] = [];
  for (const s of [...EXAMPLE_SITES, ...extra]) specs.push(tweak({ ...s, port: await freePort(), config: { heartbeatMs: 1000, ...s.config } }));
  const sites = await provisionSites(dir, specs, { wdbc: join(ROOT, 'data/wdbc.csv') });
  return { dir, sites, procs: [] };
}

/** `env`: extra variables for this daemon only (e.g. COHORT_TEST_ATTACK for the test-only adversarial peer, docs/robustness.md). */
export function startDaemon(c: Cluster, i: number, env: Record<string, string> = {}): ChildProcess {
  const site = c.sites[i]!;
  rmSync(join(site.dir, 'admin.json'), { force: true });
  const log = openSync(join(site.dir, 'daemon.log'), 'a');
  const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'peer', 'start', '--config', site.config], {
    cwd: ROOT, stdio: ['ignore', 'ignore', log], env: { ...process.env, COHORT_LOG_LEVEL: 'info', ...env },
  });
  c.procs[i] = p;
  return p;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(what: string, f: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(300);
  }
}

export function client(c: Cluster, i: number): AdminClient {
  return AdminClient.forPeer(c.sites[i]!.dir);
}

/** Until every daemon in `idx` answers and is connected to the others in `idx`. */
export async function waitConnected(c: Cluster, idx: number[]): Promise<void> {
  await waitFor('peers connected', async () => {
    for (const i of idx) {
      if (c.procs[i]?.exitCode !== null && c.procs[i]?.exitCode !== undefined) throw new Error(`${c.sites[i]!.name} exited: ${log(c, i).slice(-2000)}`);
      if (!existsSync(join(c.sites[i]!.dir, 'admin.json'))) return false;
      const s = await client(c, i).get<{ connections: { peer: string }[] }>('/status');
      const peers = new Set(s.connections.map((x) => x.peer));
      if (!idx.filter((j) => j !== i).every((j) => peers.has(c.sites[j]!.peerId))) return false;
    }
    return true;
  }, 90_000);
}

/** Starts the daemons in `idx` and waits until each answers and is connected to the others (a test file's usual set-up). */
export async function startConnected(c: Cluster, idx: number[]): Promise<void> {
  for (const i of idx) startDaemon(c, i);
  await waitConnected(c, idx);
}

export function log(c: Cluster, i: number): string {
  const f = join(c.sites[i]!.dir, 'daemon.log');
  return existsSync(f) ? readFileSync(f, 'utf8') : '';
}

export function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, COHORT_LOG_LEVEL: 'warn' }, timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `cli` without blocking the event loop: for tests that run side by side (`it.concurrent`) and poll daemons meanwhile. */
export function cliAsync(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COHORT_LOG_LEVEL: 'warn' } });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (x: string) => { stdout += x; });
    p.stderr.setEncoding('utf8').on('data', (x: string) => { stderr += x; });
    const ceiling = setTimeout(() => p.kill('SIGKILL'), 60_000);   // as cli's: against a hung command, not a duration relied on
    p.once('error', (e) => { clearTimeout(ceiling); fail(e); });
    p.once('close', (code) => { clearTimeout(ceiling); done({ code: code ?? -1, stdout, stderr }); });
  });
}

export async function stopDaemon(c: Cluster, i: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  const p = c.procs[i];
  if (!p || p.exitCode !== null) return p?.exitCode ?? null;
  const exited = new Promise<number | null>((res) => p.once('exit', (code) => res(code)));
  p.kill(signal);
  return exited;
}

export async function stopCluster(c: Cluster): Promise<void> {
  await Promise.all(c.procs.map((_, i) => stopDaemon(c, i)));
}

/** afterAll of every e2e file: stop the daemons and remove the cluster's folder (kept for a post-mortem with COHORT_KEEP_E2E=1). */
export async function disposeCluster(c: Cluster | undefined): Promise<void> {
  if (!c) return;
  await stopCluster(c);
  if (!process.env.COHORT_KEEP_E2E) rmSync(c.dir, { recursive: true, force: true });
}

export function wdbcManifest(overrides: { rounds?: number; roundMs?: number; launch?: Record<string, unknown>; name?: string } = {}): Record<string, unknown> {
  const m = JSON.parse(readFileSync(join(ROOT, 'scenarios/wdbc-radiomics.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  return {
    ...m, name: overrides.name ?? 'wdbc-e2e',
    averaging: { ...m.averaging, topology: { kind: 'complete' }, roundMs: overrides.roundMs ?? 1200, deadlineMs: Math.round((overrides.roundMs ?? 1200) * 0.8) },
    rounds: { max: overrides.rounds ?? 4 },
    evaluation: { ...m.evaluation, compareLocalOnly: true },
    launch: { startDelayMs: 4000, ...overrides.launch },
  };
}
