/**
 * Epidemic Learning, EL-Local (de Vos et al., NeurIPS 2023). Every round each peer runs its local steps, sends its model to s peers
 * drawn uniformly at random from all live peers (no fixed graph), and at the round's deadline replaces its model by the average of
 * its own model and every model received for that round (sample-weighted when configured). A straggler that has not finished
 * training by the deadline averages with its previous model and applies its update when it arrives.
 * With `publicReceivers` the s receivers are not this peer's own draw but the public one of secure/receivers.ts (seeded by the
 * scenario id, round and sender; receivers drawn by fewer than 2 senders skipped): the draw secure EL needs, so that a plain run
 * can be compared with a masked one along the same edges. The default stays the private random draw.
 */
import type { Vec } from './compression.ts';
import { AveragingNode, type NodeConfig } from './node.ts';
import type { AveragingTransport, LocalLearner, ModelMessage, PeerId } from './types.ts';
import { EarlyRounds } from './early-rounds.ts';
import { mixIncrement } from './robust.ts';
import { PublicReceivers } from './secure/receivers.ts';

export interface EpidemicOptions {
  /** Peers each model is pushed to per round (the paper's s). */
  readonly s: number;
  /** Draw receivers publicly (secure/receivers.ts) instead of at random; default false. */
  readonly publicReceivers?: boolean;
}

interface Incoming {
  readonly v: Vec;
  readonly weight: number;
}

export class EpidemicNode extends AveragingNode {
  private round = -1;
  private mixed = true;
  private inbox = new Map<PeerId, Incoming>();
  private readonly buffered = new EarlyRounds<Incoming>();
  private trained: Float32Array | null = null;
  /** The public draw over the round-0 participants (fixed, as secure EL's key setup fixes them). */
  private pub: PublicReceivers | null = null;

  constructor(t: AveragingTransport, learner: LocalLearner, cfg: NodeConfig, private readonly opts: EpidemicOptions) {
    super('epidemic', t, learner, cfg);
  }

  protected acceptRound(r: number): 'ok' | 'stale' | 'unknown-round' {
    if (r === this.round + 1 || (r === this.round && !this.mixed)) return 'ok';
    if (r <= this.round) return 'stale';
    return r <= this.currentRound() + 1 ? 'ok' : 'unknown-round';
  }

  protected async runRound(round: number): Promise<void> {
    const epoch = this.epoch;
    this.round = round;
    this.mixed = false;
    this.trained = null;
    this.inbox = this.buffered.take(round);
    this.t.setTimer(this.cfg.deadlineMs, () => { if (epoch === this.epoch) this.average(round); });
    const start = this.x.slice();
    const { model, steps } = await this.localTrain(start);
    this.t.setTimer(this.t.computeDelay(steps), () => {
      if (epoch !== this.epoch) return;
      if (this.round !== round || this.mixed) {
        for (let i = 0; i < model.length; i++) this.x[i] = this.x[i]! + model[i]! - start[i]!;
        return;
      }
      this.trained = model;
      const payload = this.encode(model);
      for (const to of this.receivers(round)) {
        this.send(to, { kind: 'model', ...this.header(round), codec: this.codec.name, payload, weight: this.sampleWeight(), purpose: 'exchange' });
      }
    });
  }

  private receivers(round: number): readonly PeerId[] {
    if (!this.opts.publicReceivers) return this.rng.sample(this.t.peers(), this.opts.s);
    this.pub ??= new PublicReceivers([this.t.self, ...this.t.peers()], this.opts.s, this.cfg.scenario);
    return this.pub.receiversOf(this.t.self, round);
  }

  protected onModel(from: PeerId, msg: ModelMessage, v: Vec): void {
    const incoming = { v, weight: this.cfg.weighting === 'samples' ? (msg.weight ?? 1) : 1 };
    if (msg.round === this.round && !this.mixed) this.inbox.set(from, incoming);
    else if (msg.round > this.round) {
      this.buffered.add(msg.round, from, incoming);
    } else this.reject('stale', from);
  }

  private average(round: number): void {
    if (this.round !== round || this.mixed) return;
    this.mixed = true;
    const own = this.trained ?? this.x;
    const ownWeight = this.cfg.weighting === 'samples' ? this.sampleWeight() : 1;
    if (this.robust) {
      // robust.ts: own + sum_j (w_j / total) Clip(x_j - own), or the coordinate-wise statistic of own and the received models
      const total = ownWeight + [...this.inbox.values()].reduce((a, m) => a + m.weight, 0);
      const inc = mixIncrement(this.robust, own, [...this.inbox].map(([peer, m]) => ({ peer, v: m.v, w: m.weight / total })));
      this.x = Float32Array.from(own, (v, i) => v + inc[i]!);
      this.stats.rounds++;
      return;
    }
    const acc = Float64Array.from(own, (v) => v * ownWeight);
    let total = ownWeight;
    for (const { v, weight } of this.inbox.values()) {
      total += weight;
      for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + weight * v[i]!;
    }
    this.x = Float32Array.from(acc, (v) => v / total);
    this.stats.rounds++;
  }
}
