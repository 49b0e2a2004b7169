/**
 * One spelling for a peer's directory: `peer start --peer DIR`, `peer stop --peer DIR`, `data ... --peer DIR` (the old
 * `--store` still works, hidden from the help). A real daemon process is started and stopped by the CLI.
 */
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, provisionCluster, ROOT, waitFor, type Cluster } from './daemon-harness.ts';

let c: Cluster | undefined;
afterAll(() => { if (c && !process.env.COHORT_KEEP_E2E) rmSync(c.dir, { recursive: true, force: true }); });

describe('cohort peer start/stop --peer DIR', () => {
  it('starts a daemon from its directory and stops it cleanly; stopping a stopped peer is a clear error', async () => {
    c = await provisionCluster();
    const dir = c.sites[0]!.dir;
    const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'peer', 'start', '--peer', dir], { cwd: ROOT, stdio: 'ignore', env: { ...process.env, COHORT_LOG_LEVEL: 'warn' } });
    const exited = new Promise<number | null>((res) => p.once('exit', (code) => res(code)));
    try {
      await waitFor('admin.json', async () => existsSync(join(dir, 'admin.json')), 90_000);
      const stop = cli(['peer', 'stop', '--peer', dir, '--json']);
      expect(stop.code, stop.stderr).toBe(0);
      expect(JSON.parse(stop.stdout)).toMatchObject({ stopped: true, pid: p.pid });
      expect(await exited).toBe(0);
      expect(existsSync(join(dir, 'admin.json'))).toBe(false);
      const again = cli(['peer', 'stop', '--peer', dir]);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/no daemon is running/);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  }, 150_000);

  it('data commands take --peer; --store is a hidden old spelling', () => {
    const help = cli(['data', 'list', '--help']);
    expect(help.stdout).toMatch(/--peer <dir>/);
    expect(help.stdout).not.toMatch(/--store/);
    const dir = c!.sites[1]!.dir;
    const a = cli(['data', 'list', '--peer', dir, '--json']);
    const b = cli(['data', 'list', '--store', dir, '--json']);
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout)).toEqual(JSON.parse(b.stdout));
  });
});
