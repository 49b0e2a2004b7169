/**
 * D-PSGD (Lian et al., NeurIPS 2017): synchronous rounds, Metropolis-Hastings weights on the current graph.
 *   x_i <- sum_{j in N(i) ∪ {i}} W_ij x_j + (LocalSteps(x_i) - x_i)      (mix and step from the same x)
 * Every model message carries the sender's degree and participant set, so both ends compute the same W_ij = 1/(1+max(d_i,d_j))
 * and use it only if each lists the other. A neighbour whose model misses the deadline gets W_ij = 0 and its weight moves to W_ii;
 * if that model arrives later (before this peer's next mix), the missing term W_ij (x_j - x_i) is added then, so that the round's W is
 * symmetric again once every message has landed (the mean is kept even when deadlines are missed on a slow network).
 * `onMix` reports the row of W each peer used (the tests assemble W from it and check it is doubly stochastic under churn).
 */
import type { Vec } from './compression.ts';
import { AveragingNode } from './node.ts';
import type { ModelMessage, PeerId } from './types.ts';
import { EarlyRounds } from './early-rounds.ts';

interface Incoming {
  readonly v: Vec;
  readonly degree: number;
  readonly participants: readonly PeerId[];
}

export class DpsgdNode extends AveragingNode {
  /** Called after every mix with the weights used (self included). */
  onMix?: (round: number, weights: ReadonlyMap<PeerId, number>) => void;
  private round = -1;
  private mixed = true;
  private snapshot = new Float32Array(0);
  private participants: readonly PeerId[] = [];
  private received = new Map<PeerId, Incoming>();
  private readonly buffered = new EarlyRounds<Incoming>();
  private delta: Float32Array | null = null;
  /** The last mixed round, to apply models that missed its deadline. */
  private lastMix: { round: number; snapshot: Float32Array; participants: readonly PeerId[]; degree: number; used: Set<PeerId> } | null = null;

  protected acceptRound(r: number): 'ok' | 'stale' | 'unknown-round' {
    if (r === this.round + 1 || (r === this.round && !this.mixed) || r === this.lastMix?.round) return 'ok';
    if (r <= this.round) return 'stale';
    return r > this.round + 1 && r <= this.currentRound() + 1 ? 'ok' : 'unknown-round';
  }

  protected async runRound(round: number): Promise<void> {
    const epoch = this.epoch;
    this.round = round;
    this.mixed = false;
    this.delta = null;
    this.received = this.buffered.take(round);
    this.participants = [...this.t.neighbours()];
    this.snapshot = this.x.slice();
    const payload = this.encode(this.snapshot);
    for (const p of this.participants) {
      this.send(p, {
        kind: 'model', ...this.header(round), codec: this.codec.name, payload,
        degree: this.participants.length, participants: this.participants, purpose: 'exchange',
      });
    }
    this.t.setTimer(this.cfg.deadlineMs, () => { if (epoch === this.epoch) this.mix(round); });
    const { model, steps } = await this.localTrain(this.snapshot);
    const delta = new Float32Array(model.length);
    for (let i = 0; i < delta.length; i++) delta[i] = model[i]! - this.snapshot[i]!;
    this.t.setTimer(this.t.computeDelay(steps), () => {
      if (epoch !== this.epoch) return;
      if (this.round === round && !this.mixed) {
        this.delta = delta;
        this.tryMix(round);
      } else {
        // A straggler: the round mixed without its update; apply it late rather than lose it.
        for (let i = 0; i < delta.length; i++) this.x[i] = this.x[i]! + delta[i]!;
      }
    });
  }

  protected onModel(from: PeerId, msg: ModelMessage, v: Vec): void {
    const incoming: Incoming = { v, degree: msg.degree ?? 0, participants: msg.participants ?? [] };
    if (msg.round === this.round && !this.mixed) {
      this.received.set(from, incoming);
      this.tryMix(msg.round);
    } else if (msg.round === this.lastMix?.round) {
      this.lateCorrection(from, incoming);
    } else if (msg.round > this.round) {
      this.buffered.add(msg.round, from, incoming);
    } else {
      this.reject('stale', from);
    }
  }

  /** x_i += W_ij (x_j - x_i^snapshot): the term the deadline left out, now that x_j is here. */
  private lateCorrection(from: PeerId, inc: Incoming): void {
    const last = this.lastMix!;
    if (last.used.has(from) || !last.participants.includes(from) || !inc.participants.includes(this.t.self)) return this.reject('stale', from);
    last.used.add(from);
    const w = 1 / (1 + Math.max(last.degree, inc.degree));
    for (let i = 0; i < this.x.length; i++) this.x[i] = this.x[i]! + w * (inc.v[i]! - last.snapshot[i]!);
    this.stats.lateApplied++;
  }

  private tryMix(round: number): void {
    if (this.delta && this.participants.every((p) => this.received.has(p))) this.mix(round);
  }

  private mix(round: number): void {
    if (this.round !== round || this.mixed) return;
    this.mixed = true;
    const me = this.t.self;
    const di = this.participants.length;
    const weights = new Map<PeerId, number>();
    let selfWeight = 1;
    const acc = new Float64Array(this.x.length);
    for (const p of this.participants) {
      const inc = this.received.get(p);
      if (!inc) { this.stats.missedAtDeadline++; continue; }
      if (!inc.participants.includes(me)) continue;
      const w = 1 / (1 + Math.max(di, inc.degree));
      weights.set(p, w);
      selfWeight -= w;
      for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + w * inc.v[i]!;
    }
    weights.set(me, selfWeight);
    const delta = this.delta;
    for (let i = 0; i < acc.length; i++) this.x[i] = acc[i]! + selfWeight * this.snapshot[i]! + (delta ? delta[i]! : 0);
    this.stats.rounds++;
    this.lastMix = { round, snapshot: this.snapshot, participants: this.participants, degree: di, used: new Set(weights.keys()) };
    this.onMix?.(round, weights);
  }
}
