/**
 * A peer back in a secure run after a restart (docs/privacy.md "Restart and late join"). Its old ephemeral key died with the
 * process, and its neighbours may have rebuilt that key from Shamir shares while it was away (dropout recovery, node.ts), so
 * it never masks with the old key again. Instead:
 *   1. it draws a FRESH ephemeral X25519 key and announces it to every other participant, signed with its Ed25519 identity, with
 *      the first round r0 from which it masks: r0 = its current round + rekeyLead(roundMs) (at least 3 rounds and 5 s ahead);
 *   2. each participant that hears the announcement before its own round r0 starts keeps it pending (a schedule: one entry per
 *      announcement, each applied at its own r0) and replies with its own current key announcement (the joiner lost them all)
 *      and its key directory: every signed key it knows of the others, in force or pending (`secure-rekey-dir`); one heard at
 *      round r0 or later is answered `late`;
 *   3. once every other participant answered, the joiner deals sealed Shamir shares of its new secret to its public holder set
 *      (holders.ts, the same set and threshold as at setup), each sealed to the key the holder answered with; each holder
 *      acknowledges its share;
 *   4. just before round r0 each participant swaps the joiner's key for the new one (and its share), and forgets the pair secrets
 *      and any secret it had rebuilt for the joiner (SecureDpsgdNode.rekeyed); from r0 on all pairs with the joiner mask with
 *      the new key. The joiner masks and sends from r0 only if every other participant answered (so holds the new key), none
 *      answered `late`, and it knows every participant's key in force at r0; otherwise it stays a receiver for the rest of the
 *      run (its receivers rebuild the new key from the shares dealt at the cutoff, half a round before r0, to those that
 *      answered, as for any dropped sender).
 * Two (or more) participants rejoining at once, J1 with r0_1 <= r0_2 of J2: each answers the other's announcement with its fresh
 * key (a key from a later round than the asker's current one is accepted: it is signed with its r0). What each masks with, round
 * by round, is a key schedule: J1 masks rounds [r0_1, r0_2) against J2's OLD key (in force at every other participant until
 * r0_2; J2 sends nothing then, so its receivers remove those masks with J2's old secret, rebuilt as for any drop) and from r0_2
 * against J2's new one (its own responder holds J2's announcement pending, as every participant does). J1 cannot get J2's old key
 * from J2 (it died with J2's process): it takes it from the directories, where each entry is signed by its owner, so a relayer
 * cannot forge one. J2 needs only J1's new key (in force from r0_1 <= r0_2). A holder that is itself rejoining gets its share
 * sealed to its NEW key (the one it answered with: the only secret it has); it releases shares from its own r0 on, when the
 * others know that key (node.ts); its share is not skipped, as the threshold at small n may need every holder (n = 4: t = 2 of
 * h = 3). The joiner that dies again before r0: its new key still takes effect at r0 where it was heard, and its receivers
 * rebuild it from the shares it dealt; if it died before dealing them, they cannot (its receivers stop mixing: sums stay exact).
 * Why r0 this far ahead: the announcement is re-sent every second until answered, and a participant must hold the new key
 * before it masks round r0 (a sender masks against every other sender of its receiver). Three rounds and at least five seconds
 * leave room for several re-sends and for a participant whose run is just restarting to be reachable again.
 * Until r0 the joiner sends no model: it receives its neighbours' masked sums and mixes them into the model restored from its
 * checkpoint (nothing plain is pulled: a secure peer never answers a pull). What that leaks: nothing beyond a receiver's usual
 * view (the weighted sum of its senders' models); its own earlier rounds' masks were recovered by its receivers as for any drop.
 * Not handled: a late approver (not in the round-0 static graph the weights and masks are agreed on: SECURE_LATE stays), shares
 * the joiner held for others (lost: the holder sets are one short of that peer).
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import type { AveragingMessage, AveragingTransport, MaybePromise, ModelMessage, PeerId } from '../types.ts';
import { announce, dealShares, openShare, verifyAnnouncement, type SealedShare } from './crypto.ts';
import { PeerSecureSession, type CurrentKey, type PeerSessionOptions } from './peer-session.ts';

export type { CurrentKey } from './peer-session.ts';

export const REKEY_CODEC = { announce: 'secure-rekey', key: 'secure-rekey-key', dir: 'secure-rekey-dir', deal: 'secure-rekey-deal', dealAck: 'secure-rekey-dack', late: 'secure-rekey-late' } as const;
const REKEY_CODECS: ReadonlySet<string> = new Set(Object.values(REKEY_CODEC));
const RESEND_MS = 1000;
/** One key directory entry on the wire: fromRound (uint32, big-endian), public key, signature; its owner in `participants`. */
const DIR_ENTRY = 4 + 32 + 64;
const te = new TextEncoder();
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** Rounds between the joiner's current round and r0: at least 3, and at least 5 s of re-sends. */
export function rekeyLead(roundMs: number): number {
  return Math.max(3, Math.ceil(5000 / roundMs));
}

