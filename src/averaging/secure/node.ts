/**
 * D-PSGD with secure (masked) averaging: the rule of dpsgd.ts (x_i += sum_j W_ij (x_j^r - x_i^r) + local update, Metropolis-Hastings
 * weights) where no neighbour ever sees a peer's model: peer k sends receiver j only y_k = enc(W_jk x_k^r) + pairwise masks that
 * cancel in j's sum over its senders (masking.ts), so j learns sum_k W_jk x_k^r and nothing else.
 *
 * Weights come from the static topology agreed at setup (session.ts: each peer's neighbour list), so a sender knows W_jk before
 * sending. A sender missing at the deadline (dropped, killed mid-round) is recovered: j asks the members of the dropped peer's
 * public holder set for their Shamir shares of its ephemeral secret (ceil(1.5 t) holders first, the set's others only if too few
 * answer halfway to the round's end: holders.ts); t of them rebuild it (checked against its announced key), j removes the
 * unmatched masks and mixes the survivors' exact sum; the dropped weight goes to W_jj. A recovered secret serves every later
 * round with no further messages. Fewer than t of the holders answering by the round's last chance: j does not mix that round
 * (its sum still carries the dropped peer's masks), counts it in `holdersShort` and reports it through `onNotMixed`; it asks
 * again in the next round (a holder may be back). A receiver left with fewer than 2 senders does not mix that round (one sender's model would be
 * exposed), and a peer that left never sends again (its secret may have been rebuilt); when it returns it only receives.
 * Refused and counted: masked models from outside S_j or twice, released shares that fail authentication (tampered) or that were
 * sealed for another round, receiver or scenario (replayed).
 */
import { bytesToHex as hex, equalBytes } from '@noble/curves/utils.js';
import { AveragingNode, type NodeConfig } from '../node.ts';
import { checkHeader } from '../message.ts';
import type { AveragingMessage, AveragingTransport, LocalLearner, MaybePromise, ModelMessage, PeerId } from '../types.ts';
import { openReleased, recoverSecret, releaseShare } from './crypto.ts';
import { MaskedSum, PairKeys, maskedContribution } from './masking.ts';
import { firstAskCount, holderOrder, requestsByHolder } from './holders.ts';
import type { SecureSession } from './session.ts';
import { PublicReceivers } from './receivers.ts';

/**
 * Who sends to whom in a round and with which weight: the one thing D-PSGD and Epidemic Learning differ in here. Every
 * participant computes the same plan, so a sender knows its receiver's whole sender set S_j(r) (the masks it must add) and the
 * weight W_jk it applies before masking.
 */
export interface MaskPlan {
  readonly algorithm: 'dpsgd' | 'epidemic';
  sendersOf(receiver: string, round: number): readonly string[];
  receiversOf(sender: string, round: number): readonly string[];
  /** W_jk: the weight receiver j gives sender k's model. */
  weight(receiver: string, sender: string, round: number): number;
}

/** D-PSGD: the static graph agreed at setup, Metropolis-Hastings weights. */
export function staticPlan(session: SecureSession): MaskPlan {
  const nb = (p: string): readonly string[] => session.neighbours.get(p) ?? [];
  return {
    algorithm: 'dpsgd', sendersOf: nb, receiversOf: nb,
    weight: (a, b) => 1 / (1 + Math.max(nb(a).length, nb(b).length)),
  };
}

/**
 * Epidemic Learning: each sender's s receivers drawn publicly per round (receivers.ts); receiver j averages its own model and
 * its senders' with equal weights 1/(|S_j(r)| + 1). Written as D-PSGD's x_j += sum_k W_jk (x_k - x_j), that is the plain average.
 */
export function epidemicPlan(session: SecureSession, s: number, scenario: string): MaskPlan {
  let pub: PublicReceivers | null = null;
  // the participants are known once every peer registered (at the first round), not when the node is built
  const get = (): PublicReceivers => (pub ??= new PublicReceivers([...session.neighbours.keys()], s, scenario));
  return {
    algorithm: 'epidemic',
    sendersOf: (j, r) => get().sendersOf(j, r),
    receiversOf: (k, r) => get().receiversOf(k, r),
    weight: (j, _k, r) => 1 / (get().sendersOf(j, r).length + 1),
  };
}

