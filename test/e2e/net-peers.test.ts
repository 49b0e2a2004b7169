// Real libp2p peers on 127.0.0.1 in one process: gossip, 64 MiB models (plain and pnet), admission, roster updates.
import { createCipheriv } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey } from '@libp2p/pnet';
import { makeConsortium, startLocalNodes, connectAll, waitForMesh } from '../../src/net/local-consortium.ts';
import { makeHeader, sha256Hex, type ModelHeader } from '../../src/net/model-exchange.ts';
import { noisePatchState } from '../../src/net/noise-fast.ts';
import { tcpBatchState } from '../../src/net/tcp-writes.ts';
import { signRoster, type RosterDoc } from '../../src/net/roster.ts';
import type { CohortNode } from '../../src/net/node.ts';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(25);
  }
}

/**
 * Seeded incompressible bytes: an AES-128-CTR keystream (native). A word-by-word JavaScript RNG took 11 s for 64 MiB at load ~29
 * and blocked this process's event loop, which also runs the libp2p nodes: right after a dial, the receiving node's 10 s upgrade and
 * protocol-negotiation timers fired late and closed the connection ("Unexpected EOF ... while reading 0/1 bytes").
 */
function randomBytes(n: number, seed: number): Uint8Array {
  const key = Buffer.alloc(16);
  key.writeUInt32BE(seed >>> 0, 0);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const out = new Uint8Array(n);
  const chunk = Buffer.alloc(Math.min(n, 4 * MiB));
  for (let off = 0; off < n; off += chunk.length) out.set(cipher.update(chunk).subarray(0, Math.min(chunk.length, n - off)), off);
  return out;
}

function newPsk(): Uint8Array {
  const k = new Uint8Array(95);
  generateKey(k);
  return k;
}

const connected = (a: CohortNode, b: CohortNode) => a.libp2p.getConnections(b.peerId).length > 0;

describe('five peers', () => {
  let nodes: CohortNode[] = [];
  beforeAll(async () => {
    const c = await makeConsortium(5, 11);
    nodes = await startLocalNodes(c);
    await connectAll(nodes);
  });
  afterAll(async () => { await Promise.all(nodes.map((n) => n.stop())); });

  it('a gossip message reaches all', async () => {
    const topic = nodes[0]!.topics.announce;
    const got = new Map<number, unknown>();
    nodes.forEach((n, i) => n.pubsub.subscribe(topic, (m) => { got.set(i, m.body); }));
    await waitForMesh(nodes, topic);
    await sleep(1200); // one gossipsub heartbeat builds the mesh
    const res = await nodes[0]!.pubsub.publish(topic, { type: 'announce', body: { scenarioId: 's1', state: 'announced' } });
    expect(res.recipients).toBeGreaterThan(0);
    await until(() => got.size === 4, 'gossip at 4 peers');
    expect(got.get(4)).toEqual({ scenarioId: 's1', state: 'announced' });
    expect(got.has(0)).toBe(false); // not delivered to self
  });

  it('a 64 MiB model moves intact and the receiver keeps the bytes', async () => {
    const bytes = randomBytes(64 * MiB, 1);
    let received: { header: ModelHeader; hash: string } | undefined;
    nodes[3]!.models.onModel({ receive: (header, body) => { received = { header, hash: sha256Hex(body) }; } });
    const header = makeHeader({ scenarioId: 's1', round: 7, sender: nodes[1]!.peerId.toString(), layoutHash: 'mlp-v1', dtype: 'float32' }, bytes);
    const ack = await nodes[1]!.models.send(nodes[3]!.peerId, header, bytes);
    expect(ack).toEqual({ ok: true });
    expect(received?.hash).toBe(header.sha256);
    expect(received?.header.round).toBe(7);
    expect(noisePatchState()).toBe('yes'); // the received bytes went through fastNoise's decrypt (a newer noise would say 'no')
    expect(tcpBatchState()).toBe('yes'); // and the sender's TCP writes were batched (tcp-writes.ts)
    const m = nodes[3]!.metrics();
    expect(m.byProtocol['/cohort/model/1']?.bytesIn).toBe(64 * MiB);
    expect(m.byPeer[nodes[1]!.peerId.toString()]?.bytesIn).toBe(64 * MiB);
  });

  it('gossip over the size limit fails loudly', async () => {
    const big = 'x'.repeat(2 * MiB);
    await expect(nodes[0]!.pubsub.publish(nodes[0]!.topics.catalogue, { type: 'catalogue', body: { datasetId: 'd', kind: big } }))
      .rejects.toMatchObject({ code: 'GOSSIP_TOO_LARGE' });
  });
});