const rekeyBytes = (scenario: string, peer: string, fromRound: number, pk: Uint8Array): Uint8Array =>
  new Uint8Array([...te.encode(`cohort/secure-rekey|${scenario}|${peer}|${fromRound}|`), ...pk]);

export function signRekey(scenario: string, peer: string, fromRound: number, publicKey: Uint8Array, identitySecret: Uint8Array): CurrentKey {
  return { publicKey, fromRound, signature: ed25519.sign(rekeyBytes(scenario, peer, fromRound, publicKey), identitySecret) };
}

export function verifyKey(scenario: string, peer: string, k: CurrentKey, identityPublic: Uint8Array): boolean {
  if (k.fromRound === 0) return verifyAnnouncement({ peer, scenario, publicKey: k.publicKey, signature: k.signature }, identityPublic);
  try { return ed25519.verify(k.signature, rekeyBytes(scenario, peer, k.fromRound, k.publicKey), identityPublic); } catch { return false; }
}

/** A participant's round-0 key, as it announced it at the setup (Ed25519 signatures are deterministic: the same bytes again). */
export function roundZeroKey(session: PeerSecureSession, self: string, scenario: string, identitySeed: Uint8Array): CurrentKey | undefined {
  const keys = session.peers.get(self)?.keys;
  return keys && { ...announce(self, scenario, keys, identitySeed.subarray(0, 32)), fromRound: 0 };
}

/** The key directory's wire form: one entry per signed key, its owner named in `participants` at the same index. */
export function encodeDirectory(entries: readonly (readonly [string, CurrentKey])[]): { participants: string[]; payload: Uint8Array } {
  const payload = new Uint8Array(entries.length * DIR_ENTRY);
  const view = new DataView(payload.buffer);
  entries.forEach(([, k], i) => {
    view.setUint32(i * DIR_ENTRY, k.fromRound);
    payload.set(k.publicKey, i * DIR_ENTRY + 4);
    payload.set(k.signature, i * DIR_ENTRY + 36);
  });
  return { participants: entries.map(([p]) => p), payload };
}

/** Null when the lengths do not match (not a directory). Signatures are not checked here. */
export function decodeDirectory(participants: readonly string[] | undefined, payload: Uint8Array): [string, CurrentKey][] | null {
  const names = participants ?? [];
  if (payload.byteLength !== names.length * DIR_ENTRY) return null;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return names.map((p, i) => [p, { fromRound: view.getUint32(i * DIR_ENTRY), publicKey: payload.slice(i * DIR_ENTRY + 4, i * DIR_ENTRY + 36), signature: payload.slice(i * DIR_ENTRY + 36, (i + 1) * DIR_ENTRY) }]);
}

/** What a participant's node does when a joiner's new key takes effect (SecureDpsgdNode). */
export interface Rekeyable { rekeyed(peer: string): void }

export interface RekeyOptions {
  readonly scenario: string;
  readonly layoutHash: string;
  readonly roundMs: number;
  /** This peer's session (its key, the keys it masks with, the shares it holds, the signed keys it knows). */
  readonly session: PeerSecureSession;
  /** This peer's current key announcement (round-0 or its own rejoin's). */
  readonly mine: () => CurrentKey | undefined;
  readonly onRefused?: (from: string, reason: string) => void;
}

interface Pending { readonly publicKey: Uint8Array; readonly fromRound: number; share?: Uint8Array; applied: boolean }

/**
 * Every participant's side: answers joiners' announcements (its key and its key directory), holds their new shares, and swaps
 * each announced key in just before its r0. `wrap` puts it under the secure session on the run's transport (it sees the rekey
 * messages first).
 */
