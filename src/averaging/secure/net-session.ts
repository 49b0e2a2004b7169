/**
 * A real peer's side of a scenario's secure-averaging key setup (docs/privacy.md), over the scenario's averaging transport
 * (/cohort/model/1 between participants, audited like every transfer) before round 0:
 *   secure-key   this peer's ephemeral X25519 public key + its Ed25519 signature by the peer's libp2p identity key, to every other
 *                participant (verified against the sender's peer ID, which is its Ed25519 public key);
 *   secure-deal  once every participant's key is in: one sealed Shamir share of this peer's ephemeral secret per member of its
 *                public holder set (holders.ts, the same sets as the simulator's; point to point; ChaCha20-Poly1305 bound to
 *                scenario, dealer and holder);
 *   secure-ack   a holder's receipt of its share;
 *   secure-key-ack  a participant's receipt of this peer's key, sent only where neither holds a share of the other (otherwise the
 *                share or its ack shows the key arrived).
 * Delivery is at least once: a participant whose run has not begun yet refuses the transfer, so keys are re-sent every
 * RESEND_MS until that peer shows it has this peer's key (its key-ack, its share for this peer, or its ack of this peer's share:
 * it could only seal or open those with the key) and shares until acknowledged.
 * An identical re-send is not counted; a different or tampered announcement or share is refused and counted
 * (refusedAnnouncements, refusedShares) and reported through `onRefused`.
 * Setup is complete when every participant's key and the share of every dealer whose holder set names this peer are in; at `deadline` (ms since the run's start)
 * an incomplete setup fails with SECURE_SETUP rather than run with masks that could not cancel.
 */
import { bytesToHex as hex, equalBytes } from '@noble/curves/utils.js';
import type { AveragingMessage, AveragingTransport, MaybePromise, ModelMessage, PeerId } from '../types.ts';
import { CohortError } from '../../util/errors.ts';
import { announce, dealShares, type KeyAnnouncement, type SealedShare } from './crypto.ts';
import { PeerSecureSession, type PeerSessionOptions } from './peer-session.ts';

export const SETUP_CODEC = { key: 'secure-key', deal: 'secure-deal', ack: 'secure-ack', keyAck: 'secure-key-ack' } as const;
const SETUP_CODECS: ReadonlySet<string> = new Set(Object.values(SETUP_CODEC));
const RESEND_MS = 1000;


export interface NetSessionOptions extends PeerSessionOptions {
  readonly layoutHash: string;
  /** Ms since the run's start by which the setup must be complete. */
  readonly deadlineMs: number;
  /** A refused setup message (forged key, tampered or replayed share): counted by the daemon's refusals. */
  readonly onRefused?: (from: string, reason: string) => void;
}

export class NetSecureSession extends PeerSecureSession {
  override readonly setupOverTransport = true;
  private readonly acked = new Set<string>();
  /** Participants that acknowledged this peer's key. */
  private readonly keyAcked = new Set<string>();
  /** Accepted shares by dealer: the sealed bytes, so that an identical re-send is recognised (and acknowledged again). */
  private readonly accepted = new Map<string, string>();
  private myShares: SealedShare[] | null = null;
  private resendTimer: number | null = null;
  private closed = false;
  private progress: () => void = () => undefined;
  private dealing = false;

  constructor(private readonly o: NetSessionOptions) {
    super(o);
  }

  /**
   * The transport the secure node runs on: setup messages go to this session, everything else on to the node. Starts the
   * setup at once (before round 0).
   */
  wrap(t: AveragingTransport): AveragingTransport {
    this.attach(t);
    const session = this;
    let handler: ((from: PeerId, msg: AveragingMessage) => MaybePromise) | null = null;
    t.onMessage((from, msg) => (msg.kind === 'model' && SETUP_CODECS.has(msg.codec) ? session.receive(from, msg) : handler?.(from, msg)));
    return {
      get self() { return t.self; },
      neighbours: () => t.neighbours(), peers: () => t.peers(), send: (to, m) => t.send(to, m), now: () => t.now(),
      onMessage: (h) => { handler = h; },
      setTimer: (ms, cb) => t.setTimer(ms, cb), clearTimer: (id) => t.clearTimer(id), computeDelay: (s) => t.computeDelay(s),
    };
  }

  close(): void {
    this.closed = true;
    if (this.resendTimer !== null) this.t?.clearTimer(this.resendTimer);
  }

  /** The dealers whose shares this peer holds (their holder sets name it). */
  private get dealers(): string[] { return this.dealersTo(this.self); }
  /** `p` has this peer's key: it said so, or it sealed a share to it, or it opened one from it. */
  private hasMyKey(p: string): boolean { return this.keyAcked.has(p) || this.me.held.has(p) || this.acked.has(p); }

  protected override async runSteps(): Promise<void> {
    if (!this.t || !this.peers.has(this.self)) throw new CohortError('SECURE_SETUP', 'secure session used before its node registered', 'internal: wrap the transport, then create the node');
    const mine = announce(this.self, this.o.scenario, this.me.keys, this.identitySecrets.get(this.self)!);
    this.publicKeys.set(this.self, mine.publicKey);
    this.recordKey(this.self, { publicKey: mine.publicKey, signature: mine.signature, fromRound: 0 });
    const done = new Promise<void>((resolve) => { this.progress = () => { void this.step(mine).then((all) => { if (all) resolve(); }); }; });
    const tick = (): void => {
      if (this.closed) return;
      this.progress();
      this.resend(mine);
      // until every holder has acknowledged its share, every share for this peer is held and every participant has its key
      const settled = this.myShares !== null && this.myShares.every((x) => this.acked.has(x.holder)) && this.dealers.every((p) => this.me.held.has(p))
        && this.others.every((p) => this.hasMyKey(p));
      if (!settled) this.resendTimer = this.t!.setTimer(RESEND_MS, tick);
    };
    tick();
    const late = new Promise<never>((_, reject) => this.t!.setTimer(Math.max(0, this.o.deadlineMs - this.t!.now()), () => reject(this.incomplete())));
    await Promise.race([done, late]);
  }

