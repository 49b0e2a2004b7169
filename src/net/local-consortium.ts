/**
 * A consortium on loopback for tests, benchmarks and demos: seeded identities, a roster signed by the first admin,
 * and nodes that listen on 127.0.0.1 with random ports and are connected to each other.
 * API: makeConsortium(n, seed, opts) -> { identities, roster }, startLocalNodes(consortium, opts) -> CohortNode[], connectAll(nodes)
 */
import { Rng } from '../util/random.ts';
import { parseNetConfig, type NetConfigInput } from './config.ts';
import { identityFromSeed, type Identity } from './identity.ts';
import { createCohortNode, type CohortNode, type CohortNodeInit } from './node.ts';
import { newRosterBody, signRoster, type Role, type RosterDoc } from './roster.ts';

export interface LocalConsortium {
  readonly identities: Identity[];
  readonly roster: RosterDoc;
}

export async function makeConsortium(n: number, seed: number, opts: { consortium?: string; admins?: number; extra?: number } = {}): Promise<LocalConsortium & { outsiders: Identity[] }> {
  const rng = new Rng(seed);
  const all: Identity[] = [];
  for (let i = 0; i < n + (opts.extra ?? 0); i++) all.push(await identityFromSeed(rng));
  const identities = all.slice(0, n);
  const admins = Math.min(opts.admins ?? 1, n);
  const body = {
    ...newRosterBody(opts.consortium ?? 'test', 1),
    issuedAt: '2026-01-01T00:00:00.000Z',
    members: identities.map((id, i) => ({
      peerId: id.peerId.toString(),
      name: `hospital-${i}`,
      roles: (i < admins ? ['admin', 'data-provider'] : ['data-provider']) as Role[],
    })),
  };
  let roster: RosterDoc = { body, signatures: [] };
  roster = await signRoster(roster, identities[0]!.privateKey, identities[0]!.peerId);
  return { identities, roster, outsiders: all.slice(n) };
}

export async function startLocalNodes(
  c: LocalConsortium,
  opts: { net?: NetConfigInput; psk?: Uint8Array; only?: number[]; node?: Partial<CohortNodeInit> } = {},
): Promise<CohortNode[]> {
  // every peer shares 127.0.0.1, so libp2p's per-host inbound rate limit must not apply here
  const net = parseNetConfig({
    listen: ['/ip4/127.0.0.1/tcp/0'], consortium: c.roster.body.consortium, ...opts.net,
    limits: { inboundConnectionsPerHostPerSecond: 10_000, ...opts.net?.limits },
  });
  const which = opts.only ?? c.identities.map((_, i) => i);
  return Promise.all(which.map((i) => createCohortNode({ identity: c.identities[i]!, net, roster: c.roster, psk: opts.psk, ...opts.node })));
}

/** Full mesh: every node dials every later one. */
export async function connectAll(nodes: readonly CohortNode[]): Promise<void> {
  const dials: Promise<void>[] = [];
  for (let i = 0; i < nodes.length; i++) {
    for (let j = i + 1; j < nodes.length; j++) dials.push(nodes[i]!.dial(nodes[j]!.multiaddrs()[0]!));
  }
  await Promise.all(dials);
}

/** Wait until every node sees `topic` subscribed by all others (gossipsub needs the subscription exchange before publishing). */
export async function waitForMesh(nodes: readonly CohortNode[], topic: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = nodes.every((n) => n.libp2p.services.pubsub.getSubscribers(topic).length >= Math.min(nodes.length - 1, 1));
    if (ready) return;
    if (Date.now() > deadline) throw new Error(`mesh for ${topic} not formed in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