/**
 * `burnt`: a holder's burn notice to a dealer whose share it released (payload: the dealer's public key the share belongs to,
 * `shareId` the dealer, `participants` the receiver it was released to, `round` the request's round); `burntAck`: the dealer's
 * receipt (the same fields), which stops the holder's re-sends.
 */
export const SECURE_CODEC = { model: 'secure-u32', request: 'secure-unmask', share: 'secure-share', burnt: 'secure-burnt', burntAck: 'secure-burnt-ack' } as const;
/** A burn notice not acknowledged is re-sent every second while its dealer is reachable, this many times at most. */
const BURN_RESENDS = 5;

export interface SecureStats {
  maskedSent: number;
  clippedValues: number;
  /** Dropped senders whose secret this peer rebuilt from shares. */
  recovered: number;
  /** Rounds completed with at least one dropped sender recovered. */
  roundsWithRecovery: number;
  /** Rounds not mixed: fewer than 2 senders, or a dropped sender not recovered by the end of the round. */
  roundsNotMixed: number;
  /** Dropped senders not rebuilt in a round because fewer than t of their holders answered (one per round and dealer). */
  holdersShort: number;
  sharesReleased: number;
  /** Share requests sent (one per holder asked per round of recovery; holders.ts). */
  shareRequests: number;
  /** Recoveries that asked beyond the first ceil(1.5 t) holders (too few had answered halfway to the round's end). */
  recoveryWidened: number;
  /** Released shares refused: tampered (authentication failed), replayed (another round, receiver or scenario) or unsolicited. */
  sharesRefused: number;
  /** Masked models refused (not a sender of this peer, second copy, wrong length, after the round closed). */
  maskedRefused: number;
  /** Burn notices sent: one per share of a dealer this peer released (to that dealer), and one per rebuild of a dealer it holds a share of (re-sends not counted). */
  burnNoticesSent: number;
  /** This peer's keys burnt: a holder told it its share was released, so its secret may be known to that receiver (once per key). */
  keyBurnt: number;
  /** Burn notices accepted (from a holder of this peer, for its current key), the first of each key included; re-sends not counted. */
  burnNotices: number;
  /** Burn notices for a key this peer no longer uses (replaced by a rejoin): ignored, not refused. */
  burnStale: number;
  /** Burn notices refused: from a peer that holds no share of this peer's key, naming another dealer, or malformed. */
  burnRefused: number;
}

export type NotMixedReason = 'few-senders' | 'holders-short';

interface RoundState {
  readonly round: number;
  readonly epoch: number;
  readonly snapshot: Float32Array;
  readonly sum: MaskedSum;
  /** Shares collected per dropped dealer. */
  readonly shares: Map<string, Map<string, Uint8Array>>;
  /** Holders asked per dropped dealer (holders.ts: ceil(1.5 t) first, the rest if too few answer); a share from another is refused. */
  readonly asked: Map<string, Set<string>>;
  deadline: boolean;
  done: boolean;
}

const unhex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));

/** A transport whose secure messages go to the secure node and everything else (pulls, pull replies) to the base class. */
class SplitTransport implements AveragingTransport {
  secure: ((from: PeerId, msg: ModelMessage) => MaybePromise) | null = null;
  private base: ((from: PeerId, msg: AveragingMessage) => MaybePromise) | null = null;
  constructor(private readonly t: AveragingTransport) {
    t.onMessage((from, msg) => (msg.kind === 'model' && msg.codec.startsWith('secure-') ? this.secure?.(from, msg) : this.base?.(from, msg)));
  }
  get self(): PeerId { return this.t.self; }
  neighbours(): readonly PeerId[] { return this.t.neighbours(); }
  peers(): readonly PeerId[] { return this.t.peers(); }
  send(to: PeerId, msg: AveragingMessage): void { this.t.send(to, msg); }
  onMessage(h: (from: PeerId, msg: AveragingMessage) => MaybePromise): void { this.base = h; }
  now(): number { return this.t.now(); }
  setTimer(ms: number, cb: () => MaybePromise): number { return this.t.setTimer(ms, cb); }
  clearTimer(id: number): void { this.t.clearTimer(id); }
  computeDelay(steps: number): number { return this.t.computeDelay(steps); }
}

