/**
 * The plumbing every averaging algorithm shares: configuration, the local model x, message checks and counters, codec, and the
 * local-training step. Each algorithm (dpsgd.ts, pushsum.ts, epidemic.ts, gossip.ts, choco.ts) is a subclass that implements
 * its paper's rule in `startLoop()` and `onModel()`.
 *
 * Lifecycle, driven by the transport's owner (simulator or daemon):  start() once; leave() when the peer goes away;
 * rejoin() when it comes back (it pulls a neighbour's model where the rule allows); estimate() is the model to evaluate.
 */
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import { Rng } from '../util/random.ts';
import { makeCodec, type Codec, type CodecName, type CodecOptions, type Vec } from './compression.ts';
import { allFinite, checkHeader, wireSize } from './message.ts';
import { RobustMixer, type RobustConfig } from './robust.ts';
import {
  emptyStats,
  type AveragingMessage,
  type AveragingTransport,
  type LocalLearner,
  type ModelMessage,
  type NodeStats,
  type PeerId,
  type RejectReason,
} from './types.ts';

const log = logger('averaging:node');

export type AlgorithmName = 'dpsgd' | 'pushsum' | 'epidemic' | 'gossip' | 'choco';
export const ALGORITHMS: readonly AlgorithmName[] = ['dpsgd', 'pushsum', 'epidemic', 'gossip', 'choco'];

export interface NodeConfig {
  readonly scenario: string;
  readonly layoutHash: string;
  /** Rounds (timer periods for the asynchronous rules) before the node stops. */
  readonly rounds: number;
  /** Length of one round in ms: rounds start at r * roundMs (a lockstep schedule for the synchronous rules). */
  readonly roundMs: number;
  /** Synchronous rules mix at roundStart + deadlineMs with what arrived (stragglers), weights renormalised. */
  readonly deadlineMs: number;
  readonly codec: CodecName;
  readonly codecOptions?: CodecOptions;
  readonly seed: number;
  /** Weight peers by their sample counts where the rule allows (push-sum, EL, gossip), else uniformly. */
  readonly weighting: 'uniform' | 'samples';
  /** False: averaging only (consensus tests, no local training). */
  readonly train: boolean;
  /** FedProx: anchor the local objective at the round-start model (mu is the learner's). */
  readonly proximal: boolean;
  /** Mean sample count over the network, to normalise sample weights (push-sum starts w_i = n_i / mean n). */
  readonly meanSamples?: number;
  /** Robust aggregation at the mix (robust.ts; absent or "mean": plain averaging). */
  readonly robust?: RobustConfig;
}

export abstract class AveragingNode {
  readonly stats: NodeStats = emptyStats();
  protected x: Float32Array;
  protected readonly codec: Codec;
  /** Pull replies carry a whole model to a joining peer: always lossless, whatever the exchange codec. */
  private readonly pullCodec = makeCodec('f32');
  protected readonly rng: Rng;
  protected online = true;
  /** Bumped on leave/rejoin so that callbacks of an interrupted round do nothing. */
  protected epoch = 0;
  lastLoss = Number.NaN;
  /** Robust aggregation and the neighbour scores (null: plain averaging). */
  readonly robust: RobustMixer | null;

  constructor(
    readonly name: AlgorithmName,
    protected readonly t: AveragingTransport,
    protected readonly learner: LocalLearner,
    protected readonly cfg: NodeConfig,
  ) {
    this.codec = makeCodec(cfg.codec, cfg.codecOptions);
    this.rng = new Rng(cfg.seed);
    this.x = learner.getParameters();
    this.robust = cfg.robust && cfg.robust.aggregator !== 'mean' ? new RobustMixer(cfg.robust) : null;
    t.onMessage((from, msg) => this.receive(from, msg));
  }

  /** This peer's identity on its transport. */
  get peer(): PeerId {
    return this.t.self;
  }

  /** The current model of this peer, as it would be evaluated or exported. */
  estimate(): Float32Array {
    return this.x;
  }

  /** The current round by the lockstep schedule. */
  protected currentRound(): number {
    return Math.floor(this.t.now() / this.cfg.roundMs + 1e-9);
  }

  start(): void {
    this.online = true;
    this.schedule(Math.max(0, this.currentRound()));
  }

  leave(): void {
    this.online = false;
    this.epoch++;
  }

  /** Back after an absence: pull a neighbour's model (rules that allow it), then resume at the next round. */
  rejoin(): void {
    this.online = true;
    this.epoch++;
    this.onRejoin();
    this.schedule(this.currentRound() + 1);
  }

  protected onRejoin(): void {
    const from = this.rng.sample(this.t.neighbours().length ? this.t.neighbours() : this.t.peers(), 1)[0];
    if (from !== undefined) this.pull(from);
  }

  /** Pulls this peer has sent and not yet had answered: nonce -> the peer asked. A reply is adopted only against one of these. */
  private readonly pendingPulls = new Map<string, PeerId>();

  /** Ask `from` for its current model; only its reply carrying this nonce will be taken (and only once). */
  protected pull(from: PeerId): void {
    const nonce = this.rng.nextU32().toString(16).padStart(8, '0') + this.rng.nextU32().toString(16).padStart(8, '0');
    this.pendingPulls.set(nonce, from);
    this.send(from, { kind: 'pull', ...this.header(this.currentRound()), nonce });
  }

  private lastStarted = -1;

