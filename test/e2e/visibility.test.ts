/**
 * Operator visibility on real peer daemons (issue 16.5): two example hospitals as separate processes on a private network (PSK).
 *   - /metrics answers with the admin token (Prometheus exposition) and refuses without it;
 *   - a member dialling with a wrong pre-shared key is logged at warn with its address, counted and audited (psk-mismatch);
 *   - a stranger (not on the roster) is refused, counted and audited in aggregate (not-on-roster), visible in /metrics;
 *   - a member removed from the roster logs an error and stops its scenarios; its reconnections are refused as 'removed'.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNetConfig } from '../../src/net/config.ts';
import { createIdentity, loadIdentity } from '../../src/net/identity.ts';
import { createCohortNode, type CohortNode } from '../../src/net/node.ts';
import { readRosterFile, signRoster } from '../../src/net/roster.ts';
import { readPsk, writeNewPsk } from '../../src/net/pnet.ts';
import type { AuditEntry } from '../../src/store/audit.ts';
import { client, log, provisionCluster, startDaemon, waitConnected, waitFor, wdbcManifest, type Cluster, disposeCluster } from './daemon-harness.ts';

const A = 0;
const B = 1;
const C = 2;
let c: Cluster;
const extra: CohortNode[] = [];

interface Refused { peer: string; channel: string; reason: string; count: number }

beforeAll(async () => {
  c = await provisionCluster();
  writeNewPsk(join(c.sites[A]!.dir, 'swarm.key'));
  writeFileSync(join(c.sites[B]!.dir, 'swarm.key'), readFileSync(join(c.sites[A]!.dir, 'swarm.key')), { mode: 0o600 });
  for (const i of [A, B]) {
    const cfg = JSON.parse(readFileSync(c.sites[i]!.config, 'utf8')) as { net: Record<string, unknown> };
    writeFileSync(c.sites[i]!.config, JSON.stringify({ ...cfg, net: { ...cfg.net, pskFile: 'swarm.key' } }, null, 2));
    startDaemon(c, i);
  }
  await waitConnected(c, [A, B]);
}, 150_000);

afterAll(async () => {
  for (const n of extra) await n.stop().catch(() => undefined);
  await disposeCluster(c);
}, 240_000);

/** An in-process node with `identity` (a member's or a stranger's) and `psk`, not a daemon. */
async function node(identity: Awaited<ReturnType<typeof createIdentity>>, psk: Uint8Array): Promise<CohortNode> {
  const n = await createCohortNode({ identity, roster: readRosterFile(join(c.sites[A]!.dir, 'roster.json')), psk,
    net: parseNetConfig({ listen: ['/ip4/127.0.0.1/tcp/0'], consortium: 'example', timeouts: { dialMs: 20_000 } }) });
  extra.push(n);
  return n;
}

const refused = async (i: number): Promise<Refused[]> => (await client(c, i).get<{ refused: Refused[] }>('/status')).refused;
const audited = async (i: number, reason: string): Promise<AuditEntry | undefined> =>
  (await client(c, i).get<{ entries: AuditEntry[] }>('/audit')).entries.find((e) => e.kind === 'refused' && e.detail?.includes(`"reason":"${reason}"`) && e.detail.includes('"channel":"connection"'));

async function metrics(i: number, token?: string): Promise<{ status: number; type: string; body: string }> {
  const { port } = JSON.parse(readFileSync(join(c.sites[i]!.dir, 'admin.json'), 'utf8')) as { port: number };
  const r = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() };
}
const token = (i: number): string => readFileSync(join(c.sites[i]!.dir, 'admin.token'), 'utf8').trim();

