/**
 * CHOCO-SGD (Koloskova, Stich, Jaggi, ICML 2019): compressed gossip. Each peer keeps public copies xhat of itself and its neighbours
 * (all start at 0, as in the paper, so the copies agree whatever each peer's starting model). Per round:
 *   x_i <- LocalSteps(x_i);  q_i = Q(x_i - xhat_i);  send q_i to the neighbours;  xhat_j += q_j for j in N(i) ∪ {i};
 *   x_i <- x_i + gamma * sum_j W_ij (xhat_j - xhat_i)      (Metropolis-Hastings W, degrees carried in the messages)
 * Q is any codec (top-k, int8, fp16). The copy update is applied whenever q_j arrives, even after the round has mixed, so the copies
 * stay consistent under delays; a lost q_j leaves the copies apart (documented limitation under message loss).
 *
 * Under real timing (every step is an increment to x, added once; nothing overwrites x):
 * - The local update is added to x when training ends (x += LocalSteps(x^r) - x^r), on top of whatever consensus steps were taken
 *   meanwhile; q_i is computed from that x. A straggler whose training ends after the deadline mixes then (its q_i must be in its own
 *   xhat_i first), so it neither trains alone nor loses the consensus step.
 * - The consensus term of an edge is applied once per round on each end, always with both public copies *as of that round*
 *   (xhat_j after q_j^r, xhat_i after q_i^r): at the mix if q_j^r is in, else when it lands (a late term). Each end thus adds the
 *   exact opposite of the other's term and the sum of the models is kept, however late q_j^r is; a straggler's neighbours take
 *   in its update late instead of never. Copies of a round that a later q (or this peer's next publish) would overwrite are frozen
 *   first. Terms that land after this peer's next round started are delayed; as in D-PSGD (see dpsgd.ts) each end proposes a
 *   damping a = sin(pi/(4 tau+2)) from the lateness tau it observed (in `weight`) and the edge uses the smaller: the step
 *   gamma a keeps, under a delay of tau rounds, the margin that gamma had to the stability bound on time (1 -> sin(pi/(4 tau+2))).
 * - Time-varying graphs (and comebacks): a neighbour that did not receive some q_i holds an older copy of xhat_i. Each peer tracks
 *   what every other peer holds of its xhat_i (`behind`), and when an edge appears sends Q(xhat_i - held) instead of q_i, which
 *   re-synchronises that copy (exactly with a lossless codec). An edge is listed (used by both ends) only once the copy is in sync,
 *   so a stale copy never enters a consensus step; with a lossy Q the copy catches up over successive meetings.
 */
import type { Vec } from './compression.ts';
import { AveragingNode, type NodeConfig } from './node.ts';
import type { AveragingTransport, LocalLearner, ModelMessage, PeerId } from './types.ts';
import { EarlyRounds } from './early-rounds.ts';
import { lateDamping } from './dpsgd.ts';

export interface ChocoOptions {
  /** Consensus step size gamma in (0, 1]. */
  readonly gamma: number;
}

/** Rounds a round's record is kept for q's that land late (their copy update is applied whenever they land). */
const KEEP_ROUNDS = 8;
/** A re-synchronised copy is in sync (its edge may be used) when max|xhat_i - held| <= this x max|xhat_i|. */
const SYNC_TOLERANCE = 1e-6;
/** Rounds over which an observed lateness keeps the damping down. */
const LAG_WINDOW = 10;

interface Incoming {
  readonly degree: number;
  readonly participants: readonly PeerId[];
  readonly damping: number;
  /** The sender's public copy as of this round, frozen when a later q of the sender landed before this round mixed. */
  readonly copy?: Float32Array;
}

interface RoundRecord {
  readonly round: number;
  readonly epoch: number;
  /** Neighbours at the round start: they get this round's q, and their q of this round is waited for. */
  readonly neighbours: readonly PeerId[];
  /** Neighbours whose copy of xhat_i is in sync after this round's message: the edges this peer offers (sent as participants). */
  listed: readonly PeerId[];
  /** This peer's damping proposal for the round (set when it publishes). */
  damping: number;
  /** xhat_i as of this round, frozen when this peer publishes again while a term of this round is still to come. */
  xhatSelf?: Float32Array;
  trained: boolean;
  deadlinePassed: boolean;
  mixed: boolean;
  readonly early: Map<PeerId, Incoming>;
  /** Neighbours whose term of this round is done: never applied twice. */
  readonly settled: Set<PeerId>;
}