  /** True once the last round has started (or been skipped) and its slot has passed. */
  get finished(): boolean {
    return this.lastStarted >= this.cfg.rounds - 1 && this.t.now() >= this.cfg.rounds * this.cfg.roundMs;
  }

  private schedule(round: number): void {
    if (round >= this.cfg.rounds) return;
    const epoch = this.epoch;
    const at = round * this.cfg.roundMs + this.phase();
    this.t.setTimer(Math.max(0, at - this.t.now()), () => {
      if (epoch !== this.epoch || !this.online) return;
      // A peer whose timer fires a whole round late (a stalled machine) skips to the current round instead of replaying old ones
      const current = Math.min(this.currentRound(), this.cfg.rounds - 1);
      if (round < current) {
        this.stats.skippedRounds += current - round;
        this.lastStarted = current - 1;
        this.schedule(current);
        return;
      }
      this.lastStarted = round;
      this.schedule(round + 1);
      return this.runRound(round);
    });
  }

  /** Offset of this node's rounds within the period (0 for lockstep rules; a random phase for asynchronous ones). */
  protected phase(): number {
    return 0;
  }

  protected abstract runRound(round: number): void | Promise<void>;
  protected abstract onModel(from: PeerId, msg: ModelMessage, x: Vec): void | Promise<void>;
  /** Round acceptance for incoming messages. */
  protected abstract acceptRound(round: number): 'ok' | 'stale' | 'unknown-round';

  protected header(round: number) {
    return { scenario: this.cfg.scenario, round, layoutHash: this.cfg.layoutHash };
  }

  protected send(to: PeerId, msg: AveragingMessage): void {
    this.stats.messagesSent++;
    this.stats.bytesSent += wireSize(msg);
    this.t.send(to, msg);
  }

  protected encode(v: Vec): Uint8Array {
    return this.codec.encode(v, this.rng);
  }

  /** Told of every refused message (the daemon counts and audits them per sender). */
  onReject?: (reason: RejectReason, from: PeerId) => void;

  protected reject(reason: RejectReason, from: PeerId): void {
    this.stats.rejected[reason]++;
    this.onReject?.(reason, from);
    log.debug({ self: this.t.self, from, reason }, 'message rejected');
  }

  private receive(from: PeerId, msg: AveragingMessage): void | Promise<void> {
    if (!this.online) return;
    this.stats.messagesReceived++;
    this.stats.bytesReceived += wireSize(msg);
    const why = checkHeader(msg, {
      scenario: this.cfg.scenario,
      layoutHash: this.cfg.layoutHash,
      round: (r) => (msg.kind === 'model' && msg.purpose !== 'pull-reply') || msg.kind === 'ack' ? this.acceptRound(r) : this.inRange(r),
    });
    if (why) return this.reject(why, from);
    if (msg.kind === 'pull') return this.answerPull(from, msg.nonce);
    // a pull reply replaces this peer's whole model: take it only from the peer this peer asked, carrying that pull's nonce, once
    if (msg.kind === 'model' && msg.purpose === 'pull-reply') {
      if (msg.nonce === undefined || this.pendingPulls.get(msg.nonce) !== from) return this.reject('unsolicited', from);
      this.pendingPulls.delete(msg.nonce);
    }
    if (msg.kind === 'ack') return this.onAck(from, msg.shareId);
    let v: Vec;
    try {
      const codec = msg.purpose === 'pull-reply' ? this.pullCodec : this.codec;
      if (msg.codec !== codec.name) return this.reject('malformed', from);
      v = codec.decode(msg.payload, this.x.length);
    } catch (e) {
      if (e instanceof CohortError) return this.reject('malformed', from);
      throw e;
    }
    if (!allFinite(v)) return this.reject('non-finite', from);
    if (msg.purpose === 'pull-reply') return this.adoptPulled(v, msg);
    return this.onModel(from, msg, v);
  }

  protected inRange(r: number): 'ok' | 'unknown-round' {
    return r >= 0 && r <= this.cfg.rounds ? 'ok' : 'unknown-round';
  }

  protected answerPull(from: PeerId, nonce: string): void {
    const payload = this.pullCodec.encode(this.estimate());
    this.send(from, { kind: 'model', ...this.header(this.currentRound()), codec: this.pullCodec.name, payload, purpose: 'pull-reply', weight: this.pullWeight(), nonce });
  }

  protected pullWeight(): number | undefined {
    return undefined;
  }

  /** A joining peer takes the neighbour's model as its own. */
  protected adoptPulled(v: Vec, _msg: ModelMessage): void {
    this.x = Float32Array.from(v);
  }

  protected onAck(_from: PeerId, _shareId: string): void {}

  /** Local training from `start`: returns the trained model (and keeps the learner's optimiser state). */
  protected async localTrain(start: Float32Array): Promise<{ model: Float32Array; steps: number }> {
    if (!this.cfg.train) return { model: start, steps: 0 };
    this.learner.setParameters(start);
    if (this.cfg.proximal) this.learner.setProximalAnchor?.(start);
    const r = await this.learner.train();
    this.lastLoss = r.loss;
    return { model: this.learner.getParameters(), steps: r.steps };
  }

  /** The weight of this peer in sample-weighted rules. */
  protected sampleWeight(): number {
    if (this.cfg.weighting === 'uniform') return 1;
    return this.learner.sampleCount / (this.cfg.meanSamples ?? this.learner.sampleCount);
  }
}