describe('operator visibility', () => {
  it('/metrics answers with the token and refuses without it', async () => {
    const no = await metrics(A);
    expect(no.status).toBe(401);
    expect(no.body).not.toMatch(/cohort_connections/);
    const wrong = await metrics(A, 'f'.repeat(64));
    expect(wrong.status).toBe(401);
    // the first heartbeat goes out a beat after start: wait for it rather than race it
    const ok = await waitFor('a heartbeat counted in /metrics', async () => {
      const r = await metrics(A, token(A));
      return r.status !== 200 || /^cohort_protocol_bytes_total\{protocol="gossip:heartbeat",direction="out"\} \d+/m.test(r.body) ? r : false;
    }, 30_000);
    expect(ok.status).toBe(200);
    expect(ok.type).toMatch(/text\/plain/);
    expect(ok.body).toMatch(/^cohort_connections [1-9]\d*$/m);
    expect(ok.body).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(ok.body).toMatch(/^cohort_protocol_bytes_total\{protocol="gossip:heartbeat",direction="out"\} \d+/m);
  }, 60_000);

  it('a wrong pre-shared key is logged at warn with the remote address, counted and audited', async () => {
    const keyFile = join(c.dir, 'other.key');
    writeNewPsk(keyFile);
    const intruder = await node(loadIdentity(join(c.sites[C]!.dir, 'peer.key')), readPsk(keyFile));
    await expect(intruder.dial(c.sites[A]!.addr)).rejects.toThrow();
    const line = await waitFor('warn line at site-a', async () => log(c, A).split('\n').find((l) => l.includes('different pre-shared key')), 30_000);
    const entry = JSON.parse(line) as { level: number; remote: string };
    expect(entry.level).toBe(40);
    expect(entry.remote).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+/);
    const r = await waitFor('psk refusal counted', async () => (await refused(A)).find((x) => x.channel === 'connection' && x.reason === 'psk-mismatch'), 30_000);
    expect(r.peer).toBe('/ip4/127.0.0.1');
    const e = await waitFor('psk refusal audited', () => audited(A, 'psk-mismatch'), 30_000);
    expect(JSON.parse(e.detail!).count).toBeGreaterThanOrEqual(1);
  }, 90_000);

  it('a stranger is refused, counted, audited in aggregate and visible in /metrics', async () => {
    const stranger = await node(await createIdentity(join(c.dir, 'stranger.key')), readPsk(join(c.sites[A]!.dir, 'swarm.key')));
    for (let k = 0; k < 3; k++) await stranger.dial(c.sites[A]!.addr).catch(() => undefined);
    const r = await waitFor('stranger refusal counted', async () => (await refused(A)).find((x) => x.peer === stranger.peerId.toString()), 30_000);
    expect(r).toMatchObject({ channel: 'connection', reason: 'not-on-roster' });
    const e = await waitFor('stranger refusal audited', () => audited(A, 'not-on-roster'), 30_000);
    expect(JSON.parse(e.detail!)).toMatchObject({ from: stranger.peerId.toString(), channel: 'connection', reason: 'not-on-roster' });
    // aggregated: one entry per sender and reason per heartbeat, not one per attempt
    const entries = (await client(c, A).get<{ entries: AuditEntry[] }>('/audit')).entries.filter((x) => x.kind === 'refused' && x.detail?.includes(stranger.peerId.toString()));
    expect(entries.reduce((a, x) => a + (JSON.parse(x.detail!) as { count: number }).count, 0)).toBeGreaterThanOrEqual(entries.length);
    const m = await metrics(A, token(A));
    expect(m.body).toMatch(/^cohort_refusals_total\{channel="connection",reason="not-on-roster"\} [1-9]/m);
  }, 90_000);

  it('a member removed from the roster logs an error and stops its scenarios; its reconnections are refused as removed', async () => {
    const id = (await client(c, A).post<{ id: string }>('/scenarios', { manifest: wdbcManifest({ name: 'removed-member', rounds: 40, roundMs: 1500, launch: { minPeers: 2 } }) })).id;
    await waitFor('site-b runs the scenario', async () => (await client(c, B).get<{ scenarios: { id: string; running: boolean; round?: number }[] }>('/status'))
      .scenarios.find((s) => s.id === id && s.running && (s.round ?? -1) >= 0), 120_000);
    // the admin (site-a's key) signs roster v2 without site-b; a member node on the private network spreads it
    const admin = loadIdentity(join(c.sites[A]!.dir, 'peer.key'));
    const v1 = readRosterFile(join(c.sites[A]!.dir, 'roster.json'));
    const v2 = await signRoster({ body: { ...v1.body, version: v1.body.version + 1, issuedAt: new Date().toISOString(), members: v1.body.members.filter((m) => m.peerId !== c.sites[B]!.peerId) }, signatures: [] }, admin.privateKey, admin.peerId);
    const member = await node(loadIdentity(join(c.sites[C]!.dir, 'peer.key')), readPsk(join(c.sites[A]!.dir, 'swarm.key')));
    // a loaded machine may time a dial out: retry, it is the roster update that is under test
    for (const i of [A, B]) await waitFor(`member connected to ${c.sites[i]!.name}`, async () => member.dial(c.sites[i]!.addr).then(() => true), 90_000);
    await waitFor('member in the roster mesh', async () => member.libp2p.services.pubsub.getSubscribers(member.topics.roster).length >= 2, 30_000);
    const r = await member.publishRoster(v2);
    expect(r.accepted).toBe(true);
    const line = await waitFor('error line at site-b', async () => log(c, B).split('\n').find((l) => l.includes('removed from the consortium roster')), 60_000);
    expect((JSON.parse(line) as { level: number }).level).toBe(50);
    await waitFor('site-b stopped its run', async () => !(await client(c, B).get<{ scenarios: { id: string; running: boolean }[] }>('/status')).scenarios.find((s) => s.id === id)?.running, 60_000);
    const removed = await waitFor('site-b refused as removed at site-a', async () => (await refused(A)).find((x) => x.peer === c.sites[B]!.peerId && x.reason === 'removed'), 60_000);
    expect(removed.channel).toBe('connection');
  }, 240_000);
});