export class RekeyResponder {
  private t: AveragingTransport | null = null;
  private self = '';
  /** Announced keys by joiner, in fromRound order: each is applied at its own r0 (a joiner that restarts twice announces twice). */
  private readonly pending = new Map<string, Pending[]>();
  private joinerSession: RejoinSession | undefined;
  /** This peer's averaging node, once created. */
  node: Rekeyable | undefined;
  refused = 0;
  /** Joiners whose new key took effect here (once per key). */
  readonly rekeyed: string[] = [];

  constructor(private readonly o: RekeyOptions) {}

  /** The joiner session on this peer, when this peer is rejoining itself (gets the replies to its announcement). */
  get joiner(): RejoinSession | undefined { return this.joinerSession; }
  set joiner(s: RejoinSession | undefined) {
    this.joinerSession = s;
    if (s) s.responder = this;
  }

  wrap(t: AveragingTransport): AveragingTransport {
    this.t = t;
    this.self = t.self;
    let handler: ((from: PeerId, msg: AveragingMessage) => MaybePromise) | null = null;
    t.onMessage((from, msg) => (msg.kind === 'model' && REKEY_CODECS.has(msg.codec) ? this.receive(from, msg) : handler?.(from, msg)));
    return {
      get self() { return t.self; },
      neighbours: () => t.neighbours(), peers: () => t.peers(), send: (to, m) => t.send(to, m), now: () => t.now(),
      onMessage: (h) => { handler = h; },
      setTimer: (ms, cb) => t.setTimer(ms, cb), clearTimer: (id) => t.clearTimer(id), computeDelay: (s) => t.computeDelay(s),
    };
  }

  private get round(): number { return Math.floor(this.t!.now() / this.o.roundMs); }

  private receive(from: string, msg: ModelMessage): void {
    if (msg.scenario !== this.o.scenario || !this.o.session.identity.has(from)) return this.refuse(from, 'secure-rekey-foreign');
    if (msg.codec === REKEY_CODEC.announce) return this.onAnnounce(from, msg);
    if (msg.codec === REKEY_CODEC.deal) return this.onDeal(from, msg);
    this.joiner?.receive(from, msg);
  }

  private onAnnounce(from: string, msg: ModelMessage): void {
    const k: CurrentKey = { publicKey: msg.payload.slice(0, 32), signature: msg.payload.slice(32), fromRound: msg.round };
    if (msg.payload.byteLength !== 96 || k.fromRound < 1 || !verifyKey(this.o.scenario, from, k, this.o.session.identity.get(from)!)) return this.refuse(from, 'secure-rekey-refused');
    const known = this.pending.get(from) ?? [];
    const again = known.some((p) => same(p.publicKey, k.publicKey) && p.fromRound === k.fromRound);
    // heard after its r0 began here: this peer already masked that round with the old key; the joiner must not use this one
    if (!again && !this.schedule(from, k)) return this.send(from, REKEY_CODEC.late, new Uint8Array(0), this.round);
    const mine = this.o.mine();
    if (mine) this.send(from, REKEY_CODEC.key, new Uint8Array([...mine.publicKey, ...mine.signature]), mine.fromRound);
    const dir = this.directory(from);
    if (dir.participants.length) this.send(from, REKEY_CODEC.dir, dir.payload, this.round, { participants: dir.participants });
  }

  /**
   * A joiner's verified key, to be swapped in just before its r0 (from its announcement, or learned by this peer's own joiner
   * session from a reply or a directory). False when its r0 has begun here, or a key of the same joiner from that round or a
   * later one is already pending (keys only move forward).
   */
  schedule(peer: string, k: CurrentKey): boolean {
    const known = this.pending.get(peer) ?? [];
    if (known.some((p) => same(p.publicKey, k.publicKey) && p.fromRound === k.fromRound)) return true;
    if (this.round >= k.fromRound || known.some((p) => p.fromRound >= k.fromRound)) return false;
    const entry: Pending = { publicKey: k.publicKey, fromRound: k.fromRound, applied: false };
    this.pending.set(peer, [...known, entry]);
    this.o.session.recordKey(peer, k);
    const at = k.fromRound * this.o.roundMs - Math.min(50, this.o.roundMs * 0.01);
    this.t!.setTimer(Math.max(0, at - this.t!.now()), () => this.apply(peer, entry));
    return true;
  }

