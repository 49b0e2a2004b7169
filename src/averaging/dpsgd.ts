/**
 * D-PSGD (Lian et al., NeurIPS 2017): synchronous rounds, Metropolis-Hastings weights on the current graph.
 *   x_i <- x_i + sum_{j in N(i)} W_ij (x_j - x_i) + (LocalSteps(x_i) - x_i)      (mix and step from the same round-start x)
 *
 * Written as *increments* to x, never as an overwrite of x by a function of the round-start snapshot: each term (a neighbour's
 * W_ij (x_j^r - x_i^r), the local update) is added exactly once, whenever its input is here, and nothing added in between is lost.
 * On time (every model in before the deadline, the update before the next round) this is the paper's rule, step for step.
 *
 * Every model message carries the sender's degree and participant set, so both ends compute the same W_ij = a_ij / (1+max(d_i,d_j))
 * and use it only if each lists the other. A neighbour's model that misses the deadline gets no weight at the mix; when it lands, the
 * missing term W_ij (x_j^r - x_i^r) is added (both from round r: the sender sent x_j^r and kept x_i^r, so both ends add opposite
 * terms and the sum of the models is kept exactly). Round records are kept KEEP_ROUNDS rounds for that; later than that, refused.
 *
 * Damping a_ij. A correction that lands after this peer's next round started is *delayed*: the next snapshot did not include it, so
 * the next exchange pushes along the same difference again. With every term tau rounds late, each eigen-direction of W evolves as
 * e_{t+1} = e_t - a (1 - lambda) e_{t-tau}, stable iff a (1 - lambda) < 2 sin(pi / (2 (2 tau + 1))) (Levin & May 1976). Metropolis
 * weights have 1 - lambda < 2, so a = sin(pi / (4 tau + 2)) is always inside: 1 on time (the plain rule), 1/2 one round late
 * (latency > round), 0.31 two rounds late. Without it the exactly-once rule oscillates and diverges on graphs with eigenvalues of
 * W below 0 (any 3-regular graph) once the latency exceeds a round. Each peer proposes a from the largest lateness it has observed
 * over the last LAG_WINDOW rounds and sends it in the message's `weight` field (absent = 1); an edge uses the smaller of the two
 * proposals of that round, so both ends agree and W stays symmetric.
 *
 * `onMix` reports the row of W each peer used at its deadline (the tests assemble W from it and check it is doubly stochastic).
 */
import type { Vec } from './compression.ts';
import { AveragingNode } from './node.ts';
import type { ModelMessage, PeerId } from './types.ts';
import { EarlyRounds } from './early-rounds.ts';
import { mixIncrement, type MixInput } from './robust.ts';

/** Rounds a round's record (snapshot, participants) is kept for models that land late; a model later than that is refused. */
export const KEEP_ROUNDS = 8;
/** Rounds over which an observed lateness keeps the damping down. */
const LAG_WINDOW = 10;

/** The damping of W for models `lag` rounds late: sin(pi / (4 lag + 2)) (1, 0.5, 0.31, 0.22, ...). */
export function lateDamping(lag: number): number {
  return Math.sin(Math.PI / (4 * Math.max(0, lag) + 2));
}

/** A damping proposal from the wire: absent or out of (0, 1] means none (1). Both ends apply this same function. */
function damping(w: number | undefined): number {
  return w !== undefined && w > 0 && w <= 1 ? w : 1;
}

interface Incoming {
  readonly v: Vec;
  readonly degree: number;
  readonly participants: readonly PeerId[];
  readonly damping: number;
}

/** One round as this peer played it: what it sent (x_i^r) and to whom, for the mix and for corrections that land later. */
interface RoundRecord {
  readonly round: number;
  readonly epoch: number;
  readonly snapshot: Float32Array;
  readonly participants: readonly PeerId[];
  readonly degree: number;
  readonly damping: number;
  mixed: boolean;
  deadlinePassed: boolean;
  /** Models in before the mix. */
  readonly early: Map<PeerId, Incoming>;
  /** Neighbours whose term of this round is done (applied at the mix or later, or without weight): never applied twice. */
  readonly settled: Set<PeerId>;
  /** Robust aggregation: the clipping radius of this round's mix (late terms are clipped with it). */
  radius?: number;
}

export class DpsgdNode extends AveragingNode {
  /** Called after every mix with the weights used (self included). */
  onMix?: (round: number, weights: ReadonlyMap<PeerId, number>) => void;
  /** The latest round this peer started. */
  private round = -1;
  private readonly records = new Map<number, RoundRecord>();
  private readonly buffered = new EarlyRounds<Incoming>();
  /** Lateness (in rounds) of corrections applied, by the round in which they were applied. */
  private lags: { at: number; lag: number }[] = [];

  protected acceptRound(r: number): 'ok' | 'stale' | 'unknown-round' {
    if (r > this.round) return r === this.round + 1 || r <= this.currentRound() + 1 ? 'ok' : 'unknown-round';
    return this.records.get(r)?.epoch === this.epoch ? 'ok' : 'stale';
  }