  private incomplete(): CohortError {
    const keys = this.others.filter((p) => !this.publicKeys.has(p));
    const shares = this.dealers.filter((p) => !this.me.held.has(p));
    return new CohortError('SECURE_SETUP', `secure averaging setup incomplete at round 0: ${keys.length ? `no key from ${keys.join(', ')}` : ''}${keys.length && shares.length ? '; ' : ''}${shares.length ? `no share from ${shares.join(', ')}` : ''}`,
      'every participant must be up and reachable before round 0 (raise launch.startDelayMs); the scenario is not run without masking');
  }

  /** Deal once every key is in; complete when every dealer's share is in too. */
  private async step(mine: KeyAnnouncement): Promise<boolean> {
    if (!this.myShares && !this.dealing && this.others.every((p) => this.publicKeys.has(p))) {
      this.dealing = true;
      const holders = this.holdersOf(this.self).map((h) => ({ peer: h, publicKey: this.publicKeys.get(h)! }));
      if (holders.length >= 2) this.myShares = await dealShares(this.self, this.o.scenario, this.me.keys, holders, Math.min(this.threshold, holders.length));
      else this.myShares = [];
      this.resend(mine);
    }
    return this.myShares !== null && this.dealers.every((p) => this.me.held.has(p));
  }

  /** Keys to those not known to have ours, shares to those who have not acknowledged. */
  private resend(mine: KeyAnnouncement): void {
    for (const p of this.others) {
      if (!this.hasMyKey(p)) this.sendSetup(p, SETUP_CODEC.key, new Uint8Array([...mine.publicKey, ...mine.signature]));
    }
    for (const s of this.myShares ?? []) {
      if (!this.acked.has(s.holder)) this.sendSetup(s.holder, SETUP_CODEC.deal, s.box, { shareId: this.self, nonce: hex(s.nonce) });
    }
  }

  private sendSetup(to: string, codec: string, payload: Uint8Array, extra: Partial<ModelMessage> = {}): void {
    this.t!.send(to, { kind: 'model', scenario: this.o.scenario, round: 0, layoutHash: this.o.layoutHash, codec, payload, ...extra });
    this.setupBytes += payload.byteLength;
  }

  private receive(from: string, msg: ModelMessage): void {
    if (this.closed) return;
    if (msg.scenario !== this.o.scenario || !this.o.graph.has(from)) return this.refuse(from, 'secure-setup-foreign');
    if (msg.codec === SETUP_CODEC.key) return this.onKey(from, msg.payload);
    if (msg.codec === SETUP_CODEC.deal) return this.onDeal(from, msg);
    if (msg.codec === SETUP_CODEC.ack) { this.acked.add(from); return; }
    if (msg.codec === SETUP_CODEC.keyAck) { this.keyAcked.add(from); return; }
  }

  private onKey(from: string, payload: Uint8Array): void {
    const a: KeyAnnouncement = { peer: from, scenario: this.o.scenario, publicKey: payload.slice(0, 32), signature: payload.slice(32) };
    const known = this.publicKeys.get(from);
    if (known && equalBytes(known, a.publicKey)) return this.ackKey(from); // a re-send
    if (known || payload.byteLength !== 96 || !this.acceptAnnouncement(a)) {
      if (known || payload.byteLength !== 96) this.refusedAnnouncements++;
      return this.refuse(from, 'secure-key-refused');
    }
    // kept with its signature: a rejoiner that lost every key can learn this one from any participant (rejoin.ts, key directory)
    this.recordKey(from, { publicKey: a.publicKey, signature: a.signature, fromRound: 0 });
    this.ackKey(from);
    this.progress();
  }

  private onDeal(from: string, msg: ModelMessage): void {
    const nonce = msg.nonce ?? '';
    if (msg.shareId !== from || !/^[0-9a-f]{24}$/.test(nonce)) { this.refusedShares++; return this.refuse(from, 'secure-share-refused'); }
    if (!this.publicKeys.has(from)) return; // its key is still on the way (another stream): the dealer sends the share again
    const fingerprint = `${nonce}:${hex(msg.payload)}`;
    if (this.accepted.get(from) === fingerprint) return this.ack(from); // a re-send of the share already held
    const ok = this.deliverShare({ dealer: from, holder: this.self, scenario: this.o.scenario, nonce: Uint8Array.from(Buffer.from(nonce, 'hex')), box: msg.payload.slice() });
    if (!ok) return this.refuse(from, 'secure-share-refused');
    this.accepted.set(from, fingerprint);
    this.ack(from);
    this.progress();
  }

  private ack(to: string): void { this.sendSetup(to, SETUP_CODEC.ack, new Uint8Array(0)); }

  /** Tells `to` its key arrived, unless a share between the two will say so (this peer's share to it, or its ack of `to`'s share). */
  private ackKey(to: string): void {
    if (this.holdersOf(this.self).includes(to) || this.holdersOf(to).includes(this.self)) return;
    this.sendSetup(to, SETUP_CODEC.keyAck, new Uint8Array(0));
  }

  private refuse(from: string, reason: string): void { this.o.onRefused?.(from, reason); }
}
