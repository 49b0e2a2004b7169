/**
 * N real libp2p nodes on loopback, each with its own LevelDB store and audit log in a temp folder: the peer side of a daemon
 * without the daemon, for tests of what crosses the network (key setup, statistics exchange, masked averaging).
 * `useLocalPeers()` (called at the top of a test file) registers the afterAll that stops every node, closes every store and
 * removes the folders; the function it returns starts one fully connected group (src/net/local-consortium.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { connectAll, makeConsortium, startLocalNodes, type LocalConsortium } from '../../src/net/local-consortium.ts';
import type { CohortNode } from '../../src/net/node.ts';
import { AuditLog } from '../../src/store/audit.ts';
import { openStore, type Store } from '../../src/store/db.ts';

export interface LocalPeer {
  /** position in the group (the consortium's member order, not peer ID order) */
  readonly index: number;
  readonly id: string;
  readonly node: CohortNode;
  readonly store: Store;
  readonly audit: AuditLog;
  /** the raw identity key: what NetSecureSession derives its long-term pair keys from */
  readonly identitySeed: Uint8Array;
}

export interface LocalPeerGroup {
  readonly consortium: LocalConsortium;
  readonly peers: LocalPeer[];
  /** the peer IDs in group order */
  readonly ids: string[];
}

export function useLocalPeers(): (n: number, seed: number) => Promise<LocalPeerGroup> {
  const nodes: CohortNode[] = [];
  const stores: Store[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
    await Promise.all(stores.map((s) => s.close().catch(() => undefined)));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return async (n, seed) => {
    const consortium = await makeConsortium(n, seed);
    const started = await startLocalNodes(consortium);
    nodes.push(...started);
    await connectAll(started);
    const ids = started.map((x) => x.peerId.toString());
    const peers = await Promise.all(started.map(async (node, index): Promise<LocalPeer> => {
      const dir = mkdtempSync(join(tmpdir(), 'cohort-local-peer-'));
      dirs.push(dir);
      const store = await openStore(dir, { create: true });
      stores.push(store);
      const identitySeed = (consortium.identities[index]!.privateKey as unknown as { raw: Uint8Array }).raw;
      return { index, id: ids[index]!, node, store, audit: await AuditLog.open(store), identitySeed };
    }));
    return { consortium, peers, ids };
  };
}