describe('private network (pnet)', () => {
  it('moves a 64 MiB model intact over pnet+Noise+Yamux; a wrong key cannot connect', async () => {
    const c = await makeConsortium(3, 12);
    const psk = newPsk();
    const [a, b] = await startLocalNodes(c, { psk, only: [0, 1] });
    const [stranger] = await startLocalNodes(c, { psk: newPsk(), only: [2] });
    try {
      const bytes = randomBytes(64 * MiB, 2);
      await a!.dial(b!.multiaddrs()[0]!);
      let hash = '';
      b!.models.onModel({ receive: (_h, body) => { hash = sha256Hex(body); } });
      const header = makeHeader({ scenarioId: 'p', round: 1, sender: a!.peerId.toString(), layoutHash: 'L', dtype: 'float32' }, bytes);
      expect(await a!.models.send(b!.peerId, header, bytes)).toEqual({ ok: true });
      expect(hash).toBe(header.sha256);

      await expect(stranger!.dial(a!.multiaddrs()[0]!)).rejects.toThrow();
      await expect(a!.dial(stranger!.multiaddrs()[0]!)).rejects.toThrow();
      await sleep(200);
      expect(connected(a!, stranger!)).toBe(false);
      expect(connected(stranger!, a!)).toBe(false);
    } finally {
      await Promise.all([a, b, stranger].map((n) => n!.stop()));
    }
  });
});

describe('admission by roster', () => {
  it('an outsider cannot connect in either direction', async () => {
    const c = await makeConsortium(2, 13, { extra: 1 });
    const outsider = c.outsiders[0]!;
    const members = await startLocalNodes(c);
    // the outsider runs with a roster that lists itself, so only the members' gaters stand in its way
    const own = await signRoster({ body: { ...c.roster.body, members: [...c.roster.body.members, { peerId: outsider.peerId.toString(), name: 'x', roles: ['admin'] }] }, signatures: [] }, outsider.privateKey, outsider.peerId);
    const [out] = await startLocalNodes({ identities: [outsider], roster: own });
    try {
      await out!.dial(members[0]!.multiaddrs()[0]!).catch(() => undefined); // may appear to succeed before the gater aborts it
      await expect(members[1]!.dial(out!.multiaddrs()[0]!)).rejects.toThrow();
      await sleep(500);
      expect(connected(members[0]!, out!)).toBe(false);
      expect(connected(members[1]!, out!)).toBe(false);
      expect(members[0]!.metrics().connectionsDenied + members[1]!.metrics().connectionsDenied).toBeGreaterThanOrEqual(2);
      // the model protocol cannot reach a member either
      await expect(out!.models.send(members[0]!.peerId, makeHeader({ scenarioId: 's', round: 0, sender: outsider.peerId.toString(), layoutHash: 'L', dtype: 'bytes' }, new Uint8Array(4)), new Uint8Array(4)))
        .rejects.toMatchObject({ code: expect.stringMatching(/MODEL_/) });
    } finally {
      await Promise.all([...members, out].map((n) => n!.stop()));
    }
  });
});

