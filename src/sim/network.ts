/**
 * A simulated network of N peers under the virtual clock: topology (complete, ring, random-regular, time-varying), links with
 * latency, per-peer uplink bandwidth (messages queue behind each other), message loss, stragglers (slower compute), and churn
 * (peers leave and come back). SimNetwork.transport(i) is peer i's AveragingTransport: the same interface libp2p implements.
 */
import type { AveragingMessage, AveragingTransport, MaybePromise, PeerId } from '../averaging/types.ts';
import { wireSize } from '../averaging/message.ts';
import { completeGraph, dumbbellGraph, expanderDegree, randomRegularGraph, ringGraph } from '../averaging/mixing.ts';
import { Rng } from '../util/random.ts';
import { CohortError } from '../util/errors.ts';
import { VirtualClock } from './clock.ts';

export type Topology = { kind: 'complete' } | { kind: 'ring' } | { kind: 'random-regular'; degree: number } | { kind: 'time-varying'; degree: number }
  /** A random d-regular graph with d ~ log n (mixing.ts expanderDegree); two cliques joined by one edge. */
  | { kind: 'expander' } | { kind: 'dumbbell' };

export interface LinkModel {
  /** One-way latency in ms. */
  readonly latencyMs: number;
  /** Uplink bandwidth per peer in bytes per ms (1e4 = 10 MB/s); Infinity for none. */
  readonly bandwidthBytesPerMs: number;
  /** Probability that a message never arrives (a connection reset). */
  readonly loss: number;
}

export interface NetworkOptions {
  readonly peers: number;
  readonly topology: Topology;
  readonly link: LinkModel;
  /** Virtual ms per local training step, and per-peer slowdown factors (stragglers > 1). */
  readonly stepMs: number;
  readonly slowdown?: readonly number[];
  /** Round length: time-varying topologies redraw their graph every round. */
  readonly roundMs: number;
  readonly seed: number;
}

export const peerName = (i: number): PeerId => `p${i}`;

export class SimNetwork {
  readonly clock = new VirtualClock();
  readonly online: boolean[];
  private readonly handlers: ((from: PeerId, msg: AveragingMessage) => MaybePromise)[] = [];
  private readonly uplinkFree: number[];
  private readonly lossRng: Rng[];
  private readonly fixedGraph: number[][] | null;
  private readonly graphCache = new Map<number, number[][]>();
  private readonly index = new Map<PeerId, number>();
  bytesOnWire = 0;
  messagesLost = 0;
  /** Exchange models scheduled for delivery and not delivered yet: delivery time by id, for inFlight(). */
  private readonly undelivered = new Map<number, number>();
  private deliveries = 0;

  constructor(readonly opts: NetworkOptions) {
    const n = opts.peers;
    if (!Number.isInteger(n) || n < 2) throw new CohortError('SIM_PEERS', `a simulated network needs at least 2 peers, got ${n}`, 'pass --peers 2 or more');
    this.online = new Array<boolean>(n).fill(true);
    this.uplinkFree = new Array<number>(n).fill(0);
    const root = new Rng(opts.seed ^ 0x5eed);
    this.lossRng = Array.from({ length: n }, () => root.fork());
    for (let i = 0; i < n; i++) this.index.set(peerName(i), i);
    this.fixedGraph = this.buildGraph(opts.topology, root.fork());
  }

  private buildGraph(t: Topology, rng: Rng): number[][] | null {
    const n = this.opts.peers;
    if (t.kind === 'complete') return completeGraph(n);
    if (t.kind === 'ring') return ringGraph(n);
    if (t.kind === 'random-regular') return randomRegularGraph(n, regularDegree(n, t.degree), rng);
    if (t.kind === 'expander') return randomRegularGraph(n, regularDegree(n, expanderDegree(n)), rng);
    if (t.kind === 'dumbbell') return dumbbellGraph(n);
    return null;
  }

  /** The topology's neighbours of peer i now (before filtering by who is online). */
  graphNeighbours(i: number): readonly number[] {
    if (this.fixedGraph) return this.fixedGraph[i]!;
    const t = this.opts.topology as { kind: 'time-varying'; degree: number };
    const round = Math.floor(this.clock.now() / this.opts.roundMs + 1e-9);
    let g = this.graphCache.get(round);
    if (!g) {
      g = randomRegularGraph(this.opts.peers, regularDegree(this.opts.peers, t.degree), new Rng((this.opts.seed * 7919 + round) >>> 0));
      this.graphCache.clear();
      this.graphCache.set(round, g);
    }
    return g[i]!;
  }

  transport(i: number): AveragingTransport {
    const self = peerName(i);
    return {
      self,
      neighbours: () => this.graphNeighbours(i).filter((j) => this.online[j]).map(peerName),
      peers: () => this.online.flatMap((on, j) => (on && j !== i ? [peerName(j)] : [])),
      send: (to, msg) => this.send(i, to, msg),
      onMessage: (h) => { this.handlers[i] = h; },
      now: () => this.clock.now(),
      setTimer: (ms, cb) => {
        const ev = this.clock.schedule(ms, i, i, cb);
        return ev.seq;
      },
      clearTimer: () => { /* rounds guard themselves with an epoch counter; nothing to cancel */ },
      computeDelay: (steps) => steps * this.opts.stepMs * (this.opts.slowdown?.[i] ?? 1),
    };
  }

  private send(from: number, to: PeerId, msg: AveragingMessage): void {
    const j = this.index.get(to);
    if (j === undefined) return;
    const bytes = wireSize(msg);
    this.bytesOnWire += bytes;
    const now = this.clock.now();
    const start = Math.max(now, this.uplinkFree[from]!);
    const done = start + bytes / this.opts.link.bandwidthBytesPerMs;
    this.uplinkFree[from] = done;
    if (this.lossRng[from]!.next() < this.opts.link.loss) { this.messagesLost++; return; }
    const id = this.deliveries++;
    const ev = this.clock.schedule(done + this.opts.link.latencyMs - now, from, j, () => {
      this.undelivered.delete(id);
      return this.handlers[j]?.(peerName(from), msg);
    });
    if (msg.kind === 'model' && msg.purpose !== 'pull-reply') this.undelivered.set(id, ev.time);
  }

  /**
   * Exchange models still on the wire now (sent, not lost, landing later): at the end of a run, those that missed their deadline and
   * had not landed yet. Deliveries already due but never run (their target was offline) are forgotten here.
   */
  inFlight(): number {
    const now = this.clock.now();
    let n = 0;
    for (const [id, time] of this.undelivered) {
      if (time > now) n++;
      else this.undelivered.delete(id);
    }
    return n;
  }

  /** Run a callback at an absolute virtual time, as the simulator (churn, probes). */
  at(timeMs: number, owner: number, run: () => void | Promise<void>): void {
    this.clock.schedule(timeMs - this.clock.now(), owner, -1, run);
  }
}

function regularDegree(n: number, k: number): number {
  let d = Math.min(k, n - 1);
  if ((d * n) % 2 === 1) d--;
  return Math.max(1, d);
}
