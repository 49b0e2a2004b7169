/**
 * AveragingTransport over the real network for one scenario: averaging messages travel as /cohort/model/1 transfers to the
 * scenario's participants; the round clock is wall time since the run's agreed start. Every send is written to the audit log
 * (to whom, what, size, sha256) before it leaves: in the round's tally, one `round` entry per round (src/store/audit.ts). Handlers run one at a time, in arrival order (the averaging rules rely on it).
 * The manifest's topology is drawn identically by every participant (sorted participant list, seed from the scenario id), so the
 * graph is symmetric without any coordination; time-varying graphs are redrawn every round.
 */
export type TopologySpec = { kind: 'complete' } | { kind: 'ring' } | { kind: 'random-regular'; degree: number } | { kind: 'time-varying'; degree: number }
  | { kind: 'expander' } | { kind: 'dumbbell' };

/** Neighbour lists over `n` sorted participants for `round` (only time-varying graphs depend on it). */
export function topologyGraph(t: TopologySpec, n: number, seed: number, round: number): number[][] {
  if (t.kind === 'ring') return ringGraph(n);
  if (t.kind === 'complete') return completeGraph(n);
  if (t.kind === 'dumbbell') return n >= 2 ? dumbbellGraph(n) : completeGraph(n);
  const k = Math.min(t.kind === 'expander' ? expanderDegree(n) : t.degree, n - 1);
  if (k >= n - 1 || (k * n) % 2 === 1) return completeGraph(n);   // no k-regular graph: fall back to everyone
  return randomRegularGraph(n, k, new Rng(t.kind === 'time-varying' ? seed ^ Math.imul(round + 1, 0x9e3779b1) : seed));
}
import { peerIdFromString } from '@libp2p/peer-id';
import { encodeMessage } from '../averaging/message.ts';
import { completeGraph, dumbbellGraph, expanderDegree, randomRegularGraph, ringGraph } from '../averaging/mixing.ts';
import { Rng } from '../util/random.ts';
import type { AveragingMessage, AveragingTransport, MaybePromise } from '../averaging/types.ts';
import type { CohortNode } from '../net/node.ts';
import { makeHeader } from '../net/model-exchange.ts';
import type { AuditLog } from '../store/audit.ts';
import { logger } from '../util/log.ts';

const log = logger('peer:transport');

/** Who takes part: in a given round (the topology is drawn over it) and in the run at all. */
export interface ParticipantSource {
  at(round: number): readonly string[];
  all(): readonly string[];
}

export class PeerTransport implements AveragingTransport {
  readonly self: string;
  bytesSent = 0;
  private handler: ((from: string, msg: AveragingMessage) => MaybePromise) | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private nextTimer = 1;
  private closed = false;

  /** Peers this transport refused to send to (not participants: a bug upstream, never a leak). */
  refusedSends = 0;

  constructor(
    private readonly node: CohortNode,
    private readonly audit: AuditLog,
    private readonly scenario: string,
    private readonly members: ParticipantSource,
    private readonly startAt: number,
    private readonly topology: TopologySpec = { kind: 'complete' },
    private readonly roundMs = 1000,
  ) {
    this.self = node.peerId.toString();
    this.seed = [...scenario].reduce((h, ch) => Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0, 2166136261);
  }

  private readonly seed: number;
  private graphKey = '';
  private graph: number[][] = [];
  private sorted: string[] = [];

  private connected(): Set<string> {
    return new Set(this.node.libp2p.getConnections().map((c) => c.remotePeer.toString()));
  }

  /**
   * This round's neighbours on the scenario's topology that are connected now. The graph is drawn over the round's sorted
   * participant set (late approvers join it from their admission round), identically on every participant.
   */
  neighbours(): readonly string[] {
    const round = Math.max(0, Math.floor(this.now() / this.roundMs));
    const sorted = [...this.members.at(round)].sort();
    const graphRound = this.topology.kind === 'time-varying' ? round : 0;
    const key = `${graphRound}|${sorted.join(',')}`;
    if (key !== this.graphKey) {
      this.graph = topologyGraph(this.topology, sorted.length, this.seed, graphRound);
      this.sorted = sorted;
      this.graphKey = key;
    }
    const me = this.sorted.indexOf(this.self);
    const connected = this.connected();
    return (this.graph[me] ?? []).map((j) => this.sorted[j]!).filter((p) => connected.has(p));
  }

  /**
   * Secure averaging (src/averaging/secure/net-session.ts): every round-0 participant's neighbours on the scenario's static graph,
   * connected or not (weights and masks are agreed on it once, at setup).
   */
  staticGraph(): Map<string, string[]> {
    const sorted = [...this.members.at(0)].sort();
    const graph = topologyGraph(this.topology, sorted.length, this.seed, 0);
    return new Map(sorted.map((p, i) => [p, (graph[i] ?? []).map((j) => sorted[j]!)]));
  }

  /** Every connected participant of the run (peer sampling for Epidemic Learning and gossip learning, and pulls). */
  peers(): readonly string[] {
    const connected = this.connected();
    return this.members.all().filter((p) => p !== this.self && connected.has(p));
  }

  send(to: string, msg: AveragingMessage): void {
    if (this.closed) return;
    // defence in depth: the rules only address participants; a model never goes to anyone else
    if (!this.members.all().includes(to)) {
      this.refusedSends++;
      log.warn({ to, kind: msg.kind }, 'refused to send a scenario message to a non-participant');
      return;
    }
    const bytes = encodeMessage(msg);
    const header = makeHeader({ scenarioId: this.scenario, round: Math.max(0, msg.round), sender: this.self, layoutHash: msg.layoutHash, dtype: 'bytes', compression: msg.kind === 'model' ? msg.codec : 'none' }, bytes);
    this.bytesSent += bytes.byteLength;
    const what = msg.kind === 'model' ? `round ${msg.round} model (${msg.codec}${msg.purpose === 'pull-reply' ? ', pull reply' : ''})` : `round ${msg.round} ${msg.kind}`;
    void this.audit.transfer({ kind: 'model-sent', scenario: this.scenario, round: Math.max(0, msg.round), peer: to, what, bytes: bytes.byteLength, sha256: header.sha256 })
      .then(() => this.node.models.send(peerIdFromString(to), header, bytes))
      .then((ack) => { if (!ack.ok) log.debug({ to, reason: ack.reason }, 'model refused'); })
      .catch((e: unknown) => log.debug({ to, err: (e as Error).message }, 'model send failed'));
  }

  onMessage(handler: (from: string, msg: AveragingMessage) => MaybePromise): void {
    this.handler = handler;
  }

  /** From the daemon's /cohort/model/1 handler. */
  deliver(from: string, msg: AveragingMessage): void {
    const h = this.handler;
    if (!h || this.closed) return;
    this.queue = this.queue.then(() => h(from, msg)).catch((e: unknown) => log.warn({ err: e }, 'averaging handler failed'));
  }

  now(): number {
    return Date.now() - this.startAt;
  }

  setTimer(ms: number, cb: () => MaybePromise): number {
    const id = this.nextTimer++;
    this.timers.set(id, setTimeout(() => {
      this.timers.delete(id);
      if (this.closed) return;
      this.queue = this.queue.then(() => cb()).catch((e: unknown) => log.warn({ err: e }, 'averaging timer failed'));
    }, Math.max(0, ms)));
    return id;
  }

  clearTimer(id: number): void {
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
  }

  computeDelay(): number {
    return 0;
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
