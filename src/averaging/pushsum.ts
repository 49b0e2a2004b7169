/**
 * Push-sum (Kempe, Dobra, Gehrke 2003) with the gradient step of Stochastic Gradient Push (Assran et al. 2019).
 * Each peer holds (x_i, w_i) in Float64; the estimate is z_i = x_i / w_i. Every period, asynchronously (a random phase per peer):
 *   SGP step:  z' = LocalSteps(z_i);  x_i += w_i (z' - z_i)   (with w_i = 1 exactly SGP's x_i - eta g(z_i); the de-biased model moves by the local step)
 *   push:      choose `fanout` out-neighbours S; split (x_i, w_i) into |S|+1 equal shares, keep one, send one to each.
 *   receive:   x_i += x share, w_i += w share; acknowledge.
 * sum_i x_i and sum_i w_i are invariant, so z_i -> the exact (weighted) average on any strongly connected, time-varying directed graph.
 * No share is lost: each is kept until acknowledged, re-sent (same id; receivers drop duplicates) after ackTimeoutMs, and taken back
 * if its target has left the network. Sample weighting: w_i starts at n_i / mean(n).
 */
import { CohortError } from '../util/errors.ts';
import type { Vec } from './compression.ts';
import { AveragingNode, type NodeConfig } from './node.ts';
import type { AveragingTransport, LocalLearner, ModelMessage, PeerId } from './types.ts';

export interface PushSumOptions {
  /** Out-neighbours per push (default 1). */
  readonly fanout: number;
  /** Re-send an unacknowledged share after this long (default 2 rounds). */
  readonly ackTimeoutMs?: number;
}

interface Share {
  readonly to: PeerId;
  readonly x: Float64Array;
  readonly w: number;
  readonly round: number;
  sentAt: number;
}

export class PushSumNode extends AveragingNode {
  private xs: Float64Array;
  private w: number;
  private readonly pending = new Map<string, Share>();
  private readonly seen = new Set<string>();
  private counter = 0;
  private readonly phaseMs: number;

  constructor(t: AveragingTransport, learner: LocalLearner, cfg: NodeConfig, private readonly opts: PushSumOptions) {
    super('pushsum', t, learner, cfg);
    if (cfg.codec !== 'f64' && cfg.codec !== 'f32') {
      throw new CohortError('PUSHSUM_CODEC', `push-sum cannot use lossy compression "${cfg.codec}": it would break the invariant sums`,
        'use codec f64 (exact) or f32, or choose choco / dpsgd for compressed gossip');
    }
    this.w = this.sampleWeight();
    this.xs = Float64Array.from(this.x, (v) => v * this.w);
    this.phaseMs = this.rng.next() * cfg.roundMs * 0.5;
  }

  /** Push-sum mass (for tests of the invariant). */
  mass(): { x: Float64Array; w: number; pending: number } {
    return { x: this.xs, w: this.w, pending: this.pending.size };
  }

  /** Shares sent and not yet acknowledged (for mass accounting in tests and diagnostics). */
  unacknowledged(): { id: string; to: PeerId; x: Float64Array; w: number }[] {
    return [...this.pending].map(([id, s]) => ({ id, to: s.to, x: s.x, w: s.w }));
  }

  /** Whether this peer has added the share `id` to its mass. */
  hasReceived(id: string): boolean {
    return this.seen.has(id);
  }

  /** The de-biased estimate z = x / w, computed in Float64. */
  estimate64(): Float64Array {
    return Float64Array.from(this.xs, (v) => v / this.w);
  }

  override estimate(): Float32Array {
    return Float32Array.from(this.estimate64());
  }

  protected override phase(): number {
    return this.phaseMs;
  }

  protected acceptRound(r: number): 'ok' | 'unknown-round' {
    return this.inRange(r);
  }

  /** A returning peer keeps its own mass (pulling a model would break the invariant sums); it re-sends what is unacknowledged. */
  protected override onRejoin(): void {
    this.retryPending(true);
  }

  protected async runRound(round: number): Promise<void> {
    const epoch = this.epoch;
    let steps = 0;
    if (this.cfg.train) {
      const z = this.estimate();
      const r = await this.localTrain(z);
      steps = r.steps;
      for (let i = 0; i < z.length; i++) this.xs[i] = this.xs[i]! + this.w * (r.model[i]! - z[i]!);
    }
    this.t.setTimer(this.t.computeDelay(steps), () => { if (epoch === this.epoch) this.push(round); });
  }

  private push(round: number): void {
    this.retryPending(false);
    const targets = this.rng.sample(this.t.neighbours(), this.opts.fanout);
    const k = targets.length + 1;
    for (let i = 0; i < this.xs.length; i++) this.xs[i] = this.xs[i]! / k;
    this.w /= k;
    for (const to of targets) {
      const share: Share = { to, x: this.xs.slice(), w: this.w, round, sentAt: this.t.now() };
      const id = `${this.t.self}:${this.counter++}`;
      this.pending.set(id, share);
      this.sendShare(id, share);
    }
    this.stats.rounds++;
  }

  private sendShare(id: string, s: Share): void {
    this.send(s.to, { kind: 'model', ...this.header(s.round), codec: this.codec.name, payload: this.encode(s.x), weight: s.w, shareId: id, purpose: 'exchange' });
  }

  /** Re-send shares not acknowledged in time; take back those whose target has left. */
  private retryPending(all: boolean): void {
    const timeout = this.opts.ackTimeoutMs ?? 2 * this.cfg.roundMs;
    const live = new Set(this.t.peers());
    for (const [id, s] of this.pending) {
      if (!all && this.t.now() - s.sentAt < timeout) continue;
      if (live.has(s.to)) {
        s.sentAt = this.t.now();
        this.sendShare(id, s);
      } else {
        this.pending.delete(id);
        for (let i = 0; i < this.xs.length; i++) this.xs[i] = this.xs[i]! + s.x[i]!;
        this.w += s.w;
      }
    }
  }

  protected onModel(from: PeerId, msg: ModelMessage, v: Vec): void {
    const id = msg.shareId;
    if (id === undefined || msg.weight === undefined || !(msg.weight > 0)) return this.reject('malformed', from);
    this.send(from, { kind: 'ack', ...this.header(msg.round), shareId: id });
    if (this.seen.has(id)) return this.reject('duplicate', from);
    this.seen.add(id);
    for (let i = 0; i < this.xs.length; i++) this.xs[i] = this.xs[i]! + v[i]!;
    this.w += msg.weight;
  }

  protected override onAck(_from: PeerId, shareId: string): void {
    this.pending.delete(shareId);
  }
}
