/** `cohort roster` speaks --json like every command, and names a member with --peer-id (--peer, its old spelling, still works). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { registerInit } from '../../src/cli/commands/init.ts';
import { registerRoster } from '../../src/cli/commands/roster.ts';
import { loadIdentity } from '../../src/net/identity.ts';
import { readRosterFile } from '../../src/net/roster.ts';

const dir = mkdtempSync(join(tmpdir(), 'cohort-roster-json-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(...argv: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerInit(program);
  registerRoster(program);
  const out: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => { out.push(String(s)); return true; });
  try { await program.parseAsync(['node', 'cohort', ...argv]); } finally { spy.mockRestore(); }
  return out.join('');
}

describe('cohort roster --json and --peer-id', () => {
  it('create, add, remove and sign print one JSON document each', async () => {
    await run('init', '--dir', join(dir, 'a'), '--name', 'A', '--listen', '/ip4/127.0.0.1/tcp/0');
    const a = loadIdentity(join(dir, 'a', 'peer.key')).peerId.toString();
    const rf = join(dir, 'roster.json');
    expect(JSON.parse(await run('roster', 'create', '--file', rf, '--consortium', 'c1', '--json'))).toEqual({ file: rf, version: 1, threshold: 1, members: 0 });
    expect(JSON.parse(await run('roster', 'add', '--file', rf, '--peer-id', a, '--name', 'A', '--roles', 'admin', '--json'))).toMatchObject({ members: 1, signed: false });
    expect(JSON.parse(await run('roster', 'add', '--file', rf, '--peer', a, '--name', 'A2', '--roles', 'admin,researcher', '--json'))).toMatchObject({ members: 1 });
    expect(readRosterFile(rf).body.members[0]?.name).toBe('A2');
    expect(JSON.parse(await run('roster', 'sign', '--file', rf, '--key', join(dir, 'a', 'peer.key'), '--json'))).toMatchObject({ signedBy: a, ok: true, signatures: 1, needed: 1 });
    await expect(run('roster', 'remove', '--file', rf, '--json')).rejects.toMatchObject({ code: 'CLI_INVALID' });
    expect(JSON.parse(await run('roster', 'remove', '--file', rf, '--peer-id', a, '--json'))).toMatchObject({ members: 0, version: 2 });
  });
});