  /** The signed keys this peer knows of everyone but `to`: each one's key in force now and those pending. */
  private directory(to: string): { participants: string[]; payload: Uint8Array } {
    const entries: [string, CurrentKey][] = [];
    for (const [q, log] of this.o.session.keyLog) {
      if (q === to) continue;
      const now = log.filter((k) => k.fromRound <= this.round).at(-1);
      for (const k of log) if (k === now || k.fromRound > this.round) entries.push([q, k]);
    }
    return encodeDirectory(entries);
  }

  private onDeal(from: string, msg: ModelMessage): void {
    const p = (this.pending.get(from) ?? []).find((x) => x.fromRound === msg.round);
    const nonce = msg.nonce ?? '';
    const me = this.o.session.peers.get(this.self);
    if (!p || !me || msg.shareId !== from || !/^[0-9a-f]{24}$/.test(nonce)) return this.refuse(from, 'secure-rekey-share-refused');
    const share = openShare({ dealer: from, holder: this.self, scenario: this.o.scenario, nonce: Uint8Array.from(Buffer.from(nonce, 'hex')), box: msg.payload.slice() },
      this.self, this.o.scenario, me.keys.secretKey, p.publicKey);
    if (!share) return this.refuse(from, 'secure-rekey-share-refused');
    if (!p.applied) p.share = share;
    // a re-send after r0 (the first was lost or late): held from now on if that key is still the joiner's current one here
    else if (!me.held.has(from) && same(this.o.session.publicKeys.get(from) ?? new Uint8Array(0), p.publicKey)) me.held.set(from, share);
    this.send(from, REKEY_CODEC.dealAck, new Uint8Array(0), p.fromRound);
  }

  /** Just before r0: the joiner's new key (and share) replace the old; the node forgets what it derived from the old one. */
  private apply(peer: string, p: Pending): void {
    if (p.applied) return;
    p.applied = true;
    this.o.session.publicKeys.set(peer, p.publicKey);
    const held = this.o.session.peers.get(this.self)?.held;
    if (held) { if (p.share) held.set(peer, p.share); else held.delete(peer); }
    this.node?.rekeyed(peer);
    this.rekeyed.push(peer);
  }

  private send(to: string, codec: string, payload: Uint8Array, round: number, extra: Partial<ModelMessage> = {}): void {
    this.t!.send(to, { kind: 'model', scenario: this.o.scenario, round, layoutHash: this.o.layoutHash, codec, payload, ...extra });
  }

  private refuse(from: string, reason: string): void {
    this.refused++;
    this.o.onRefused?.(from, reason);
  }
}

/** `graph`: the round-0 participants and static graph, the same as at the run's setup. */
export interface RejoinOptions extends PeerSessionOptions {
  readonly layoutHash: string;
  readonly roundMs: number;
  readonly rounds: number;
  /** r0 was decided: from it this peer masks and sends (Infinity: it stays a receiver). */
  readonly onDecided?: (sendsFrom: number, why: string) => void;
  readonly onRefused?: (from: string, reason: string) => void;
}

/**
 * The joiner's side: a SecureSession with a fresh key whose setup is the announcement above. `setup()` starts it and resolves at
 * once; keys and shares follow over the run's transport; masking starts at `sendsFrom` (decided just before r0, reported
 * through onDecided).
 */
export class RejoinSession extends PeerSecureSession {
  private closed = false;
  private timer: number | null = null;
  private current: CurrentKey | undefined;
  private dealt: SealedShare[] | null = null;
  private readonly answered = new Set<string>();
  /** Each participant's key as it answered with it (its newest: the one it holds the secret of, so shares are sealed to it). */
  private readonly newest = new Map<string, CurrentKey>();
  private readonly dealAcked = new Set<string>();
  private late: string | undefined;
  private decided = false;
  /** This peer's responder (set when the responder takes this session as its joiner): keys from later rounds are scheduled there. */
  responder: RekeyResponder | undefined;
  /** First round this peer masks in; Infinity until decided, and for good when the rejoin did not complete. */
  sendsFrom = Number.POSITIVE_INFINITY;
  fromRound = 0;

