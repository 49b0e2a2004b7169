/**
 * The dashboard's view of the network (src/peer/topology.ts): own links and heard links merge into one edge per pair of roster
 * members; stale heartbeats and non-members are left out; the heartbeat's `links` are schema-bounded; the transfer ledger
 * reads model bytes per peer from a real audit log (LevelDB) incrementally, round tallies included.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeGossip, MAX_HEARTBEAT_LINKS } from '../../src/net/pubsub.ts';
import { networkEdges, ownLinks, TransferLedger } from '../../src/peer/topology.ts';
import { AuditLog } from '../../src/store/audit.ts';
import { openStore, type Store } from '../../src/store/db.ts';

const [A, B, C, D, X] = ['peer-a', 'peer-b', 'peer-c', 'peer-d', 'outsider'];
const members = new Set([A, B, C, D]);
const traffic = (bytesOut: number, bytesIn: number) => ({ bytesOut, bytesIn, messagesOut: 1, messagesIn: 1 });

describe('own links', () => {
  it('lists connected roster members once, with the counters\' bytes; never itself nor an outsider', () => {
    const links = ownLinks([B, B, C, X, A], members, { [B]: traffic(10, 20) }, A);
    expect(links).toEqual([{ peer: B, bytesOut: 10, bytesIn: 20 }, { peer: C, bytesOut: 0, bytesIn: 0 }]);
  });
  it('is capped at the heartbeat bound', () => {
    const many = Array.from({ length: MAX_HEARTBEAT_LINKS + 50 }, (_, i) => `m${i}`);
    expect(ownLinks(many, new Set(many), {}, 'self')).toHaveLength(MAX_HEARTBEAT_LINKS);
  });
});

describe('network edges', () => {
  const now = 1_000_000;
  it('merges own and heard links into one edge per pair, marks who saw it, keeps the larger byte counts per direction', () => {
    const heard = new Map([
      [B, { at: now - 1000, links: [{ peer: A, bytesOut: 5, bytesIn: 7 }, { peer: C, bytesOut: 100, bytesIn: 40 }] }],
      [C, { at: now - 1000, links: [{ peer: B, bytesOut: 50, bytesIn: 90 }, { peer: X, bytesOut: 1, bytesIn: 1 }] }],
    ]);
    const edges = networkEdges(A, [{ peer: B, bytesOut: 7, bytesIn: 3 }], heard, members, now, 30_000);
    expect(edges).toHaveLength(2);
    const ab = edges.find((e) => [e.from, e.to].sort().join() === [A, B].join())!;
    expect(ab).toMatchObject({ from: A, to: B, seen: 'self', reportedBy: [A, B], bytesOut: 7, bytesIn: 5 });
    const bc = edges.find((e) => [e.from, e.to].sort().join() === [B, C].join())!;
    // B -> C: B says 100 out, C says 90 in; C -> B: B says 40 in, C says 50 out
    expect(bc).toMatchObject({ from: B, to: C, seen: 'heard', reportedBy: [B, C], bytesOut: 100, bytesIn: 50 });
  });
  it('leaves out stale heartbeats, outsiders as reporters or ends, and self-loops', () => {
    const heard = new Map([
      [B, { at: now - 60_000, links: [{ peer: C }] }],
      [X, { at: now, links: [{ peer: C }] }],
      [D, { at: now, links: [{ peer: D }, { peer: X }] }],
    ]);
    expect(networkEdges(A, [], heard, members, now, 30_000)).toEqual([]);
  });
});

describe('heartbeat links schema', () => {
  const envelope = (links: unknown) => new TextEncoder().encode(JSON.stringify({ v: 1, type: 'heartbeat', body: { name: 'site-a', links }, sentAt: 1 }));
  it('accepts a bounded list of {peer, bytesOut, bytesIn}', () => {
    expect(decodeGossip(envelope([{ peer: B, bytesOut: 1, bytesIn: 2 }])).ok).toBe(true);
  });
  it('refuses too many links, unknown fields and negative or fractional byte counts', () => {
    expect(decodeGossip(envelope(Array.from({ length: MAX_HEARTBEAT_LINKS + 1 }, (_, i) => ({ peer: `p${i}` }))))).toEqual({ ok: false, reason: 'schema' });
    expect(decodeGossip(envelope([{ peer: B, extra: '<script>' }]))).toEqual({ ok: false, reason: 'schema' });
    expect(decodeGossip(envelope([{ peer: B, bytesOut: -1 }]))).toEqual({ ok: false, reason: 'schema' });
    expect(decodeGossip(envelope([{ peer: B, bytesIn: 1.5 }]))).toEqual({ ok: false, reason: 'schema' });
    expect(decodeGossip(envelope([{ peer: '' }]))).toEqual({ ok: false, reason: 'schema' });
  });
});

describe('transfer ledger over a real audit log', () => {
  let dir = '';
  let store: Store | undefined;
  afterEach(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sums model bytes per peer from single entries and round tallies, reading only what is new', async () => {
    dir = mkdtempSync(join(tmpdir(), 'cohort-topology-'));
    store = await openStore(dir, { create: true });
    const audit = await AuditLog.open(store);
    let reads = 0;
    const ledger = new TransferLedger(async function* (since) { for await (const e of audit.entries({ since })) { reads++; yield e; } });
    expect((await ledger.totals()).size).toBe(0);

    await audit.append({ kind: 'model-sent', to: B, what: 'model', scenario: 's', bytes: 1000, sha256: 'x' });
    await audit.transfer({ kind: 'model-sent', scenario: 's', round: 1, peer: B, what: 'round 1', bytes: 300, sha256: 'y' });
    await audit.transfer({ kind: 'model-received', scenario: 's', round: 1, peer: C, what: 'round 1', bytes: 200, sha256: 'z' });
    await audit.flush();   // closes the round tally: one `round` entry listing both transfers
    const t = await ledger.totals();
    expect(t.get(B)).toEqual({ modelBytesSent: 1300, modelBytesReceived: 0, modelsSent: 2, modelsReceived: 0 });
    expect(t.get(C)).toEqual({ modelBytesSent: 0, modelBytesReceived: 200, modelsSent: 0, modelsReceived: 1 });

    const before = reads;
    await audit.append({ kind: 'model-sent', to: C, what: 'model', scenario: 's', bytes: 5, sha256: 'w' });
    expect((await ledger.totals()).get(C)?.modelBytesSent).toBe(5);
    expect(reads - before).toBe(1);   // only the new entry was read
  });
});
