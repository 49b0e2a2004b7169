// Roster signing and verification, identity files, config parsing and the `cohort init` / `cohort roster` commands (in process).
import { describe, expect, it, beforeEach } from 'vitest';
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { Rng } from '../../src/util/random.ts';
import { createIdentity, identityFromSeed, loadIdentity, type Identity } from '../../src/net/identity.ts';
import { newRosterBody, readRosterFile, Roster, RosterStore, signRoster, verifyRoster, type RosterDoc } from '../../src/net/roster.ts';
import { loadPeerConfig, parseNetConfig } from '../../src/net/config.ts';
import { registerInit } from '../../src/cli/commands/init.ts';
import { registerRoster } from '../../src/cli/commands/roster.ts';

async function ids(n: number, seed = 1): Promise<Identity[]> {
  const rng = new Rng(seed);
  const out: Identity[] = [];
  for (let i = 0; i < n; i++) out.push(await identityFromSeed(rng));
  return out;
}

function rosterOf(members: Identity[], admins: number, threshold: number, version = 1): RosterDoc {
  return {
    body: {
      ...newRosterBody('c1', threshold), version,
      members: members.map((m, i) => ({ peerId: m.peerId.toString(), name: `h${i}`, roles: i < admins ? ['admin'] : ['data-provider'] })),
    },
    signatures: [],
  };
}

const signBy = async (doc: RosterDoc, ...signers: Identity[]) => {
  for (const s of signers) doc = await signRoster(doc, s.privateKey, s.peerId);
  return doc;
};

describe('roster signatures', () => {
  it('needs threshold signatures from admins; non-admins, duplicates and tampering do not count', async () => {
    const p = await ids(4);
    const doc = rosterOf(p, 3, 2);
    expect((await verifyRoster(doc)).ok).toBe(false);
    expect((await verifyRoster(await signBy(doc, p[0]!))).reason).toBe('1 valid admin signature(s), 2 needed');
    expect((await verifyRoster(await signBy(doc, p[0]!, p[3]!))).ok).toBe(false); // p3 is no admin
    const two = await signBy(doc, p[0]!, p[2]!);
    expect(await verifyRoster(two)).toMatchObject({ ok: true, validSigners: [p[0]!.peerId.toString(), p[2]!.peerId.toString()] });
    const dup: RosterDoc = { ...two, signatures: [two.signatures[0]!, two.signatures[0]!] };
    expect((await verifyRoster(dup)).ok).toBe(false);
    const tampered: RosterDoc = { ...two, body: { ...two.body, members: two.body.members.slice(0, 3) } };
    expect((await verifyRoster(tampered)).ok).toBe(false);
    const r = new Roster(two);
    expect(r.has(p[3]!.peerId)).toBe(true);
    expect(r.roles(p[3]!.peerId.toString())).toEqual(['data-provider']);
    expect(r.admins).toHaveLength(3);
  });

  it('RosterStore takes only newer versions signed by the admins it already trusts', async () => {
    const [a, b, c] = await ids(3, 2);
    const store = new RosterStore(await signBy(rosterOf([a!, b!, c!], 1, 1), a!));
    const removed: string[][] = [];
    store.onChange((_n, _p, r) => removed.push(r));
    // an outsider cannot mint a roster that makes itself admin
    const coup = await signBy(rosterOf([c!, a!], 1, 1, 5), c!);
    expect(await store.update(coup)).toMatchObject({ accepted: false, reason: 'signatures' });
    expect(await store.update(await signBy(rosterOf([a!, b!, c!], 1, 1, 1), a!))).toMatchObject({ accepted: false, reason: 'not-newer' });
    expect(await store.update({ body: { nope: 1 }, signatures: [] })).toMatchObject({ accepted: false, reason: 'malformed' });
    const other = await signBy({ ...rosterOf([a!], 1, 1, 9), body: { ...rosterOf([a!], 1, 1, 9).body, consortium: 'c2' } }, a!);
    expect(await store.update(other)).toMatchObject({ accepted: false, reason: 'wrong-consortium' });
    const v2 = await signBy(rosterOf([a!, b!], 1, 1, 2), a!);
    expect(await store.update(v2)).toEqual({ accepted: true, removed: [c!.peerId.toString()], added: [] });
    expect(store.current.version).toBe(2);
    expect(removed).toEqual([[c!.peerId.toString()]]);
  });
});

