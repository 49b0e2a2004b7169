/**
 * Gossip learning (Ormandi, Hegedus, Jelasity 2013). Fully asynchronous: each peer, once per period at its own random phase, sends
 * (model, age) to one random live peer. The receiver merges x <- (a_r x_r + a_l x_l) / (a_r + a_l) (age-weighted; plain averaging
 * when both ages are 0), sets its age to max(a_r, a_l), takes its local update on its data, and adds the samples used to its age.
 * With 'uniform' weighting the merge is the plain average (the paper's simple variant).
 */
import type { Vec } from './compression.ts';
import { AveragingNode, type NodeConfig } from './node.ts';
import type { AveragingTransport, LocalLearner, ModelMessage, PeerId } from './types.ts';
import { distance } from './robust.ts';

export class GossipNode extends AveragingNode {
  private age = 0;
  private readonly phaseMs: number;

  constructor(t: AveragingTransport, learner: LocalLearner, cfg: NodeConfig) {
    super('gossip', t, learner, cfg);
    this.phaseMs = this.rng.next() * cfg.roundMs;
  }

  protected override phase(): number {
    return this.phaseMs;
  }

  protected acceptRound(r: number): 'ok' | 'unknown-round' {
    return this.inRange(r);
  }

  protected runRound(round: number): void {
    const to = this.rng.sample(this.t.peers(), 1)[0];
    if (to !== undefined) {
      this.send(to, { kind: 'model', ...this.header(round), codec: this.codec.name, payload: this.encode(this.x), weight: this.age, purpose: 'exchange' });
    }
    this.stats.rounds++;
  }

  protected async onModel(from: PeerId, msg: ModelMessage, v: Vec): Promise<void> {
    const ar = msg.weight ?? 0;
    if (ar < 0) return this.reject('malformed', from);
    const ageWeighted = this.cfg.weighting === 'samples' && ar + this.age > 0;
    const wr = ageWeighted ? ar / (ar + this.age) : 0.5;
    const merged = new Float32Array(this.x.length);
    if (this.robust) {
      // self-centred clipping (robust.ts): x + wr Clip(x_r - x, tau), tau from the distances of recently received models
      const c = wr * this.robust.clipOne(this.x, from, v, this.robust.gossipRadius(distance(v, this.x)));
      for (let i = 0; i < merged.length; i++) merged[i] = this.x[i]! + c * (v[i]! - this.x[i]!);
    } else for (let i = 0; i < merged.length; i++) merged[i] = wr * v[i]! + (1 - wr) * this.x[i]!;
    this.age = Math.max(ar, this.age);
    const { model, steps } = await this.localTrain(merged);
    this.x = model;
    this.age += steps;
  }

  protected override pullWeight(): number {
    return this.age;
  }

  protected override adoptPulled(v: Vec, msg: ModelMessage): void {
    super.adoptPulled(v, msg);
    this.age = msg.weight ?? this.age;
  }
}
