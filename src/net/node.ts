/**
 * The Cohort libp2p node: TCP + Noise + Yamux (+ optional pnet), identify, ping, gossipsub (StrictSign), bootstrap, optional mDNS,
 * circuit relay v2 (dial through a relaying member; optionally serve as one), a roster-based connection gater, roster updates over
 * gossip, the model-exchange protocol and network metrics.
 *
 * API:
 *   createCohortNode({ identity, net, roster, psk?, rosterFile? }) -> CohortNode
 *   startNodeFromConfig(configFile)                                 -> CohortNode (reads key, roster and PSK from the config's paths)
 *   CohortNode { peerId, libp2p, roster: RosterStore, pubsub: CohortPubsub, models: ModelExchange, topics,
 *                multiaddrs(), dial(addr|peerId), connectMembers(), publishRoster(doc), metrics(), stop() }
 */
import '../util/polyfills.ts';
import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { fastNoise } from './noise-fast.ts';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { gossipsub, TopicValidatorResult, type GossipSub } from '@libp2p/gossipsub';
import { bootstrap } from '@libp2p/bootstrap';
import { mdns } from '@libp2p/mdns';
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { PeerId } from '@libp2p/interface';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import { loadPeerConfig, type NetConfig } from './config.ts';
import { rosterGater } from './gater.ts';
import { loadIdentity, type Identity } from './identity.ts';
import { NetMetrics, type NetMetricsSnapshot } from './metrics.ts';
import { ModelExchange } from './model-exchange.ts';
import { pnetProtector, readPsk } from './pnet.ts';
import { CohortPubsub, topics } from './pubsub.ts';
import { readRosterFile, RosterStore, type RosterDoc, type RosterUpdateResult } from './roster.ts';

const log = logger('net:node');

export type YamuxInit = NonNullable<Parameters<typeof yamux>[0]>;

export interface CohortNodeInit {
  readonly identity: Identity;
  readonly net: NetConfig;
  readonly roster: RosterDoc;
  /** pnet v1 key file contents; absent: no private network. */
  readonly psk?: Uint8Array;
  /** Persist accepted roster updates here. */
  readonly rosterFile?: string;
  /** Yamux tuning (benchmarks); defaults measured in bench/net.ts, see docs/network.md. */
  readonly yamux?: YamuxInit;
  /** Republish the current roster every N ms so that peers that were away catch up (0: never). */
  readonly rosterRepublishMs?: number;
}

export interface CohortNode {
  readonly peerId: PeerId;
  readonly libp2p: Libp2p<{ pubsub: GossipSub }>;
  readonly roster: RosterStore;
  readonly pubsub: CohortPubsub;
  readonly models: ModelExchange;
  readonly topics: ReturnType<typeof topics>;
  multiaddrs(): string[];
  dial(target: string | Multiaddr | PeerId): Promise<void>;
  /** Dial every roster member with known `addrs` that is not connected; resolves with how many connections were made. */
  connectMembers(): Promise<number>;
  /** Apply a newer signed roster locally and spread it over gossip. */
  publishRoster(doc: RosterDoc): Promise<RosterUpdateResult>;
  metrics(): NetMetricsSnapshot;
  /** Connections refused: by the gater (not on the roster, removed from it) or in the handshake after the PSK layer (wrong key). */
  onConnectionRefused(listener: (r: ConnectionRefusal) => void): void;
  stop(): Promise<void>;
}

export interface ConnectionRefusal {
  /** The remote's peer ID when known (gater), else its address without the port (a PSK mismatch happens before the ID is proven). */
  readonly peer: string;
  readonly reason: 'not-on-roster' | 'removed' | 'psk-mismatch';
  readonly where: string;
}

/** Measured on loopback (bench/net.ts): a larger yamux window keeps the pipe full across the Noise framing; see docs/network.md. */
export const DEFAULT_YAMUX: YamuxInit = {
  streamOptions: { initialStreamWindowSize: 256 * 1024, maxStreamWindowSize: 16 * 1024 * 1024 },
};

