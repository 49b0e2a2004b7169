/**
 * `--json` on every command (issue 12.6): every leaf command of the command table (src/cli/commands/index.ts) accepts `--json`
 * and its help lists it; every command that can run without a running daemon, run as a real process on real files (a provisioned
 * peer directory, a roster, manifests, the WDBC CSV, a synthetic image site, a real daemon started and stopped for its store),
 * prints exactly one parseable JSON document on stdout, and nothing else there (logs and progress go to stderr).
 */
import { spawn } from 'node:child_process';
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

/** How many CLI processes run at once: each pays the CLI start-up (tsx), so independent commands overlap, but only a few on
 *  a shared 2-core machine. */
const POOL = 3;
let running = 0;
const waiting: (() => void)[] = [];

/** Runs `f` in one of the POOL slots; a finished command hands its slot straight to the next waiting one. */
async function inSlot<T>(f: () => Promise<T>): Promise<T> {
  if (running < POOL) running++;
  else await new Promise<void>((take) => waiting.push(take));
  try {
    return await f();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

/** Runs `cohort ARGS` from the sources (as the other CLI tests) and returns what it wrote where. */
function cohort(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return inSlot(() => new Promise((done, fail) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COHORT_LOG_LEVEL: 'info' } });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (x: string) => { stdout += x; });
    p.stderr.setEncoding('utf8').on('data', (x: string) => { stderr += x; });
    // a ceiling against a hung command, not a duration the test relies on
    const ceiling = setTimeout(() => p.kill('SIGKILL'), 180_000);
    p.once('error', (e) => { clearTimeout(ceiling); fail(e); });
    p.once('close', (code) => { clearTimeout(ceiling); done({ code: code ?? -1, stdout, stderr }); });
  }));
}

