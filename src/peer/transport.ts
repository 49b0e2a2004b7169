/**
 * AveragingTransport over the real network for one scenario: averaging messages travel as /cohort/model/1 transfers to the
 * scenario's participants; the round clock is wall time since the run's agreed start. Every send is written to the audit log
 * (to whom, what, size, sha256) before it leaves. Handlers run one at a time, in arrival order (the averaging rules rely on it).
 * The manifest's topology is drawn identically by every participant (sorted participant list, seed from the scenario id), so the
 * graph is symmetric without any coordination; time-varying graphs are redrawn every round.
 */
export type TopologySpec = { kind: 'complete' } | { kind: 'ring' } | { kind: 'random-regular'; degree: number } | { kind: 'time-varying'; degree: number };

/** Neighbour lists over `n` sorted participants for `round` (only time-varying graphs depend on it). */
export function topologyGraph(t: TopologySpec, n: number, seed: number, round: number): number[][] {
  if (t.kind === 'ring') return ringGraph(n);
  if (t.kind === 'complete') return completeGraph(n);
  const k = Math.min(t.degree, n - 1);
  if (k >= n - 1 || (k * n) % 2 === 1) return completeGraph(n);   // no k-regular graph: fall back to everyone
  return randomRegularGraph(n, k, new Rng(t.kind === 'time-varying' ? seed ^ Math.imul(round + 1, 0x9e3779b1) : seed));
}
import { peerIdFromString } from '@libp2p/peer-id';
import { encodeMessage } from '../averaging/message.ts';
import { completeGraph, randomRegularGraph, ringGraph } from '../averaging/mixing.ts';
import { Rng } from '../util/random.ts';
import type { AveragingMessage, AveragingTransport, MaybePromise } from '../averaging/types.ts';
import type { CohortNode } from '../net/node.ts';
import { makeHeader } from '../net/model-exchange.ts';
import type { AuditLog } from '../store/audit.ts';
import { logger } from '../util/log.ts';

const log = logger('peer:transport');

export class PeerTransport implements AveragingTransport {
  readonly self: string;
  bytesSent = 0;
  private handler: ((from: string, msg: AveragingMessage) => MaybePromise) | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private nextTimer = 1;
  private closed = false;

  constructor(
    private readonly node: CohortNode,
    private readonly audit: AuditLog,
    private readonly scenario: string,
    private readonly participants: readonly string[],
    private readonly startAt: number,
    private readonly topology: TopologySpec = { kind: 'complete' },
    private readonly roundMs = 1000,
  ) {
    this.self = node.peerId.toString();
    this.sorted = [...participants].sort();
    this.seed = [...scenario].reduce((h, ch) => Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0, 2166136261);
  }

  private readonly sorted: string[];
  private readonly seed: number;
  private graphRound = -1;
  private graph: number[][] = [];

  private connected(): Set<string> {
    return new Set(this.node.libp2p.getConnections().map((c) => c.remotePeer.toString()));
  }

  /** This round's neighbours on the scenario's topology that are connected now. */
  neighbours(): readonly string[] {
    const round = this.topology.kind === 'time-varying' ? Math.max(0, Math.floor(this.now() / this.roundMs)) : 0;
    if (round !== this.graphRound || this.graph.length === 0) {
      this.graph = topologyGraph(this.topology, this.sorted.length, this.seed, round);
      this.graphRound = round;
    }
    const me = this.sorted.indexOf(this.self);
    const connected = this.connected();
    return (this.graph[me] ?? []).map((j) => this.sorted[j]!).filter((p) => connected.has(p));
  }

  /** Every connected participant (peer sampling for Epidemic Learning and gossip learning, and pulls). */
  peers(): readonly string[] {
    const connected = this.connected();
    return this.participants.filter((p) => p !== this.self && connected.has(p));
  }

  send(to: string, msg: AveragingMessage): void {
    if (this.closed) return;
    const bytes = encodeMessage(msg);
    const header = makeHeader({ scenarioId: this.scenario, round: Math.max(0, msg.round), sender: this.self, layoutHash: msg.layoutHash, dtype: 'bytes', compression: msg.kind === 'model' ? msg.codec : 'none' }, bytes);
    this.bytesSent += bytes.byteLength;
    const what = msg.kind === 'model' ? `round ${msg.round} model (${msg.codec}${msg.purpose === 'pull-reply' ? ', pull reply' : ''})` : `round ${msg.round} ${msg.kind}`;
    void this.audit.append({ kind: 'model-sent', to, what, scenario: this.scenario, bytes: bytes.byteLength, sha256: header.sha256 })
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
