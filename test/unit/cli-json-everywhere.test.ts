/**
 * `--json` on every command (issue 12.6): every leaf command of the command table (src/cli/commands/index.ts) accepts `--json`
 * and its help lists it; every command that can run without a running daemon, run as a real process on real files (a provisioned
 * peer directory, a roster, manifests, the WDBC CSV, a synthetic image site, a real daemon started and stopped for its store),
 * prints exactly one parseable JSON document on stdout, and nothing else there (logs and progress go to stderr).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerAllCommands } from '../../src/cli/commands/index.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const LONG = 240_000;

function leaves(c: Command, path: string[] = []): { path: string; cmd: Command }[] {
  if (c.commands.length === 0) return [{ path: path.join(' '), cmd: c }];
  return c.commands.flatMap((s) => leaves(s, [...path, s.name()]));
}

/** Runs `cohort ARGS` from the sources (as the other CLI tests) and returns what it wrote where. */
function cohort(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, COHORT_LOG_LEVEL: 'info' }, timeout: 180_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs with --json and returns the one JSON document of stdout; fails naming the command otherwise. */
function json<T = Record<string, unknown>>(args: string[]): T {
  const r = cohort([...args, '--json']);
  const what = `cohort ${args.join(' ')} --json (exit ${r.code}; stderr: ${r.stderr.slice(-400)})`;
  expect(r.code, what).toBe(0);
  expect(r.stdout.trim(), `${what}: stdout is empty`).not.toBe('');
  let doc: unknown;
  try { doc = JSON.parse(r.stdout); } catch (e) { throw new Error(`${what}: stdout is not one JSON document: ${(e as Error).message}\n${r.stdout.slice(0, 400)}`); }
  return doc as T;
}

describe('every leaf command accepts --json', () => {
  it('lists --json in its help', async () => {
    const program = new Command();
    await registerAllCommands(program);
    const all = leaves(program);
    expect(all.length).toBeGreaterThan(30);
    const missing = all.filter(({ cmd }) => !cmd.options.some((o) => o.long === '--json') || !cmd.helpInformation().includes('--json')).map((l) => l.path);
    expect(missing).toEqual([]);
  });
});