export class SecureDpsgdNode extends AveragingNode {
  readonly secure: SecureStats = { maskedSent: 0, clippedValues: 0, recovered: 0, roundsWithRecovery: 0, roundsNotMixed: 0, holdersShort: 0, sharesReleased: 0, shareRequests: 0, recoveryWidened: 0, sharesRefused: 0, maskedRefused: 0, burnNoticesSent: 0, keyBurnt: 0, burnNotices: 0, burnStale: 0, burnRefused: 0 };
  /**
   * Called for every round this peer does not mix, with the reason: 'few-senders' (fewer than 2 live senders: one sender's
   * model would be exposed) or 'holders-short' (fewer than t holders of the dropped senders named answered).
   */
  onNotMixed?: (round: number, reason: NotMixedReason, dealers: readonly PeerId[]) => void;
  /** Called after every mix with the weights used (self included), as DpsgdNode.onMix. */
  onMix?: (round: number, weights: ReadonlyMap<PeerId, number>) => void;
  /** Measurement hooks (benchmark, tests): the round-start model this peer masked, and the sum it decoded (dropped masks removed). */
  onSnapshot?: (round: number, snapshot: Float32Array) => void;
  onSum?: (round: number, sum: Float64Array, senders: ReadonlySet<PeerId>) => void;
  private readonly rounds = new Map<number, RoundState>();
  /** Dropped senders' ephemeral secrets, once rebuilt. */
  private readonly recovered = new Map<string, Uint8Array>();
  /**
   * This peer's key may be known to another peer (it left, or a holder's burn notice said a share of it was released): it never
   * masks, asks for shares or releases shares with that key again (a receiver that rebuilt it could open what it seals).
   */
  private burnt = false;
  /** Called once per key when a holder's burn notice says this peer's key was released (`holder` released it to `receiver` in `round`). */
  onBurnt?: (round: number, holder: PeerId, receiver: PeerId) => void;
  /** Whether this peer's current key is burnt (it sends no masked model with it any more). */
  get keyIsBurnt(): boolean { return this.burnt; }
  /** Masked models that arrived before this peer started their round. */
  private readonly early = new Map<number, [PeerId, Uint32Array][]>();
  private keys: PairKeys | null = null;
  private round = -1;

  /** `plan`: D-PSGD's static graph unless given (epidemicPlan for Epidemic Learning). */
  static create(t: AveragingTransport, learner: LocalLearner, cfg: NodeConfig, session: SecureSession, plan?: MaskPlan): SecureDpsgdNode {
    const split = new SplitTransport(t);
    const node = new SecureDpsgdNode(split, learner, cfg, session, plan ?? staticPlan(session));
    split.secure = (from, msg) => node.onSecure(from, msg);
    return node;
  }

  private constructor(t: AveragingTransport, learner: LocalLearner, cfg: NodeConfig, private session: SecureSession, private readonly plan: MaskPlan) {
    super(plan.algorithm, t, learner, cfg);
    session.register(t.self, t.neighbours());
  }

  private get me(): string { return this.t.self; }

  protected acceptRound(r: number): 'ok' | 'stale' | 'unknown-round' {
    return r >= 0 && r <= this.cfg.rounds ? 'ok' : 'unknown-round';
  }

  override leave(): void {
    super.leave();
    this.burnt = true; // its secret may be rebuilt by its receivers: it must never send a masked model again
  }

  /** First round this peer masks and sends in: a peer back in the run waits for its fresh key's round (rejoin.ts). */
  sendsFrom = 0;

  /**
   * This peer's key was burnt and it rejoins with a fresh one while alive (burn.ts): from now on it runs on `session` (a
   * RejoinSession, whose key is drawn here), masks nothing until `sendsFrom` is decided there, and forgets the pair secrets of
   * the burnt key. The secrets it rebuilt of others stay (their keys did not change).
   */
  useSession(session: SecureSession): void {
    this.session = session;
    session.register(this.me, this.t.neighbours());
    this.keys = null;
    this.sendsFrom = Number.POSITIVE_INFINITY;
    this.burnt = false;
  }