describe('identity and config files', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'cohort-net-')); });

  it('stores the key with mode 0600, reloads the same peer ID, refuses a world-readable key and overwriting', async () => {
    const file = join(dir, 'peer.key');
    const id = await createIdentity(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(loadIdentity(file).peerId.toString()).toBe(id.peerId.toString());
    await expect(createIdentity(file)).rejects.toMatchObject({ code: 'IDENTITY_EXISTS' });
    chmodSync(file, 0o644);
    expect(() => loadIdentity(file)).toThrow(expect.objectContaining({ code: 'IDENTITY_MODE', hint: `run: chmod 600 ${file}` }));
  });

  it('names the bad field of a config and keeps sections of other layers', () => {
    expect(() => parseNetConfig({ listen: 'x' })).toThrow(/at "listen"/);
    expect(() => parseNetConfig({ limits: { maxGossipBytes: 5 * 1024 * 1024 } })).toThrow(/limits.maxGossipBytes/);
    const file = join(dir, 'cohort.json');
    writeFileSync(file, JSON.stringify({ name: 'A', net: { keyFile: 'k' }, approval: { auto: true } }));
    const cfg = loadPeerConfig(file);
    expect(cfg.net.keyFile).toBe(join(dir, 'k'));
    expect(cfg.net.limits.maxModelBytes).toBe(1024 * 1024 * 1024);
    expect(cfg['approval']).toEqual({ auto: true });
  });
});

describe('cohort init and cohort roster', () => {
  const run = async (...argv: string[]) => {
    const program = new Command().exitOverride();
    registerInit(program);
    registerRoster(program);
    await program.parseAsync(['node', 'cohort', ...argv]);
  };

  it('creates peers, builds a roster, signs it, and detects an unsigned edit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-cli-'));
    await run('init', '--dir', join(dir, 'a'), '--name', 'Hospital A', '--consortium', 'c1', '--psk');
    await run('init', '--dir', join(dir, 'b'), '--name', 'Hospital B');
    const a = loadIdentity(join(dir, 'a', 'peer.key'));
    const b = loadIdentity(join(dir, 'b', 'peer.key'));
    const cfg = loadPeerConfig(join(dir, 'a', 'cohort.json'));
    expect(cfg.name).toBe('Hospital A');
    expect(cfg.net.pskFile).toBe(join(dir, 'a', 'swarm.key'));
    expect(readFileSync(join(dir, 'a', 'swarm.key'), 'utf8')).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/);

    const rf = join(dir, 'roster.json');
    await run('roster', 'create', '--file', rf, '--consortium', 'c1');
    await run('roster', 'add', '--file', rf, '--peer', a.peerId.toString(), '--name', 'Hospital A', '--roles', 'admin,data-provider');
    await run('roster', 'add', '--file', rf, '--peer', b.peerId.toString(), '--name', 'Hospital B', '--roles', 'researcher');
    await expect(run('roster', 'sign', '--file', rf, '--key', join(dir, 'b', 'peer.key'))).rejects.toMatchObject({ code: 'ROSTER_NOT_ADMIN' });
    await run('roster', 'sign', '--file', rf, '--key', join(dir, 'a', 'peer.key'));
    await run('roster', 'verify', '--file', rf);
    const v1 = readRosterFile(rf);
    expect(v1.body.version).toBe(1);
    writeFileSync(join(dir, 'v1.json'), JSON.stringify(v1));

    await run('roster', 'remove', '--file', rf, '--peer', b.peerId.toString());
    expect(readRosterFile(rf).body.version).toBe(2);
    await expect(run('roster', 'verify', '--file', rf, '--trusted', join(dir, 'v1.json'))).rejects.toMatchObject({ code: 'ROSTER_UNVERIFIED' });
    await run('roster', 'sign', '--file', rf, '--key', join(dir, 'a', 'peer.key'));
    await run('roster', 'verify', '--file', rf, '--trusted', join(dir, 'v1.json'));
    await expect(run('roster', 'add', '--file', rf, '--peer', 'nonsense', '--name', 'x')).rejects.toMatchObject({ code: 'ROSTER_PEER_ID' });
    await expect(run('roster', 'add', '--file', rf, '--peer', b.peerId.toString(), '--name', 'x', '--roles', 'king')).rejects.toMatchObject({ code: 'ROSTER_ROLE' });
  });
});