describe('offline commands print one JSON document on stdout, nothing else', () => {
  let dir = '';
  let site = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cohort-json-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('init, peer provision, roster create/add/sign/verify/show/remove', () => {
    const init = json<{ peerId: string; config: string }>(['init', '--dir', join(dir, 'admin'), '--name', 'admin-site']);
    expect(existsSync(init.config)).toBe(true);
    const sites = json<{ name: string; dir: string }[]>(['peer', 'provision', '--dir', join(dir, 'peers')]);
    expect(sites.map((s) => s.name)).toEqual(['site-a', 'site-b', 'site-c', 'site-d']);
    site = sites[0]!.dir;
    const file = join(dir, 'roster.json');
    expect(json(['roster', 'create', '--file', file, '--consortium', 'json-test'])).toMatchObject({ version: 1, members: 0 });
    expect(json(['roster', 'add', '--file', file, '--peer-id', init.peerId, '--name', 'admin-site', '--roles', 'admin,researcher'])).toMatchObject({ members: 1 });
    expect(json(['roster', 'sign', '--file', file, '--key', join(dir, 'admin', 'peer.key')])).toMatchObject({ ok: true });
    expect(json(['roster', 'verify', '--file', file])).toMatchObject({ ok: true });
    expect(json<{ verified: boolean }>(['roster', 'show', '--file', file]).verified).toBe(true);
    expect(json(['roster', 'remove', '--file', file, '--peer-id', init.peerId])).toMatchObject({ members: 0 });
  }, LONG);

  it('scenario validate, new (printed and written), check', () => {
    const manifest = join(ROOT, 'scenarios', 'wdbc-radiomics.json');
    expect(json(['scenario', 'validate', manifest])).toMatchObject({ valid: true, name: 'wdbc-radiomics' });
    expect(json<{ manifest: { name: string } }>(['scenario', 'new', '--template', 'wdbc-radiomics', '--name', 'json-one']).manifest.name).toBe('json-one');
    const out = join(dir, 'new.json');
    expect(json(['scenario', 'new', '--template', 'wdbc-radiomics', '--out', out])).toMatchObject({ out });
    expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject({ name: 'wdbc-radiomics' });
    expect(json(['scenario', 'check', manifest, '--peer', site])).toHaveProperty('decision');
  }, LONG);

  it('data inspect, add, list, remove, synth, radiomics', () => {
    expect(json(['data', 'inspect', join(ROOT, 'data', 'wdbc.csv')])).toBeTypeOf('object');
    // bad input: a clear error on stderr, nothing on stdout
    const missing = cohort(['data', 'inspect', join(dir, 'no-such.csv'), '--json']);
    expect(missing.code).toBe(2);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toMatch(/no file or folder .*no-such\.csv/);
    const reg = join(dir, 'registry');
    expect(json(['data', 'add', join(ROOT, 'data', 'wdbc.csv'), '--id', 'wdbc', '--label', 'diagnosis', '--peer', reg])).toBeTypeOf('object');
    expect(JSON.stringify(json(['data', 'list', '--peer', reg]))).toContain('wdbc');
    expect(json(['data', 'list', '--catalogue', '--peer', reg])).toBeTypeOf('object');
    expect(json(['data', 'remove', 'wdbc', '--peer', reg])).toBeTypeOf('object');
    const synth = join(dir, 'synth');
    expect(json(['data', 'synth', '--site', '0', '--cases', '1', '--out', synth, '--fov', '16,16,8'])).toBeTypeOf('object');
    const subject = join(synth, 's0-0000');
    expect(json(['data', 'inspect', join(subject, 'CT', 'ct.nii.gz')])).toBeTypeOf('object');
    expect(json(['data', 'radiomics', '--image', join(subject, 'PT', 'pet.nii.gz'), '--mask', join(subject, 'SEG', 'mask.nii.gz')])).toBeTypeOf('object');
  }, LONG);

  it('a tiny sim and a tiny local training (real ORT session)', () => {
    const sim = json<{ final?: unknown }>(['sim', join(ROOT, 'scenarios', 'wdbc-radiomics.json'), '--peers', '3', '--rounds', '2', '--no-baselines', '--learner', 'softmax']);
    expect(sim).toBeTypeOf('object');
    const train = json(['train', '--data', join(ROOT, 'data', 'wdbc.csv'), '--label', 'diagnosis', '--epochs', '2', '--threads', '1']);
    expect(train).toBeTypeOf('object');
  }, LONG);

  it('peer start (ready line), peer stop; then audit, audit --verify and store verify/backup on the stopped peer', async () => {
    expect(site).not.toBe('');
    // the daemon's --json is its ready line: one JSON document on stdout once it is up (its logs go to stderr)
    const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'peer', 'start', '--peer', site, '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    p.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    p.stderr.resume();
    const exited = new Promise<number | null>((done) => p.once('exit', (code) => done(code)));
    try {
      const until = Date.now() + 120_000;
      while (!stdout.includes('\n') && Date.now() < until && p.exitCode === null) await new Promise((r) => setTimeout(r, 250));
      expect(JSON.parse(stdout)).toMatchObject({ event: 'ready', name: 'site-a', dashboard: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/ui$/) });
      expect(json(['peer', 'stop', '--peer', site])).toMatchObject({ stopped: true, pid: p.pid });
    } finally {
      if (p.exitCode === null) p.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);   // nothing else on stdout while it ran and stopped

    const audit = json<{ offline: boolean; entries: { kind: string }[] }>(['audit', '--peer', site]);
    expect(audit.offline).toBe(true);
    expect(audit.entries.map((e) => e.kind)).toEqual(expect.arrayContaining(['start', 'stop']));
    expect(json(['audit', '--verify', '--peer', site])).toMatchObject({ intact: true });
    expect(json(['store', 'verify', '--peer', site])).toMatchObject({ ok: true });
    expect(json(['store', 'backup', '--peer', site, '--out', join(dir, 'backup')])).toBeTypeOf('object');
  }, LONG);
});