  // the same holder sets and threshold as the setup (holders.ts): receivers rebuilding this peer's new key ask its holder set
  constructor(private readonly o: RejoinOptions) {
    super(o);
  }

  /** This peer's current key announcement (for the responder's replies to other joiners). */
  get mine(): CurrentKey | undefined { return this.current; }

  /** Where the rekey stands: who answered, to whom shares were dealt, who acknowledged them (status, tests). */
  get progress(): { answered: string[]; dealt: string[]; acknowledged: string[] } {
    return { answered: [...this.answered].sort(), dealt: (this.dealt ?? []).map((s) => s.holder).sort(), acknowledged: [...this.dealAcked].sort() };
  }

  /** The others know this peer's new key from r0 on (they swap it in then, whatever this peer decides); none before its announcement. */
  override get keyFromRound(): number { return this.current ? this.fromRound : Number.POSITIVE_INFINITY; }

  /** The transport is the responder's (it routes the replies here); nothing to intercept at this level. */
  wrap(t: AveragingTransport): AveragingTransport {
    this.attach(t);
    return t;
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) this.t?.clearTimer(this.timer);
  }

  private get round(): number { return Math.floor(this.t!.now() / this.o.roundMs); }

  protected override async runSteps(): Promise<void> {
    if (!this.t || !this.peers.has(this.self)) throw new Error('rejoin session used before its node registered');
    this.fromRound = this.round + rekeyLead(this.o.roundMs);
    this.current = signRekey(this.o.scenario, this.self, this.fromRound, this.me.keys.publicKey, this.identitySecrets.get(this.self)!);
    this.publicKeys.set(this.self, this.me.keys.publicKey);
    this.recordKey(this.self, this.current);
    if (this.fromRound >= this.o.rounds) { this.decide(); return; }
    const r0Ms = this.fromRound * this.o.roundMs;
    const cutoff = r0Ms - this.o.roundMs / 2;
    // until r0: announce and deal; after it, shares still unacknowledged are re-sent (they matter if this peer drops again)
    const tick = (): void => {
      if (this.closed) return;
      void this.step(this.t!.now() >= cutoff);
      if (this.t!.now() < r0Ms || (this.dealt ?? []).some((x) => !this.dealAcked.has(x.holder))) this.timer = this.t!.setTimer(RESEND_MS, tick);
    };
    tick();
    this.t.setTimer(Math.max(0, r0Ms - Math.min(50, this.o.roundMs * 0.01) - this.t.now()), () => this.decide());
    // resolves at once: the node's rounds and this session's messages share the transport's one queue, so a setup that waited
    // for the replies here would hold them back (the node sends nothing before sendsFrom anyway)
  }

  /** Announce to those that have not answered; deal once every key is in (or at the cutoff); re-send shares not acknowledged. */
  private async step(cutoff: boolean): Promise<void> {
    for (const p of this.others) if (!this.answered.has(p)) this.send(p, REKEY_CODEC.announce, new Uint8Array([...this.current!.publicKey, ...this.current!.signature]));
    const answered = this.others.filter((p) => this.answered.has(p));
    const holders = this.holdersOf(this.self).filter((p) => this.answered.has(p));
    if (!this.dealt && (answered.length === this.others.length || cutoff) && holders.length >= 2) {
      this.dealt = [];
      // sealed to the key each holder answered with: a holder that is rejoining too holds only its new secret
      const sealed = await dealShares(this.self, this.o.scenario, this.me.keys, holders.map((h) => ({ peer: h, publicKey: this.newest.get(h)!.publicKey })), Math.min(this.threshold, holders.length));
      this.dealt = sealed;
    }
    for (const s of this.dealt ?? []) if (!this.dealAcked.has(s.holder)) this.send(s.holder, REKEY_CODEC.deal, s.box, { shareId: this.self, nonce: hex(s.nonce) });
  }

  /** Replies routed here by the responder: a participant's current key, its key directory, a share's receipt, or `late`. */
  receive(from: string, msg: ModelMessage): void {
    if (this.closed || !this.current) return;
    if (msg.codec === REKEY_CODEC.late) { this.late ??= from; return; }
    if (msg.codec === REKEY_CODEC.dealAck) { if (this.dealt?.some((s) => s.holder === from)) this.dealAcked.add(from); return; }
    if (msg.codec === REKEY_CODEC.dir) return this.onDirectory(from, msg);
    if (msg.codec !== REKEY_CODEC.key) return;
    const k: CurrentKey = { publicKey: msg.payload.slice(0, 32), signature: msg.payload.slice(32), fromRound: msg.round };
    if (msg.payload.byteLength !== 96 || !verifyKey(this.o.scenario, from, k, this.identity.get(from)!)) {
      this.refusedAnnouncements++;
      return this.o.onRefused?.(from, 'secure-rekey-key-refused');
    }
    // a participant rejoining too answers with its fresh key, from its own r0 (maybe after this peer's): a schedule entry
    this.learn(from, k);
    const had = this.newest.get(from);
    if (!had || had.fromRound < k.fromRound) this.newest.set(from, k);
    this.answered.add(from);
  }

  /** Another participant's signed keys of the others (each checked against its owner's identity; its own key comes as `key`). */
  private onDirectory(from: string, msg: ModelMessage): void {
    const entries = decodeDirectory(msg.participants, msg.payload);
    if (!entries) { this.refusedAnnouncements++; return this.o.onRefused?.(from, 'secure-rekey-dir-refused'); }
    for (const [q, k] of entries) {
      if (q === this.self) continue;
      const id = this.identity.get(q);
      if (!id || !verifyKey(this.o.scenario, q, k, id)) { this.refusedAnnouncements++; this.o.onRefused?.(from, 'secure-rekey-dir-refused'); continue; }
      this.learn(q, k);
    }
  }

  /** A verified key: recorded; one from a later round is scheduled with the responder (swapped in at its r0 there). */
  private learn(peer: string, k: CurrentKey): void {
    this.recordKey(peer, k);
    if (k.fromRound > this.round) this.responder?.schedule(peer, k);
    // after the decision (a reply that came late, or this peer stays a receiver): the key in force now, for rebuilding drops
    if (this.decided && !this.publicKeys.has(peer)) {
      const now = this.keyAt(peer, Math.max(this.round, this.fromRound));
      if (now) this.publicKeys.set(peer, now.publicKey);
    }
  }

  /**
   * Just before r0: mask from r0 only when every other participant answered (it holds the new key and swaps it in at r0), none
   * answered `late`, and this peer knows each participant's key in force at r0 (for another rejoiner whose r0 is later: its
   * old key, from a directory). Shares not acknowledged yet do not stop it (they are re-sent; they only matter if this peer
   * drops again, when its receivers rebuild its key from them).
   */
  private decide(): void {
    if (this.closed) return;
    this.decided = true;
    const missing = this.others.filter((p) => !this.answered.has(p));
    const noKey = this.others.filter((p) => this.answered.has(p) && !this.keyAt(p, this.fromRound));
    // every pair with this peer masks with the keys in force at r0; later ones are swapped in by the responder at their r0
    for (const p of this.others) { const k = this.keyAt(p, this.fromRound); if (k) this.publicKeys.set(p, k.publicKey); }
    const unacked = (this.dealt ?? []).filter((s) => !this.dealAcked.has(s.holder)).map((s) => s.holder);
    const why = this.fromRound >= this.o.rounds ? 'r0 is past the last round'
      : this.late ? `${this.late} heard the new key after r0 began there`
        : missing.length ? `no key from ${missing.join(', ')}`
          : noKey.length ? `no key in force at round ${this.fromRound} known for ${noKey.join(', ')} (rejoining from a later round; no directory had its old key)` : '';
    this.sendsFrom = why ? Number.POSITIVE_INFINITY : this.fromRound;
    const note = unacked.length ? ` (shares not acknowledged yet by ${unacked.join(', ')}: re-sent)` : '';
    this.o.onDecided?.(this.sendsFrom, why || `masking with a fresh key from round ${this.fromRound}${note}`);
  }

  private send(to: string, codec: string, payload: Uint8Array, extra: Partial<ModelMessage> = {}): void {
    this.t!.send(to, { kind: 'model', scenario: this.o.scenario, round: this.fromRound, layoutHash: this.o.layoutHash, codec, payload, ...extra });
    this.setupBytes += payload.byteLength;
  }
}