  /** `peer` rejoined with a fresh key (rejoin.ts): the pair secrets and any secret rebuilt from its old key are forgotten. */
  rekeyed(peer: string): void {
    this.keys = null;
    this.recovered.delete(peer);
  }

  protected runRound(round: number): void | Promise<void> {
    if (this.session.setupOverTransport && !this.keys) {
      // real peers: the setup's messages arrive through the same transport queue this round's timer runs on, so waiting for
      // the setup inside the timer would hold them back until its deadline; the round starts when the setup completes (a
      // failed setup is reported by whoever started it: the runner)
      void this.session.setup().then(() => this.runSecureRound(round), () => undefined);
      return;
    }
    return this.runSecureRound(round);
  }

  private async runSecureRound(round: number): Promise<void> {
    await this.session.setup();
    this.keys ??= new PairKeys(this.session.peers.get(this.me)!.keys.secretKey, this.session.publicKeys);
    const epoch = this.epoch;
    this.round = round;
    for (const r of this.rounds.keys()) if (r < round - 2) this.rounds.delete(r);
    const snapshot = this.x.slice();
    this.onSnapshot?.(round, snapshot);
    const senders = this.plan.sendersOf(this.me, round);
    const st: RoundState = { round, epoch, snapshot, sum: new MaskedSum(this.me, senders, this.cfg.scenario, round, snapshot.length), shares: new Map(), asked: new Map(), deadline: false, done: false };
    this.rounds.set(round, st);
    for (const [from, u] of this.early.get(round) ?? []) if (!st.sum.add(from, u)) { this.secure.maskedRefused++; this.reject('duplicate', from); }
    for (const r of this.early.keys()) if (r <= round) this.early.delete(r);
    if (!this.burnt && round >= this.sendsFrom) {
      for (const j of this.plan.receiversOf(this.me, round)) {
        const { payload, clipped } = maskedContribution(this.me, this.keys, j, this.plan.sendersOf(j, round), this.cfg.scenario, round, snapshot, this.plan.weight(j, this.me, round));
        this.secure.clippedValues += clipped;
        this.secure.maskedSent++;
        this.send(j, { kind: 'model', ...this.header(round), codec: SECURE_CODEC.model, payload: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), purpose: 'exchange' });
      }
    }
    this.t.setTimer(this.cfg.deadlineMs, () => { if (epoch === this.epoch) { st.deadline = true; this.tryFinish(st); } });
    // the round's last chance for dropped senders' shares
    this.t.setTimer(Math.max(this.cfg.deadlineMs, this.cfg.roundMs * 0.98), () => { if (epoch === this.epoch && !st.done) this.finish(st, false); });
    this.tryFinish(st);
    const { model, steps } = await this.localTrain(snapshot);
    if (!this.cfg.train) return;
    const delta = new Float32Array(model.length);
    for (let i = 0; i < delta.length; i++) delta[i] = model[i]! - snapshot[i]!;
    this.t.setTimer(this.t.computeDelay(steps), () => {
      if (epoch !== this.epoch) return;
      for (let i = 0; i < delta.length; i++) this.x[i] = this.x[i]! + delta[i]!;
      if (st.deadline) this.stats.lateLocalUpdates++;
    });
  }

  /** No plain model ever leaves a secure peer: a pull (a returning or late peer's catch-up) is refused, not answered. */
  protected override answerPull(from: PeerId): void { this.reject('unsolicited', from); }

  /** Back or late: this peer waits for the next round's masked sums instead of pulling a neighbour's plain model. */
  protected override onRejoin(): void { /* nothing to pull: see answerPull */ }

  /** Masked models only arrive through onSecure; the base class's decoded-model path is unused. */
  protected onModel(from: PeerId): void { this.reject('malformed', from); }

  private onSecure(from: PeerId, msg: ModelMessage): void {
    if (!this.online) return;
    this.stats.messagesReceived++;
    const why = checkHeader(msg, { scenario: this.cfg.scenario, layoutHash: this.cfg.layoutHash, round: (r) => this.acceptRound(r) });
    if (why) return this.reject(why, from);
    if (msg.codec === SECURE_CODEC.model) return this.onMasked(from, msg);
    if (msg.codec === SECURE_CODEC.request) return this.onRequest(from, msg);
    if (msg.codec === SECURE_CODEC.share) return void this.onShare(from, msg);
    if (msg.codec === SECURE_CODEC.burnt) return this.onBurnNotice(from, msg);
    if (msg.codec === SECURE_CODEC.burntAck) { this.unackedBurns.delete(`${from}|${msg.participants?.[0] ?? ''}|${msg.round}`); return; }
    this.reject('malformed', from);
  }

  private onMasked(from: PeerId, msg: ModelMessage): void {
    if (msg.round > this.round && msg.payload.byteLength % 4 === 0) {
      const list = this.early.get(msg.round) ?? [];
      list.push([from, new Uint32Array(msg.payload.slice().buffer)]);
      this.early.set(msg.round, list);
      return;
    }
    const st = this.rounds.get(msg.round);
    if (!st || st.epoch !== this.epoch || st.done || msg.payload.byteLength % 4 !== 0) { this.secure.maskedRefused++; return this.reject('stale', from); }
    const u = new Uint32Array(msg.payload.slice().buffer);
    if (!st.sum.add(from, u)) { this.secure.maskedRefused++; return this.reject('duplicate', from); }
    this.tryFinish(st);
  }

  /** Done when every sender is in; at the deadline, ask for the shares of those missing whose secret is not known yet. */
  private tryFinish(st: RoundState): void {
    if (st.done) return;
    const missing = st.sum.missing();
    if (missing.length === 0) return this.finish(st, true);
    if (!st.deadline) return;
    if (st.sum.received.size < 2) return this.finish(st, false);
    const unknown = missing.filter((d) => !this.recovered.has(d));
    if (unknown.length === 0) return this.finish(st, true);
    // a rejoiner before its r0: holders would seal the shares to its old key, which died with its process (rejoin.ts); a burnt
    // key: whoever rebuilt it could open the shares sealed to it
    if (st.round < this.session.keyFromRound || this.burnt) return this.finish(st, false);
    if (st.shares.size === 0) {
      // this peer's own shares count towards the threshold
      const held = this.session.peers.get(this.me)!.held;
      for (const d of unknown) st.shares.set(d, new Map(held.has(d) ? [[this.me, held.get(d)!]] : []));
      this.askHolders(st, unknown, (d, order) => order.slice(0, firstAskCount(this.session.threshold, held.has(d))));
      // widen halfway to the round's last chance: every holder of theirs not asked yet, for the dealers still not rebuilt
      const last = Math.max(this.cfg.deadlineMs, this.cfg.roundMs * 0.98);
      this.t.setTimer((last - this.cfg.deadlineMs) / 2, () => {
        if (st.epoch !== this.epoch || st.done) return;
        const left = unknown.filter((d) => !this.recovered.has(d));
        this.secure.recoveryWidened += left.length;
        this.askHolders(st, left, (_d, order) => order);
      });
    }
  }

  /** Requests the shares of `dealers` from the holders `pick` chooses among their holders not asked yet (one request per holder). */
  private askHolders(st: RoundState, dealers: readonly string[], pick: (dealer: string, order: string[]) => string[]): void {
    const asks = new Map<string, string[]>();
    for (const d of dealers) {
      const asked = st.asked.get(d) ?? new Set<string>();
      st.asked.set(d, asked);
      const reachable = new Set(this.t.peers());
      const candidates = this.session.holdersOf(d).filter((h) => h !== this.me && reachable.has(h) && !dealers.includes(h) && !asked.has(h));
      const chosen = pick(d, holderOrder(d, this.me, candidates, st.sum.received));
      for (const h of chosen) asked.add(h);
      asks.set(d, chosen);
    }
    for (const [h, ds] of requestsByHolder(asks)) {
      this.secure.shareRequests++;
      this.send(h, { kind: 'model', ...this.header(st.round), codec: SECURE_CODEC.request, payload: new Uint8Array(0), participants: ds, degree: st.sum.received.size });
    }
  }

  /** A holder releases its shares of the dropped dealers named, sealed to the asking receiver and bound to the round. */
  private onRequest(from: PeerId, msg: ModelMessage): void {
    const dead = msg.participants ?? [];
    // the asker must still have >= 2 senders: a sum of one would expose that sender's model
    if ((msg.degree ?? 0) < 2 || dead.includes(this.me) || dead.includes(from)) return this.reject('unsolicited', from);
    // a rejoiner before its r0: the asker would open the shares with this peer's old key (rejoin.ts); it asks other holders
    if (msg.round < this.session.keyFromRound) return;
    // a burnt key: the receiver that rebuilt it could open a share this peer seals with it; the asker turns to other holders
    if (this.burnt) return;
    const mine = this.session.peers.get(this.me)!;
    const receiverPk = this.session.publicKeys.get(from);
    if (!receiverPk) return this.reject('unsolicited', from);
    for (const d of dead) {
      const share = mine.held.get(d);
      if (!share) continue;
      const r = releaseShare(share, d, this.me, from, this.cfg.scenario, msg.round, mine.keys.secretKey, receiverPk);
      this.secure.sharesReleased++;
      this.send(from, { kind: 'model', ...this.header(msg.round), codec: SECURE_CODEC.share, payload: r.box, shareId: d, nonce: hex(r.nonce) });
      this.burnNotice(d, from, msg.round);
    }
  }

  /**
   * Tells dealer `d` that its share held here went to `receiver` in `round` (docs/privacy.md "Burn notices"): if `d` is alive
   * (merely late at that receiver), it must stop masking with that key, since the receiver may now rebuild it. The payload names
   * the key (its public half) so that a notice about a key `d` already replaced is recognised as stale.
   */
  private burnNotice(d: string, receiver: string, round: number): void {
    const pk = this.session.publicKeys.get(d);
    const key = `${d}|${receiver}|${round}`;
    if (!pk || d === this.me || this.unackedBurns.has(key)) return;
    this.secure.burnNoticesSent++;
    const msg: ModelMessage = { kind: 'model', ...this.header(round), codec: SECURE_CODEC.burnt, payload: pk.slice(), shareId: d, participants: [receiver] };
    this.send(d, msg);
    // re-sent until the dealer acknowledges it (a notice lost in transit would leave a live dealer masking with an exposed key)
    this.unackedBurns.set(key, { to: d, msg, left: BURN_RESENDS });
    this.armBurnResends();
  }

  /** Burn notices sent and not acknowledged yet, by dealer|receiver|round. */
  private readonly unackedBurns = new Map<string, { to: string; msg: ModelMessage; left: number }>();
  private burnResendArmed = false;

  private armBurnResends(): void {
    if (this.burnResendArmed) return;
    this.burnResendArmed = true;
    this.t.setTimer(1000, () => {
      this.burnResendArmed = false;
      if (!this.online) return;
      // only to a dealer still reachable (a dead one never answers: its notices would be re-sent for nothing)
      const live = new Set(this.t.peers());
      for (const [key, u] of this.unackedBurns) {
        if (u.left-- <= 0) { this.unackedBurns.delete(key); continue; }
        if (live.has(u.to)) this.send(u.to, u.msg);
      }
      if (this.unackedBurns.size) this.armBurnResends();
    });
  }

  /** Notices already counted here (holder|receiver|round|key): a re-send is acknowledged again, not counted again. */
  private readonly seenBurns = new Set<string>();

  /**
   * A holder says a share of this peer's key was released. Accepted from a member of this peer's public holder set (the transport
   * authenticates the sender: libp2p's peer ID), naming this peer, for its current key: from then on this peer masks nothing
   * with that key. A notice for a key already replaced is stale (ignored); one from a non-holder, naming another dealer or
   * malformed is refused and counted (it cannot burn a key: only the holders' shares can expose it).
   */
  private onBurnNotice(from: PeerId, msg: ModelMessage): void {
    const receiver = msg.participants?.[0];
    if (msg.shareId !== this.me || msg.payload.byteLength !== 32 || !receiver || !this.session.holdersOf(this.me).includes(from)) {
      this.secure.burnRefused++;
      return this.reject('unsolicited', from);
    }
    this.send(from, { kind: 'model', ...this.header(msg.round), codec: SECURE_CODEC.burntAck, payload: msg.payload.slice(), shareId: this.me, participants: [receiver] });
    const seen = `${from}|${receiver}|${msg.round}|${hex(msg.payload)}`;
    if (this.seenBurns.has(seen)) return;
    this.seenBurns.add(seen);
    const mine = this.session.publicKeys.get(this.me);
    if (!mine || !equalBytes(mine, msg.payload)) { this.secure.burnStale++; return; }
    this.secure.burnNotices++;
    if (this.burnt) return;
    this.burnt = true;
    this.secure.keyBurnt++;
    this.onBurnt?.(msg.round, from, receiver);
  }

  private async onShare(from: PeerId, msg: ModelMessage): Promise<void> {
    const st = this.rounds.get(msg.round);
    const dealer = msg.shareId ?? '';
    const want = st?.shares.get(dealer);
    const holderPk = this.session.publicKeys.get(from);
    const asked = st?.asked.get(dealer)?.has(from) ?? false;
    if (!st || !want || !asked || !holderPk || !/^[0-9a-f]{24}$/.test(msg.nonce ?? '')) { this.secure.sharesRefused++; return this.reject('unsolicited', from); }
    if (want.has(from)) { this.secure.sharesRefused++; return this.reject('duplicate', from); }
    // opened even beyond the threshold: a tampered share is refused and counted whenever it arrives (the holders asked are
    // few, holders.ts, so the surplus is small)
    const share = openReleased({ dealer, holder: from, receiver: this.me, scenario: this.cfg.scenario, round: msg.round, nonce: unhex(msg.nonce!), box: msg.payload },
      this.me, this.cfg.scenario, msg.round, this.session.peers.get(this.me)!.keys.secretKey, holderPk);
    if (!share) { this.secure.sharesRefused++; return this.reject('malformed', from); }
    if (this.recovered.has(dealer) || st.done) return; // a share beyond the threshold, after the rebuild: not needed
    want.set(from, share);
    if (this.recovered.has(dealer) || want.size < this.session.threshold) return;
    const sk = await recoverSecret([...want.values()], this.session.publicKeys.get(dealer)!);
    if (!sk || this.recovered.has(dealer)) return; // a bad share among them: wait for more (or another reply rebuilt it meanwhile)
    this.recovered.set(dealer, sk);
    this.secure.recovered++;
    // this peer's own share went into the rebuild: it tells the dealer too (the holders it asked do, for theirs)
    if (this.session.peers.get(this.me)!.held.has(dealer)) this.burnNotice(dealer, this.me, st.round);
    this.tryFinish(st);
  }

  private finish(st: RoundState, complete: boolean): void {
    if (st.done) return;
    st.done = true;
    const lost = st.sum.missing().filter((d) => !this.recovered.has(d));
    if (!complete || lost.length) {
      this.secure.roundsNotMixed++;
      this.stats.missedAtDeadline += st.sum.missing().length;
      // fewer than 2 senders came in, or shares were asked for and too few holders answered by the round's last chance
      const short = st.sum.received.size >= 2 && st.shares.size > 0 ? lost : [];
      this.secure.holdersShort += short.length;
      this.onNotMixed?.(st.round, short.length ? 'holders-short' : 'few-senders', short.length ? short : lost);
      return;
    }
    const missing = st.sum.missing();
    for (const d of missing) st.sum.removeDropped(d, this.recovered.get(d)!, this.session.publicKeys);
    if (missing.length) { this.secure.roundsWithRecovery++; this.stats.missedAtDeadline += missing.length; }
    const s = st.sum.value();
    this.onSum?.(st.round, s, st.sum.received);
    let wsum = 0;
    const weights = new Map<PeerId, number>();
    for (const k of st.sum.received) { const w = this.plan.weight(this.me, k, st.round); weights.set(k, w); wsum += w; }
    weights.set(this.me, 1 - wsum);
    for (let i = 0; i < this.x.length; i++) this.x[i] = this.x[i]! + (s[i]! - wsum * st.snapshot[i]!);
    this.stats.rounds++;
    this.onMix?.(st.round, weights);
  }
}
