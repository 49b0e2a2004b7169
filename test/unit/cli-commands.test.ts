/**
 * The command table (src/cli/commands/index.ts) and the compiled entry point (bin/cohort.js): every command is listed with the
 * description its module registers; a command loads only its own module, so that `cohort --help` and `cohort status` never load
 * libp2p, onnxruntime, LevelDB or the DICOM parser; bin/cohort.js without dist/ fails with a hint, not a stack trace.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { COMMANDS, registerAllCommands, registerCommands, requestedCommand } from '../../src/cli/commands/index.ts';

const run = promisify(execFile);
const HEAVY = ['node_modules/libp2p/', 'node_modules/onnxruntime-node/', 'node_modules/dcmjs/', 'node_modules/level/', 'node_modules/zod/', 'node_modules/@libp2p/'];

async function importsOf(args: string[]): Promise<{ stdout: string; urls: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-imports-'));
  const log = join(dir, 'imports.txt');
  try {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--import', './test/helpers/log-imports.mjs', 'src/cli/main.ts', ...args],
      { env: { ...process.env, COHORT_IMPORT_LOG: log } });
    return { stdout, urls: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('command table', () => {
  it('lists every registered command with the description its module gives', async () => {
    const program = new Command();
    await registerAllCommands(program);
    const registered = program.commands.map((c) => ({ name: c.name(), description: c.description() }));
    expect(registered).toEqual(COMMANDS.map((c) => ({ name: c.name, description: c.description })));
  });

  it('registers only the requested command; stubs for help and typos', async () => {
    const one = new Command();
    await registerCommands(one, ['status', '--json']);
    expect(one.commands.map((c) => c.name())).toEqual(['status']);
    expect(one.commands[0]!.options.map((o) => o.long)).toContain('--json');
    const all = new Command();
    await registerCommands(all, ['--help']);
    expect(all.commands.map((c) => c.name())).toEqual(COMMANDS.map((c) => c.name));
    expect(all.commands.every((c) => c.options.length === 0)).toBe(true);
    const help = new Command();
    await registerCommands(help, ['help', 'data']);
    expect(help.commands.map((c) => c.name())).toEqual(['data']);
    expect(help.commands[0]!.commands.map((c) => c.name())).toContain('inspect');
    expect(requestedCommand(['--version'])).toBeUndefined();
  });

  it('`cohort --help` and `cohort status --help` load none of the heavy packages', async () => {
    for (const args of [['--help'], ['status', '--help']]) {
      const { stdout, urls } = await importsOf(args);
      expect(stdout).toMatch(/Usage: cohort/);
      expect(urls.some((u) => u.includes('node_modules/commander/'))).toBe(true);
      for (const h of HEAVY) expect(urls.filter((u) => u.includes(h)), `${args.join(' ')} loads ${h}`).toEqual([]);
    }
  });

  it('`cohort data inspect --help` loads no reader; the full list of commands still parses', async () => {
    const { stdout, urls } = await importsOf(['data', 'inspect', '--help']);
    expect(stdout).toMatch(/Usage: cohort data inspect/);
    for (const h of HEAVY) expect(urls.filter((u) => u.includes(h))).toEqual([]);
  });
});

describe('bin/cohort.js', () => {
  it('without a compiled dist/ says how to build it (exit 2), not a stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-bin-'));
    try {
      mkdirSync(join(dir, 'bin'));
      copyFileSync('bin/cohort.js', join(dir, 'bin', 'cohort.js'));
      const e = await run(process.execPath, [join(dir, 'bin', 'cohort.js'), '--help']).then(() => undefined, (x: unknown) => x as { code: number; stderr: string });
      expect(e?.code).toBe(2);
      expect(e?.stderr).toMatch(/compiled command line is missing/);
      expect(e?.stderr).toMatch(/npm run build/);
      expect(e?.stderr).not.toMatch(/at .*\(/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