describe('connecting to members', () => {
  it('dials every member whose roster entry lists addresses', async () => {
    const c = await makeConsortium(3, 16);
    const nodes = await startLocalNodes(c);
    try {
      const body = { ...c.roster.body, version: 2, members: c.roster.body.members.map((m, i) => ({ ...m, addrs: [nodes[i]!.multiaddrs()[0]!.split('/p2p/')[0]!] })) };
      const doc = await signRoster({ body, signatures: [] }, c.identities[0]!.privateKey, c.identities[0]!.peerId);
      expect(await nodes[0]!.roster.update(doc)).toMatchObject({ accepted: true });
      expect(await nodes[0]!.connectMembers()).toBe(2);
      expect(connected(nodes[0]!, nodes[2]!)).toBe(true);
      expect(await nodes[0]!.connectMembers()).toBe(0); // already connected
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });
});

describe('roster updates over gossip', () => {
  async function setup(threshold: number) {
    const c = await makeConsortium(4, 14, { admins: 2 });
    // a roster with two admins and the given threshold, signed by both
    let base: RosterDoc = { body: { ...c.roster.body, threshold }, signatures: [] };
    base = await signRoster(base, c.identities[0]!.privateKey, c.identities[0]!.peerId);
    base = await signRoster(base, c.identities[1]!.privateKey, c.identities[1]!.peerId);
    const nodes = await startLocalNodes({ identities: c.identities, roster: base });
    await connectAll(nodes);
    await waitForMesh(nodes, nodes[0]!.topics.roster);
    await sleep(1200);
    return { c, base, nodes };
  }
  const without = (doc: RosterDoc, peer: string, version: number): RosterDoc =>
    ({ body: { ...doc.body, version, members: doc.body.members.filter((m) => m.peerId !== peer) }, signatures: [] });

  it('a validly signed removal spreads, replaces the roster everywhere and disconnects the member', async () => {
    const { c, base, nodes } = await setup(1);
    try {
      const victim = c.identities[3]!.peerId.toString();
      const next = await signRoster(without(base, victim, 2), c.identities[0]!.privateKey, c.identities[0]!.peerId);
      const r = await nodes[1]!.publishRoster(next);
      expect(r).toMatchObject({ accepted: true, removed: [victim] });
      await until(() => nodes.slice(0, 3).every((n) => n.roster.current.version === 2), 'roster v2 at all members');
      await until(() => nodes.slice(0, 3).every((n) => !connected(n, nodes[3]!)), 'victim disconnected');
      await nodes[3]!.dial(nodes[0]!.multiaddrs()[0]!).catch(() => undefined); // may look successful until the gater aborts it
      await sleep(500);
      expect(connected(nodes[0]!, nodes[3]!)).toBe(false);
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });

  it('too few or forged signatures are rejected and the old roster stays', async () => {
    const { c, base, nodes } = await setup(2);
    try {
      const victim = c.identities[3]!.peerId.toString();
      // one admin of two required
      const half = await signRoster(without(base, victim, 2), c.identities[0]!.privateKey, c.identities[0]!.peerId);
      expect(await nodes[0]!.publishRoster(half)).toMatchObject({ accepted: false, reason: 'signatures' });
      // forged: a non-admin signs twice under admin names, and a body altered after signing
      const forgedSig = await signRoster(without(base, victim, 3), c.identities[2]!.privateKey, c.identities[2]!.peerId);
      const forged: RosterDoc = { body: forgedSig.body, signatures: [{ peerId: c.identities[0]!.peerId.toString(), sig: forgedSig.signatures[0]!.sig }, { peerId: c.identities[1]!.peerId.toString(), sig: forgedSig.signatures[0]!.sig }] };
      const tampered: RosterDoc = { ...base, body: { ...base.body, version: 4 } };
      // inject straight into gossip, bypassing the sender's own check, to see the receivers' validators reject it
      for (const doc of [half, forged, tampered]) {
        const data = new TextEncoder().encode(JSON.stringify({ v: 1, type: 'roster', body: doc, sentAt: Date.now() }));
        await nodes[2]!.libp2p.services.pubsub.publish(nodes[2]!.topics.roster, data);
      }
      await until(() => nodes[0]!.metrics().rejections['gossip:guard-roster'] === 3, 'three rosters rejected at peer 0');
      for (const n of nodes) expect(n.roster.current.version).toBe(1);
      expect(connected(nodes[0]!, nodes[3]!)).toBe(true);
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });
});

describe('malformed gossip', () => {
  it('is dropped, counted and not forwarded', async () => {
    const c = await makeConsortium(3, 15);
    const [a, b, d] = await startLocalNodes(c);
    try {
      // a line: a - b - d, so anything d sees from a went through b's validator
      await a!.dial(b!.multiaddrs()[0]!);
      await b!.dial(d!.multiaddrs()[0]!);
      const topic = a!.topics.heartbeat;
      const seen: unknown[] = [];
      for (const n of [a!, b!, d!]) n.pubsub.subscribe(topic, (m) => { if (n === d) seen.push(m.body); });
      await waitForMesh([a!, b!, d!], topic);
      await sleep(1200);
      const raw = a!.libp2p.services.pubsub;
      await raw.publish(topic, new TextEncoder().encode('{not json'));
      await raw.publish(topic, new TextEncoder().encode(JSON.stringify({ v: 1, type: 'heartbeat', body: { load: 'high' }, sentAt: 1 })));
      await raw.publish(topic, new TextEncoder().encode(JSON.stringify({ v: 9, type: 'heartbeat', body: { name: 'a' }, sentAt: 1 })));
      await a!.pubsub.publish(topic, { type: 'heartbeat', body: { name: 'hospital-0', load: 0.5 } });
      await until(() => seen.length === 1, 'the valid heartbeat reached d');
      await sleep(300);
      expect(seen).toEqual([{ name: 'hospital-0', load: 0.5 }]);
      const rb = b!.metrics().rejections;
      expect(rb['gossip:not-json']).toBe(1);
      expect(rb['gossip:schema']).toBe(1);
      expect(rb['gossip:envelope']).toBe(1);
      expect(Object.keys(d!.metrics().rejections).filter((k) => k.startsWith('gossip:'))).toEqual([]);
    } finally {
      await Promise.all([a, b, d].map((n) => n!.stop()));
    }
  });
});