  protected async runRound(round: number): Promise<void> {
    const epoch = this.epoch;
    this.round = round;
    this.forget(round);
    const participants = [...this.t.neighbours()];
    const rec: RoundRecord = {
      round, epoch, snapshot: this.x.slice(), participants, degree: participants.length, damping: lateDamping(this.observedLag(round)),
      mixed: false, deadlinePassed: false, early: this.buffered.take(round), settled: new Set(),
    };
    this.records.set(round, rec);
    const payload = this.encode(rec.snapshot);
    for (const p of participants) {
      this.send(p, {
        kind: 'model', ...this.header(round), codec: this.codec.name, payload,
        degree: rec.degree, participants, purpose: 'exchange', ...(rec.damping < 1 ? { weight: rec.damping } : {}),
      });
    }
    this.t.setTimer(this.cfg.deadlineMs, () => {
      if (epoch !== this.epoch) return;
      rec.deadlinePassed = true;
      this.mix(rec);
    });
    this.tryMix(rec);
    const { model, steps } = await this.localTrain(rec.snapshot);
    if (!this.cfg.train) return;
    const delta = new Float32Array(model.length);
    for (let i = 0; i < delta.length; i++) delta[i] = model[i]! - rec.snapshot[i]!;
    this.t.setTimer(this.t.computeDelay(steps), () => {
      if (epoch !== this.epoch) return;
      // LocalSteps(x_i^r) - x_i^r, added once whenever training ends: before the mix, after it, or rounds later (a straggler)
      for (let i = 0; i < delta.length; i++) this.x[i] = this.x[i]! + delta[i]!;
      if (rec.deadlinePassed) this.stats.lateLocalUpdates++;
    });
  }

  protected onModel(from: PeerId, msg: ModelMessage, v: Vec): void {
    const incoming: Incoming = { v, degree: msg.degree ?? 0, participants: msg.participants ?? [], damping: damping(msg.weight) };
    const rec = this.records.get(msg.round);
    if (rec && rec.epoch === this.epoch) {
      if (!rec.mixed) {
        rec.early.set(from, incoming);
        this.tryMix(rec);
      } else {
        this.lateCorrection(rec, from, incoming);
      }
    } else if (msg.round > this.round) {
      this.buffered.add(msg.round, from, incoming);
    } else {
      this.reject('stale', from);
    }
  }

  /** W_ij of round r as both ends compute it from their round-r messages. */
  private weight(rec: RoundRecord, inc: Incoming): number {
    return Math.min(rec.damping, inc.damping) / (1 + Math.max(rec.degree, inc.degree));
  }

  /** x_i += W_ij (x_j^r - x_i^r): the term the deadline left out, now that x_j^r is here. */
  private lateCorrection(rec: RoundRecord, from: PeerId, inc: Incoming): void {
    if (rec.settled.has(from)) return this.reject('duplicate', from);
    if (!rec.participants.includes(from) || !inc.participants.includes(this.t.self)) return this.reject('stale', from);
    rec.settled.add(from);
    // robust.ts: a late model cannot join a coordinate-wise statistic already taken; a clipped term uses its round's radius
    if (this.robust?.coordinateWise) { this.robust.lateDropped++; return this.dropIfSettled(rec); }
    const w = this.weight(rec, inc) * (this.robust ? this.robust.clipOne(rec.snapshot, from, inc.v, rec.radius ?? this.robust.lastRadius) : 1);
    for (let i = 0; i < this.x.length; i++) this.x[i] = this.x[i]! + w * (inc.v[i]! - rec.snapshot[i]!);
    this.stats.lateApplied++;
    const lag = this.round - rec.round;
    if (lag > 0) this.lags.push({ at: this.round, lag });
    this.dropIfSettled(rec);
  }

  private tryMix(rec: RoundRecord): void {
    if (!rec.mixed && rec.participants.every((p) => rec.early.has(p))) this.mix(rec);
  }

  private mix(rec: RoundRecord): void {
    if (rec.mixed) return;
    rec.mixed = true;
    const me = this.t.self;
    const weights = new Map<PeerId, number>();
    let selfWeight = 1;
    const inputs: MixInput[] = [];
    for (const p of rec.participants) {
      const inc = rec.early.get(p);
      if (!inc) { this.stats.missedAtDeadline++; continue; }
      rec.settled.add(p);
      if (!inc.participants.includes(me)) continue;
      const w = this.weight(rec, inc);
      weights.set(p, w);
      selfWeight -= w;
      inputs.push({ peer: p, v: inc.v, w });
    }
    // sum_j W_ij (x_j^r - x_i^r), or its robust form (robust.ts)
    const acc = mixIncrement(this.robust, rec.snapshot, inputs);
    if (this.robust && inputs.length) rec.radius = this.robust.lastRadius;
    weights.set(me, selfWeight);
    for (let i = 0; i < acc.length; i++) this.x[i] = this.x[i]! + acc[i]!;
    rec.early.clear();
    this.stats.rounds++;
    this.dropIfSettled(rec);
    this.onMix?.(rec.round, weights);
  }

  private dropIfSettled(rec: RoundRecord): void {
    if (rec.mixed && rec.participants.every((p) => rec.settled.has(p))) this.records.delete(rec.round);
  }

  /** Drops records too old to wait for (or from before a leave) and lateness observations out of the window. */
  private forget(round: number): void {
    for (const [r, rec] of this.records) if (r < round - KEEP_ROUNDS || rec.epoch !== this.epoch) this.records.delete(r);
    this.lags = this.lags.filter((l) => l.at >= round - LAG_WINDOW);
  }

  /** The largest lateness (rounds) of the corrections applied over the last LAG_WINDOW rounds. */
  private observedLag(round: number): number {
    let lag = 0;
    for (const l of this.lags) if (l.at >= round - LAG_WINDOW) lag = Math.max(lag, l.lag);
    return lag;
  }
}