/** Runs with --json and returns the one JSON document of stdout; fails naming the command otherwise. */
async function json<T = Record<string, unknown>>(args: string[]): Promise<T> {
  const r = await cohort([...args, '--json']);
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

  // init and provision are independent; the roster steps edit one file, so they run in order
  it('init, peer provision, roster create/add/sign/verify/show/remove', async () => {
    const [init, sites] = await Promise.all([
      json<{ peerId: string; config: string }>(['init', '--dir', join(dir, 'admin'), '--name', 'admin-site']),
      json<{ name: string; dir: string }[]>(['peer', 'provision', '--dir', join(dir, 'peers')]),
    ]);
    expect(existsSync(init.config)).toBe(true);
    expect(sites.map((s) => s.name)).toEqual(['site-a', 'site-b', 'site-c', 'site-d']);
    site = sites[0]!.dir;
    const file = join(dir, 'roster.json');
    expect(await json(['roster', 'create', '--file', file, '--consortium', 'json-test'])).toMatchObject({ version: 1, members: 0 });
    expect(await json(['roster', 'add', '--file', file, '--peer-id', init.peerId, '--name', 'admin-site', '--roles', 'admin,researcher'])).toMatchObject({ members: 1 });
    expect(await json(['roster', 'sign', '--file', file, '--key', join(dir, 'admin', 'peer.key')])).toMatchObject({ ok: true });
    expect(await json(['roster', 'verify', '--file', file])).toMatchObject({ ok: true });
    expect((await json<{ verified: boolean }>(['roster', 'show', '--file', file])).verified).toBe(true);
    expect(await json(['roster', 'remove', '--file', file, '--peer-id', init.peerId])).toMatchObject({ members: 0 });
  }, LONG);

  // the next three read the provisioned site and write only their own files: they run side by side (the pool caps the processes)
  it.concurrent('scenario validate, new (printed and written), check', async () => {
    const manifest = join(ROOT, 'scenarios', 'wdbc-radiomics.json');
    const out = join(dir, 'new.json');
    const [validated, printed, written, checked] = await Promise.all([
      json(['scenario', 'validate', manifest]),
      json<{ manifest: { name: string } }>(['scenario', 'new', '--template', 'wdbc-radiomics', '--name', 'json-one']),
      json(['scenario', 'new', '--template', 'wdbc-radiomics', '--out', out]),
      json(['scenario', 'check', manifest, '--peer', site]),
    ]);
    expect(validated).toMatchObject({ valid: true, name: 'wdbc-radiomics' });
    expect(printed.manifest.name).toBe('json-one');
    expect(written).toMatchObject({ out });
    expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject({ name: 'wdbc-radiomics' });
    expect(checked).toHaveProperty('decision');
  }, LONG);

  it.concurrent('data inspect, add, list, remove, synth, radiomics', async () => {
    const inspect = async (): Promise<void> => {
      expect(await json(['data', 'inspect', join(ROOT, 'data', 'wdbc.csv')])).toBeTypeOf('object');
      // bad input: a clear error on stderr, nothing on stdout
      const missing = await cohort(['data', 'inspect', join(dir, 'no-such.csv'), '--json']);
      expect(missing.code).toBe(2);
      expect(missing.stdout).toBe('');
      expect(missing.stderr).toMatch(/no file or folder .*no-such\.csv/);
    };
    // add, list, remove edit one registry: in order
    const registry = async (): Promise<void> => {
      const reg = join(dir, 'registry');
      expect(await json(['data', 'add', join(ROOT, 'data', 'wdbc.csv'), '--id', 'wdbc', '--label', 'diagnosis', '--peer', reg])).toBeTypeOf('object');
      expect(JSON.stringify(await json(['data', 'list', '--peer', reg]))).toContain('wdbc');
      expect(await json(['data', 'list', '--catalogue', '--peer', reg])).toBeTypeOf('object');
      expect(await json(['data', 'remove', 'wdbc', '--peer', reg])).toBeTypeOf('object');
    };
    const images = async (): Promise<void> => {
      const synth = join(dir, 'synth');
      expect(await json(['data', 'synth', '--site', '0', '--cases', '1', '--out', synth, '--fov', '16,16,8'])).toBeTypeOf('object');
      const subject = join(synth, 's0-0000');
      const [ct, features] = await Promise.all([
        json(['data', 'inspect', join(subject, 'CT', 'ct.nii.gz')]),
        json(['data', 'radiomics', '--image', join(subject, 'PT', 'pet.nii.gz'), '--mask', join(subject, 'SEG', 'mask.nii.gz')]),
      ]);
      expect(ct).toBeTypeOf('object');
      expect(features).toBeTypeOf('object');
    };
    await Promise.all([inspect(), registry(), images()]);
  }, LONG);

  it.concurrent('a tiny sim and a tiny local training (real ORT session)', async () => {
    const [sim, train] = await Promise.all([
      json<{ final?: unknown }>(['sim', join(ROOT, 'scenarios', 'wdbc-radiomics.json'), '--peers', '3', '--rounds', '2', '--no-baselines', '--learner', 'softmax']),
      json(['train', '--data', join(ROOT, 'data', 'wdbc.csv'), '--label', 'diagnosis', '--epochs', '2', '--threads', '1']),
    ]);
    expect(sim).toBeTypeOf('object');
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
      expect(await json(['peer', 'stop', '--peer', site])).toMatchObject({ stopped: true, pid: p.pid });
    } finally {
      if (p.exitCode === null) p.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);   // nothing else on stdout while it ran and stopped

    const audit = await json<{ offline: boolean; entries: { kind: string }[] }>(['audit', '--peer', site]);
    expect(audit.offline).toBe(true);
    expect(audit.entries.map((e) => e.kind)).toEqual(expect.arrayContaining(['start', 'stop']));
    // audit, verify and backup open the same stopped store: one after the other
    expect(await json(['audit', '--verify', '--peer', site])).toMatchObject({ intact: true });
    expect(await json(['store', 'verify', '--peer', site])).toMatchObject({ ok: true });
    expect(await json(['store', 'backup', '--peer', site, '--out', join(dir, 'backup')])).toBeTypeOf('object');
  }, LONG);
});