export async function createCohortNode(init: CohortNodeInit): Promise<CohortNode> {
  const { net } = init;
  const metrics = new NetMetrics();
  const rosterStore = new RosterStore(init.roster, init.rosterFile);
  const refusedListeners: ((r: ConnectionRefusal) => void)[] = [];
  const refused = (r: ConnectionRefusal): void => { for (const l of refusedListeners) l(r); };
  const removedPeers = new Set<string>();
  rosterStore.onChange((_next, _prev, removed) => { for (const p of removed) removedPeers.add(p); });

  const services = {
    identify: identify(),
    ping: ping(),
    pubsub: gossipsub({
      globalSignaturePolicy: 'StrictSign',
      allowPublishToZeroTopicPeers: true,
      emitSelf: false,
      // Our validator decides; never forward what it has not accepted.
      asyncValidation: false,
      // Only roster members connect (the gater), so gossipsub's Sybil guard against many peers on one IP only hurts:
      // it graylists legitimate peers behind one hospital NAT, or more than 10 peers on loopback.
      scoreParams: { IPColocationFactorWeight: 0 },
      runOnLimitedConnection: true,
    }),
    // Members only may reserve (gater), so relayed member connections need no data/time limit: a model can cross a relay.
    ...(net.relayServer ? { relay: circuitRelayServer({ reservations: { applyDefaultLimit: false, maxReservations: 256 } }) } : {}),
  };

  const libp2p: Libp2p<{ pubsub: GossipSub }> = await createLibp2p({
    privateKey: init.identity.privateKey,
    addresses: { listen: net.listen, announce: net.announce },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [fastNoise()], // noise() minus a copy per received message: noise-fast.ts
    streamMuxers: [yamux(init.yamux ?? DEFAULT_YAMUX)],
    ...(init.psk ? { connectionProtector: pnetProtector(init.psk, (addr) => {
      log.warn({ remote: addr }, 'connection refused: the remote has a different pre-shared key (PSK), or is not a Cohort peer');
      // the key mismatch comes before the remote's identity is proven: counted by address, without the port
      refused({ peer: addr.replace(/\/(tcp|udp)\/\d+.*$/, ''), where: 'pnet', reason: 'psk-mismatch' });
    }) } : {}),
    connectionGater: rosterGater(() => rosterStore.current, metrics, (peer, where) => refused({ peer, where, reason: removedPeers.has(peer) ? 'removed' : 'not-on-roster' })),
    // A stream's protocol negotiation gets as long as a stalled transfer (timeouts.idleMs, not libp2p's 10 s): on a loaded machine
    // the receiver of a 64 MiB pnet transfer took longer to negotiate libp2p's own ping stream, reset it, and the connection
    // monitor then aborted the whole connection with the transfer in it (seen with DEBUG logs at load ~27).
    connectionManager: { inboundConnectionThreshold: net.limits.inboundConnectionsPerHostPerSecond,
      inboundStreamProtocolNegotiationTimeout: net.timeouts.idleMs, outboundStreamProtocolNegotiationTimeout: net.timeouts.idleMs },
    // libp2p pings every connection each 10 s and, by default, aborts it when a ping takes over max(5 s, 1.2 x the average):
    // on a loaded machine a ping queued behind a 64 MiB model (or a busy receiving thread) takes longer, and the abort killed
    // the transfer with "The operation was aborted due to timeout" (seen at load ~28). A connection is not declared dead sooner
    // than a transfer on it would be by our own idle timeout (timeouts.idleMs); dead peers are still found, just not faster.
    connectionMonitor: { pingTimeout: { minTimeout: net.timeouts.idleMs, maxTimeout: Math.max(60_000, net.timeouts.idleMs) } },
    peerDiscovery: [...(net.bootstrap.length > 0 ? [bootstrap({ list: net.bootstrap })] : []), ...(net.mdns ? [mdns()] : [])],
    services,
  });

  metrics.connectionCount = () => libp2p.getConnections().length;
  libp2p.addEventListener('connection:open', () => metrics.connectionsOpened++);

  const pubsub = new CohortPubsub(libp2p.services.pubsub, () => rosterStore.current, { maxGossipBytes: net.limits.maxGossipBytes, metrics });
  const models = new ModelExchange(libp2p, { ...net.limits, ...net.timeouts, metrics });
  await models.start();
  const t = topics(rosterStore.current.consortium);

  wireRoster(libp2p, rosterStore, pubsub, t.roster);
  pubsub.subscribe(t.roster, () => undefined); // the guard applies updates; subscribing makes us relay them
  const republish = init.rosterRepublishMs ? setInterval(() => {
    pubsub.publish(t.roster, { type: 'roster', body: rosterStore.current.doc }).catch(() => undefined);
  }, init.rosterRepublishMs) : undefined;
  republish?.unref();

  log.info({ peer: libp2p.peerId.toString(), addrs: libp2p.getMultiaddrs().map(String), pnet: Boolean(init.psk) }, 'node started');

  return {
    peerId: libp2p.peerId,
    libp2p,
    roster: rosterStore,
    pubsub,
    models,
    topics: t,
    multiaddrs: () => libp2p.getMultiaddrs().map(String),
    async dial(target) {
      const addr = typeof target === 'string' ? multiaddr(target) : target;
      await libp2p.dial(addr, { signal: AbortSignal.timeout(net.timeouts.dialMs) });
    },
    async connectMembers() {
      const self = libp2p.peerId.toString();
      const todo = rosterStore.current.members.filter((m) => m.peerId !== self && (m.addrs?.length ?? 0) > 0
        && libp2p.getConnections().every((c) => c.remotePeer.toString() !== m.peerId));
      const results = await Promise.allSettled(todo.map((m) =>
        libp2p.dial(m.addrs!.map((a) => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${m.peerId}`)), { signal: AbortSignal.timeout(net.timeouts.dialMs) })));
      return results.filter((r) => r.status === 'fulfilled').length;
    },
    async publishRoster(doc) {
      const result = await rosterStore.update(doc);
      if (result.accepted) await pubsub.publish(t.roster, { type: 'roster', body: doc });
      return result;
    },
    metrics: () => metrics.snapshot(),
    onConnectionRefused: (l) => void refusedListeners.push(l),
    async stop() {
      clearInterval(republish);
      await libp2p.stop();
    },
  };
}

/** Roster updates arrive as gossip; a removed member is disconnected at once (the gater only sees new connections). */
function wireRoster(libp2p: Libp2p, store: RosterStore, pubsub: CohortPubsub, topic: string): void {
  pubsub.guard('roster', async (msg) => {
    const result = await store.update(msg.body);
    if (result.accepted) return TopicValidatorResult.Accept;
    if (result.reason === 'not-newer') return TopicValidatorResult.Ignore;
    log.warn({ from: msg.from.toString(), reason: result.reason, detail: result.detail, topic }, 'roster update rejected');
    return TopicValidatorResult.Reject;
  });
  store.onChange((next, _prev, removed) => {
    const self = libp2p.peerId.toString();
    const drop = next.has(self) ? removed : libp2p.getConnections().map((c) => c.remotePeer.toString());
    for (const id of new Set(drop)) {
      const conns = libp2p.getConnections().filter((c) => c.remotePeer.toString() === id);
      for (const c of conns) {
        // let gossipsub forward the roster first, then close
        setTimeout(() => c.close().catch(() => c.abort(new Error('removed from roster'))), 200).unref();
      }
    }
  });
}

/** Everything from the config file: identity, roster, optional PSK. */
export async function startNodeFromConfig(configFile: string, overrides: Partial<CohortNodeInit> = {}): Promise<CohortNode> {
  const cfg = loadPeerConfig(configFile);
  const identity = loadIdentity(cfg.net.keyFile);
  const roster = readRosterFile(cfg.net.rosterFile);
  if (!roster.body.members.some((m) => m.peerId === identity.peerId.toString())) {
    throw new CohortError('ROSTER_NOT_MEMBER', `this peer (${identity.peerId}) is not on the roster ${cfg.net.rosterFile}`, 'ask a consortium admin to run `cohort roster add` with your peer ID and send you the signed roster');
  }
  return createCohortNode({
    identity,
    net: cfg.net,
    roster,
    psk: cfg.net.pskFile ? readPsk(cfg.net.pskFile) : undefined,
    rosterFile: cfg.net.rosterFile,
    rosterRepublishMs: 60_000,
    ...overrides,
  });
}