export class ChocoNode extends AveragingNode {
  private readonly xhatSelf: Float32Array;
  private readonly xhat = new Map<PeerId, Float32Array>();
  /** Peers whose copy of xhat_i equals xhat_i. */
  private readonly synced = new Set<PeerId>();
  /** Peers whose copy of xhat_i is older: what they hold. Peers in neither set were never sent anything and hold 0. */
  private readonly behind = new Map<PeerId, Float32Array>();
  private published = 0;
  private round = -1;
  private readonly records = new Map<number, RoundRecord>();
  private readonly buffered = new EarlyRounds<Incoming>();
  /** Lateness (in rounds) of late terms applied, by the round in which they were applied. */
  private lags: { at: number; lag: number }[] = [];

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
    for (const [r, rec] of this.records) if (r < round - KEEP_ROUNDS || rec.epoch !== epoch) this.records.delete(r);
    this.lags = this.lags.filter((l) => l.at >= round - LAG_WINDOW);
    const rec: RoundRecord = {
      round, epoch, neighbours: [...this.t.neighbours()], listed: [], damping: 1, trained: false, deadlinePassed: false, mixed: false,
      early: this.buffered.take(round), settled: new Set(),
    };
    this.records.set(round, rec);
    this.t.setTimer(this.cfg.deadlineMs, () => {
      if (epoch !== this.epoch) return;
      rec.deadlinePassed = true;
      // a straggler (not trained yet) mixes when its training ends: its own q must be in xhat_i first
      if (rec.trained) this.mix(rec);
    });
    const start = this.x.slice();
    const { model, steps } = await this.localTrain(start);
    this.t.setTimer(this.t.computeDelay(steps), () => {
      if (epoch !== this.epoch) return;
      if (this.cfg.train) {
        // x^r -> LocalSteps(x^r) as an increment: consensus steps taken since the round started stay in x
        for (let i = 0; i < model.length; i++) this.x[i] = this.x[i]! + model[i]! - start[i]!;
        if (rec.deadlinePassed) this.stats.lateLocalUpdates++;
      }
      this.publish(rec);
      rec.trained = true;
      if (rec.deadlinePassed) this.mix(rec);
      else this.tryMix(rec);
    });
  }

  /** q_i = Q(x_i - xhat_i), xhat_i += q_i, and every neighbour's copy of xhat_i follows (re-synchronised where it fell behind). */
  private publish(rec: RoundRecord): void {
    const n = this.x.length;
    const diff = new Float32Array(n);
    for (let i = 0; i < n; i++) diff[i] = this.x[i]! - this.xhatSelf[i]!;
    const payload = this.encode(diff);
    const q = this.codec.decode(payload, n);
    // peers in sync that do not get this q fall behind, holding xhat_i as it is now
    let frozen: Float32Array | null = null;
    for (const k of [...this.synced]) {
      if (rec.neighbours.includes(k)) continue;
      frozen ??= this.xhatSelf.slice();
      this.behind.set(k, frozen);
      this.synced.delete(k);
    }
    // rounds whose terms are still to come keep xhat_i as of their round
    let current: Float32Array | null = null;
    for (const r of this.records.values()) {
      if (r !== rec && r.trained && !r.xhatSelf && !this.settled(r)) r.xhatSelf = current ??= this.xhatSelf.slice();
    }
    const first = this.published++ === 0;
    for (let i = 0; i < n; i++) this.xhatSelf[i] = this.xhatSelf[i]! + q[i]!;
    let lag = 0;
    for (const l of this.lags) lag = Math.max(lag, l.lag);
    rec.damping = lateDamping(lag);
    const payloads = new Map<PeerId, Uint8Array>();
    const listed: PeerId[] = [];
    for (const p of rec.neighbours) {
      if (this.synced.has(p) || (first && !this.behind.has(p))) {
        this.synced.add(p);
        payloads.set(p, payload);
        listed.push(p);
        continue;
      }
      // an edge that (re)appears: bring p's copy from what it holds to xhat_i, as p will (copy += decoded payload, in f32)
      const held = this.behind.get(p) ?? new Float32Array(n);
      const gap = new Float32Array(n);
      for (let i = 0; i < n; i++) gap[i] = this.xhatSelf[i]! - held[i]!;
      const pl = this.encode(gap);
      const got = this.codec.decode(pl, n);
      const now = new Float32Array(n);
      let err = 0;
      let scale = 0;
      for (let i = 0; i < n; i++) {
        now[i] = held[i]! + got[i]!;
        err = Math.max(err, Math.abs(this.xhatSelf[i]! - now[i]!));
        scale = Math.max(scale, Math.abs(this.xhatSelf[i]!));
      }
      if (err === 0) {
        this.behind.delete(p);
        this.synced.add(p);
      } else {
        this.behind.set(p, now);
      }
      if (err <= SYNC_TOLERANCE * scale) listed.push(p);
      payloads.set(p, pl);
    }
    rec.listed = listed;
    for (const p of rec.neighbours) {
      this.send(p, {
        kind: 'model', ...this.header(rec.round), codec: this.codec.name, payload: payloads.get(p)!,
        degree: listed.length, participants: listed, purpose: 'exchange', ...(rec.damping < 1 ? { weight: rec.damping } : {}),
      });
    }
  }

  protected onModel(from: PeerId, msg: ModelMessage, q: Vec): void {
    const copy = this.xhat.get(from) ?? new Float32Array(q.length);
    // rounds still to mix with this sender's earlier q keep its copy as of that round
    for (const r of this.records.values()) {
      const held = r.early.get(from);
      if (r.round < msg.round && !r.mixed && held && !held.copy) r.early.set(from, { ...held, copy: copy.slice() });
    }
    for (let i = 0; i < copy.length; i++) copy[i] = copy[i]! + q[i]!;
    this.xhat.set(from, copy);
    const w = msg.weight;
    const inc: Incoming = { degree: msg.degree ?? 0, participants: msg.participants ?? [], damping: w !== undefined && w > 0 && w <= 1 ? w : 1 };
    const rec = this.records.get(msg.round);
    if (rec && rec.epoch === this.epoch) {
      if (!rec.mixed) {
        rec.early.set(from, inc);
        this.tryMix(rec);
      } else if (!rec.settled.has(from) && rec.neighbours.includes(from)) {
        // its q missed our mix of that round: the edge's term now, with both copies as of that round
        if (this.term(rec, from, inc)) {
          this.stats.lateApplied++;
          if (this.round > rec.round) this.lags.push({ at: this.round, lag: this.round - rec.round });
        }
        this.dropIfSettled(rec);
      }
    } else if (msg.round > this.round) {
      this.buffered.add(msg.round, from, inc);
    }
    // older than the kept rounds: the copy is updated (above), the term is not applied
  }

  private tryMix(rec: RoundRecord): void {
    if (!rec.mixed && rec.trained && rec.neighbours.every((p) => rec.early.has(p))) this.mix(rec);
  }

  private mix(rec: RoundRecord): void {
    if (rec.mixed) return;
    rec.mixed = true;
    for (const p of rec.neighbours) {
      const inc = rec.early.get(p);
      if (!inc) { this.stats.missedAtDeadline++; continue; }
      this.term(rec, p, inc);
    }
    rec.early.clear();
    this.stats.rounds++;
    this.dropIfSettled(rec);
  }

  /** x_i += gamma a_ij W_ij (xhat_j^r - xhat_i^r) if both ends list the edge in round r; true when applied. */
  private term(rec: RoundRecord, p: PeerId, inc: Incoming): boolean {
    rec.settled.add(p);
    const copy = inc.copy ?? this.xhat.get(p);
    if (!copy || !rec.listed.includes(p) || !inc.participants.includes(this.t.self)) return false;
    const own = rec.xhatSelf ?? this.xhatSelf;
    const w = (this.opts.gamma * Math.min(rec.damping, inc.damping)) / (1 + Math.max(rec.listed.length, inc.degree));
    for (let i = 0; i < this.x.length; i++) this.x[i] = this.x[i]! + w * (copy[i]! - own[i]!);
    return true;
  }

  private settled(rec: RoundRecord): boolean {
    return rec.mixed && rec.neighbours.every((p) => rec.settled.has(p));
  }

  private dropIfSettled(rec: RoundRecord): void {
    if (this.settled(rec)) this.records.delete(rec.round);
  }
}
