/**
 * The averaging transport over real libp2p: AveragingTransport (src/averaging/types.ts) on a CohortNode's `/cohort/model/1`
 * protocol (src/net/model-exchange.ts). The same averaging state machines that run in the simulator run here unchanged.
 *
 *   new Libp2pAveragingTransport(node, { members?, startedAt?, log? })
 *     self            this node's peer ID
 *     neighbours()    connected peers that take part (members filter; default every connected roster peer)
 *     peers()         the same set (peer sampling from the peerstore's live connections)
 *     send(to, msg)   encodeMessage(msg) as the body of one model push (header: scenario, round, layout hash, sha256); fire and forget
 *     onMessage(h)    decoded messages are queued and handled one at a time, in arrival order (the stream is acked at once)
 *     now()           ms since `startedAt` (the scenario's agreed start: rounds are r * roundMs from it on every peer)
 *     setTimer / clearTimer: wall-clock timers; computeDelay(): 0 (training already took real time)
 * One transport per node and scenario: it installs the node's model handler.
 *
 *   runOnLoopback({ algorithm, learners, node, settings, seed, secure? })   N real libp2p peers on 127.0.0.1 running one rule
 *                   (sim's real mode); `secure`: masked D-PSGD with each peer's own key setup over libp2p (net-session.ts), as daemons
 */
import { peerIdFromString } from '@libp2p/peer-id';
import type { PeerId as Libp2pPeerId } from '@libp2p/interface';
import { decodeMessage, encodeMessage } from '../averaging/message.ts';
import type { AveragingMessage, AveragingTransport, MaybePromise, PeerId } from '../averaging/types.ts';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import { createNode, type AlgorithmSettings } from '../averaging/factory.ts';
import type { AlgorithmName, AveragingNode, NodeConfig } from '../averaging/node.ts';
import type { LocalLearner } from '../averaging/types.ts';
import { Rng } from '../util/random.ts';
import { NetSecureSession } from '../averaging/secure/net-session.ts';
import { connectAll, makeConsortium, startLocalNodes } from './local-consortium.ts';
import { makeHeader } from './model-exchange.ts';
import type { CohortNode } from './node.ts';

const log = logger('net:averaging');

export interface AveragingTransportOptions {
  /** Peer IDs taking part in the scenario (approved peers); default: every connected peer. */
  readonly members?: () => readonly string[];
  /** Wall-clock ms of the scenario's round 0 (the same on every peer); default: now. */
  readonly startedAt?: number;
}

export class Libp2pAveragingTransport implements AveragingTransport {
  readonly self: PeerId;
  private handler: ((from: PeerId, msg: AveragingMessage) => MaybePromise) | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private nextTimer = 1;
  private startedAt: number;
  private closed = false;
  /** Messages that could not be delivered (peer down, refused): the algorithms treat them as lost. */
  sendFailures = 0;

  constructor(private readonly node: CohortNode, private readonly opts: AveragingTransportOptions = {}) {
    this.self = node.peerId.toString();
    this.startedAt = opts.startedAt ?? Date.now();
    node.models.onModel({
      receive: (header, bytes, from) => {
        let msg: AveragingMessage;
        try {
          msg = decodeMessage(bytes);
        } catch (e) {
          return { ok: false, reason: 'bad-header', detail: e instanceof CohortError ? e.message : String(e) };
        }
        if (msg.scenario !== header.scenarioId || msg.round !== header.round || msg.layoutHash !== header.layoutHash) {
          return { ok: false, reason: 'bad-header', detail: 'message and stream header disagree' };
        }
        this.enqueue(from.toString(), msg);
        return { ok: true };
      },
    });
  }

  private enqueue(from: PeerId, msg: AveragingMessage): void {
    this.queue = this.queue.then(async () => {
      if (this.closed || !this.handler) return;
      try {
        await this.handler(from, msg);
      } catch (e) {
        log.error({ err: e, from }, 'averaging handler failed');
      }
    });
  }

  neighbours(): readonly PeerId[] {
    const connected = this.node.libp2p.getPeers().map((p: Libp2pPeerId) => p.toString());
    const members = this.opts.members ? new Set(this.opts.members()) : undefined;
    return connected.filter((p) => p !== this.self && (!members || members.has(p))).sort();
  }

  peers(): readonly PeerId[] {
    return this.neighbours();
  }

  send(to: PeerId, msg: AveragingMessage): void {
    if (this.closed) return;
    const bytes = encodeMessage(msg);
    const header = makeHeader({
      scenarioId: msg.scenario, round: Math.max(0, msg.round), sender: this.self, layoutHash: msg.layoutHash, dtype: 'bytes',
      compression: msg.kind === 'model' ? msg.codec : 'none',
    }, bytes);
    this.node.models.send(peerIdFromString(to), header, bytes).then((ack) => {
      if (!ack.ok) { this.sendFailures++; log.debug({ to, reason: ack.reason }, 'averaging message refused'); }
    }, (e: unknown) => {
      this.sendFailures++;
      log.debug({ to, err: e instanceof Error ? e.message : String(e) }, 'averaging message not delivered');
    });
  }

  onMessage(handler: (from: PeerId, msg: AveragingMessage) => MaybePromise): void {
    this.handler = handler;
  }

  now(): number {
    return Date.now() - this.startedAt;
  }

  /** Moves round 0 to `startedAt` (wall-clock ms); only before any node on this transport has started (runOnLoopback's key setup). */
  reschedule(startedAt: number): void {
    this.startedAt = startedAt;
  }

