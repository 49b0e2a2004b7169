/**
 * CHOCO-SGD (Koloskova, Stich, Jaggi, ICML 2019): compressed gossip. Each peer keeps public copies xhat of itself and its neighbours
 * (all start at 0, as in the paper, so the copies agree whatever each peer's starting model). Per round:
 *   x_i <- LocalSteps(x_i);  q_i = Q(x_i - xhat_i);  send q_i to the neighbours;  xhat_j += q_j for j in N(i) ∪ {i};
 *   x_i <- x_i + gamma * sum_j W_ij (xhat_j - xhat_i)      (Metropolis-Hastings W, degrees carried in the messages)
 * Q is any codec (top-k, int8, fp16). The copy update is applied whenever q_j arrives, even after the round has mixed, so the copies
 * stay consistent under delays; a lost q_j leaves the copies apart (documented limitation under message loss).
 */
import type { Vec } from './compression.ts';
import { AveragingNode, type NodeConfig } from './node.ts';
import type { AveragingTransport, LocalLearner, ModelMessage, PeerId } from './types.ts';

export interface ChocoOptions {
  /** Consensus step size gamma in (0, 1]. */
  readonly gamma: number;
}

export class ChocoNode extends AveragingNode {
  private readonly xhatSelf: Float32Array;
  private readonly xhat = new Map<PeerId, Float32Array>();
  private round = -1;
  private mixed = true;
  private trained = false;
  private participants: readonly PeerId[] = [];
  private received = new Map<PeerId, { degree: number; participants: readonly PeerId[] }>();

  constructor(t: AveragingTransport, learner: LocalLearner, cfg: NodeConfig, private readonly opts: ChocoOptions) {
    super('choco', t, learner, cfg);
    this.xhatSelf = new Float32Array(this.x.length);
  }

  protected acceptRound(r: number): 'ok' | 'unknown-round' {
    return this.inRange(r);
  }

  protected async runRound(round: number): Promise<void> {
    const epoch = this.epoch;
    this.round = round;
    this.mixed = false;
    this.trained = false;
    this.received = new Map();
    this.participants = [...this.t.neighbours()];
    this.t.setTimer(this.cfg.deadlineMs, () => { if (epoch === this.epoch) this.mix(round); });
    const { model, steps } = await this.localTrain(this.x.slice());
    this.t.setTimer(this.t.computeDelay(steps), () => {
      if (epoch !== this.epoch) return;
      this.x = model;
      const diff = new Float32Array(model.length);
      for (let i = 0; i < diff.length; i++) diff[i] = model[i]! - this.xhatSelf[i]!;
      const payload = this.encode(diff);
      const q = this.codec.decode(payload, diff.length);
      for (let i = 0; i < q.length; i++) this.xhatSelf[i] = this.xhatSelf[i]! + q[i]!;
      for (const p of this.participants) {
        this.send(p, {
          kind: 'model', ...this.header(round), codec: this.codec.name, payload,
          degree: this.participants.length, participants: this.participants, purpose: 'exchange',
        });
      }
      this.trained = true;
      this.tryMix(round);
    });
  }

  protected onModel(from: PeerId, msg: ModelMessage, q: Vec): void {
    const copy = this.xhat.get(from) ?? new Float32Array(q.length);
    for (let i = 0; i < copy.length; i++) copy[i] = copy[i]! + q[i]!;
    this.xhat.set(from, copy);
    if (msg.round === this.round && !this.mixed) {
      this.received.set(from, { degree: msg.degree ?? 0, participants: msg.participants ?? [] });
      this.tryMix(this.round);
    }
  }

  private tryMix(round: number): void {
    if (this.trained && this.participants.every((p) => this.received.has(p))) this.mix(round);
  }

  private mix(round: number): void {
    if (this.round !== round || this.mixed) return;
    this.mixed = true;
    const me = this.t.self;
    const di = this.participants.length;
    for (const p of this.participants) {
      const inc = this.received.get(p);
      const copy = this.xhat.get(p);
      if (!inc || !copy) { this.stats.missedAtDeadline++; continue; }
      if (!inc.participants.includes(me)) continue;
      const w = this.opts.gamma / (1 + Math.max(di, inc.degree));
      for (let i = 0; i < this.x.length; i++) this.x[i] = this.x[i]! + w * (copy[i]! - this.xhatSelf[i]!);
    }
    this.stats.rounds++;
  }
}