  /** Timer callbacks run through the same queue as messages, so a peer's state machine sees one event at a time. */
  setTimer(ms: number, cb: () => MaybePromise): number {
    const id = this.nextTimer++;
    const t = setTimeout(() => {
      this.timers.delete(id);
      this.queue = this.queue.then(async () => {
        if (this.closed) return;
        try { await cb(); } catch (e) { log.error({ err: e }, 'averaging timer failed'); }
      });
    }, Math.max(0, ms));
    this.timers.set(id, t);
    return id;
  }

  clearTimer(id: number): void {
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
  }

  computeDelay(): number {
    return 0;
  }

  /** Stop timers and ignore further messages; waits for the event in progress. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await this.queue;
  }
}

// ---------------------------------------------------------------- the simulator's real-network mode

export interface LoopbackRunOptions {
  readonly algorithm: AlgorithmName;
  readonly learners: readonly LocalLearner[];
  readonly node: Omit<NodeConfig, 'seed'>;
  readonly settings?: AlgorithmSettings;
  readonly seed: number;
  /**
   * Secure (masked) D-PSGD: every peer runs a real peer's key setup over libp2p (NetSecureSession: signed ephemeral keys,
   * sealed Shamir shares to its holder set) before round 0, on the complete graph its transport sees.
   */
  readonly secure?: boolean;
}

export interface LoopbackRunResult {
  readonly nodes: readonly AveragingNode[];
  /** Secure runs: each peer's key-setup bytes (announcements, shares, acknowledgements) and refused setup messages. */
  readonly secureSetup?: { readonly bytesPerPeer: number; readonly refused: number; readonly wallMs: number };
  readonly estimates: Float32Array[];
  readonly sendFailures: number;
  readonly wallMs: number;
}

/**
 * The same averaging rules over N real libp2p peers on 127.0.0.1 (TCP, Noise, Yamux, roster gater, /cohort/model/1), in one
 * process: rounds run on the wall clock (keep roundMs small in tests). Used by `cohort sim --libp2p` and test/sim/libp2p.test.ts.
 */
export async function runOnLoopback(o: LoopbackRunOptions): Promise<LoopbackRunResult> {
  const started = Date.now();
  const consortium = await makeConsortium(o.learners.length, o.seed);
  const cohortNodes = await startLocalNodes(consortium);
  try {
    await connectAll(cohortNodes);
    // round 0 starts a little later on every peer alike: connection set-up work (identify, gossipsub) settles first
    const transports = cohortNodes.map((n) => new Libp2pAveragingTransport(n, { startedAt: Date.now() + 500 }));
    const secure = o.secure ? await secureSetup(o, consortium.identities.map((id) => id.privateKey.raw), transports) : undefined;
    const startedAt = Date.now() + 500;
    transports.forEach((t) => t.reschedule(startedAt));
    const seeds = new Rng(o.seed);
    const nodes = o.learners.map((l, i) => createNode(o.algorithm, secure?.wires[i] ?? transports[i]!, l, { ...o.node, seed: seeds.nextU32() },
      { ...o.settings, ...(secure ? { secure: secure.sessions[i]! } : {}) }));
    nodes.forEach((n) => n.start());
    // done when every node has passed its last round (a stalled peer skips rounds it is more than a round late for)
    const giveUpAt = startedAt + 3 * o.node.rounds * o.node.roundMs + 10_000;
    while (nodes.some((n) => !n.finished) && Date.now() < giveUpAt) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, Math.min(o.node.roundMs, 200)));
    secure?.sessions.forEach((s) => s.close());
    await Promise.all(transports.map((t) => t.close()));
    return {
      nodes,
      estimates: nodes.map((n) => n.estimate().slice()),
      sendFailures: transports.reduce((a, t) => a + t.sendFailures, 0),
      wallMs: Date.now() - started,
      ...(secure ? { secureSetup: {
        bytesPerPeer: secure.sessions.reduce((a, s) => a + s.setupBytes, 0) / secure.sessions.length,
        refused: secure.sessions.reduce((a, s) => a + s.refusedAnnouncements + s.refusedShares, 0),
        wallMs: secure.wallMs,
      } } : {}),
    };
  } finally {
    await Promise.all(cohortNodes.map((n) => n.stop()));
  }
}

/** Time every peer's key setup may take on loopback (one process does all peers' X25519 work: generous on a loaded machine). */
const LOOPBACK_SETUP_MS = 120_000;

/**
 * Each peer's real key setup (net-session.ts) over its own transport, all at once, before round 0 is scheduled: the complete
 * graph (what a full mesh's transports call neighbours), identities = the peers' libp2p keys. Rejects as a daemon's setup does.
 */
async function secureSetup(o: LoopbackRunOptions, identitySeeds: readonly Uint8Array[], transports: readonly Libp2pAveragingTransport[]) {
  if (o.algorithm !== 'dpsgd') {
    throw new CohortError('SIM_PRIVACY', `secure averaging over real peers runs D-PSGD, not "${o.algorithm}"`, 'use --algorithm dpsgd with --libp2p --secure');
  }
  const t0 = Date.now();
  const ids = transports.map((t) => t.self).sort();
  const graph = new Map(ids.map((p) => [p, ids.filter((q) => q !== p)]));
  const sessions = transports.map((t, i) => new NetSecureSession({
    scenario: o.node.scenario, layoutHash: o.node.layoutHash, identitySeed: identitySeeds[i]!, graph, deadlineMs: LOOPBACK_SETUP_MS,
    onRefused: (from, reason) => log.warn({ to: t.self, from, reason }, 'secure setup message refused'),
  }));
  const wires = sessions.map((s, i) => s.wrap(transports[i]!));
  sessions.forEach((s, i) => s.register(transports[i]!.self));
  await Promise.all(sessions.map((s) => s.setup()));
  return { sessions, wires, wallMs: Date.now() - t0 };
}
