/**
 * A peer back in a secure run after a restart (docs/privacy.md "Restart and late join"). Its old ephemeral key died with the
 * process, and its neighbours may have rebuilt that key from Shamir shares while it was away (dropout recovery, node.ts), so
 * it never masks with the old key again. Instead:
 *   1. it draws a FRESH ephemeral X25519 key and announces it to every other participant, signed with its Ed25519 identity, with
 *      the first round r0 from which it masks: r0 = its current round + rekeyLead(roundMs) (at least 3 rounds and 5 s ahead);
 *   2. each participant that hears the announcement before its own round r0 starts holds it and replies with its own current key
 *      announcement (the joiner lost them all) and its key directory: every committed signed key it knows of the others, in force
 *      or from a later round (`secure-rekey-dir`); one heard at round r0 or later is answered `late`;
 *   3. once every other participant answered, the joiner deals sealed Shamir shares of its new secret to its public holder set
 *      (holders.ts, the same set and threshold as at setup), each sealed to the key the holder answered with; each holder
 *      acknowledges its share;
 *   4. COMMIT: with every answer in, none `late`, and every share acknowledged, before the cutoff (half a round before r0), the
 *      joiner sends `secure-rekey-commit` to everyone (re-sent until acknowledged). A participant swaps the key in (and its share),
 *      forgetting the pair secrets and any secret it had rebuilt from the old key (SecureDpsgdNode.rekeyed), just before r0 if
 *      the commit came before r0 began there, else at the start of its next round. A key never committed is never used: an
 *      attempt that cannot commit by the cutoff is dropped and a new one announced (same key, r0 = current round + lead), so a
 *      joiner cut off from one participant for a while, or dead again before committing, changes nothing for the others (its
 *      receivers keep removing its masks with its old secret) and a live one masks once it is reachable again;
 *   5. the joiner masks from r0 when every participant acknowledged the commit and it knows every key in force at r0; a commit
 *      acknowledged later: from two rounds after the last receipt (a late one is swapped in at the next round there).
 * Two (or more) participants rejoining at once, J1 with r0_1 <= r0_2 of J2: each answers the other's announcement with its fresh
 * key (a key from a later round than the asker's current one is accepted: it is signed with its r0, and counts once committed).
 * What each masks with, round by round, is a key schedule (PeerSecureSession.keyLog / keyAt): J1 masks rounds [r0_1, r0_2)
 * against J2's OLD key (in force at every other participant until r0_2; J2 sends nothing then, so its receivers remove those
 * masks with J2's old secret, rebuilt as for any drop) and from r0_2 against J2's new one (its own responder holds J2's key until
 * J2's commit, as every participant does). J1 cannot get J2's old key from J2 (it died with J2's process): it takes it from the
 * directories, where each entry is signed by its owner, so a relayer cannot forge one. J2 needs only J1's new key (in force from
 * r0_1 <= r0_2). A holder that is itself rejoining gets its share sealed to its NEW key (the one it answered with: the only
 * secret it has); it releases shares from its own r0 on, once committed, when the others know that key (node.ts); it is not
 * skipped, as the threshold at small n may need every holder (n = 4: t = 2 of h = 3). A joiner that dies again after its commit:
 * its new key takes effect everywhere and its receivers rebuild it from the shares it dealt (acknowledged before the commit).
 * Why r0 this far ahead: the announcement is re-sent every second until answered, and a participant must hold the new key
 * before it masks round r0 (a sender masks against every other sender of its receiver). Three rounds and at least five seconds
 * leave room for several re-sends and for a participant whose run is just restarting to be reachable again.
 * Until it masks the joiner sends no model: it receives its neighbours' masked sums and mixes them into the model restored from
 * its checkpoint (nothing plain is pulled: a secure peer never answers a pull). What that leaks: nothing beyond a receiver's usual
 * view (the weighted sum of its senders' models); its own earlier rounds' masks were recovered by its receivers as for any drop.
 * Not handled: a commit that reaches some participants only after r0 (they use the old key until their next round: sums with
 * the joiner missing decode wrong there meanwhile; the commit is sent half a round before r0 to participants that all answered
 * moments before), a late approver (not in the round-0 static graph the weights and masks are agreed on: SECURE_LATE stays),
 * shares the joiner held for others (lost: the holder sets are one short of that peer).
 */
import { bytesToHex as hex, equalBytes } from '@noble/curves/utils.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { AveragingMessage, AveragingTransport, MaybePromise, ModelMessage, PeerId } from '../types.ts';
import { announce, dealShares, openShare, verifyAnnouncement, type SealedShare } from './crypto.ts';
import { PeerSecureSession, type CurrentKey, type LoggedKey, type PeerSessionOptions } from './peer-session.ts';

export type { CurrentKey } from './peer-session.ts';

export const REKEY_CODEC = { announce: 'secure-rekey', key: 'secure-rekey-key', dir: 'secure-rekey-dir', deal: 'secure-rekey-deal', dealAck: 'secure-rekey-dack', late: 'secure-rekey-late',
  commit: 'secure-rekey-commit', commitAck: 'secure-rekey-cack' } as const;
const REKEY_CODECS: ReadonlySet<string> = new Set(Object.values(REKEY_CODEC));
const RESEND_MS = 1000;
/** One key directory entry on the wire: fromRound (uint32, big-endian), public key, signature; its owner in `participants`. */
const DIR_ENTRY = 4 + 32 + 64;
const te = new TextEncoder();

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

interface Pending { readonly publicKey: Uint8Array; readonly fromRound: number; share?: Uint8Array; committed: boolean; applied: boolean }

/** How long before a round's start a key for it is swapped in (the round's timers then see the new key). */
const swapMargin = (roundMs: number): number => Math.min(50, roundMs * 0.01);

/**
 * Every participant's side: answers joiners' announcements (its key and its key directory), holds their new shares, and swaps
 * each joiner's key in once the joiner committed it: just before its r0, or at the next round's start when the commit came after
 * r0 began here. A key never committed is never used. `wrap` puts it under the secure session on the run's transport (it sees the
 * rekey messages first).
 */
export class RekeyResponder {
  private t: AveragingTransport | null = null;
  private self = '';
  /** Announced keys by joiner, in fromRound order (a joiner that retries or restarts again announces again). */
  private readonly pending = new Map<string, Pending[]>();
  private joinerSession: RejoinSession | undefined;
  /** This peer's averaging node, once created. */
  node: Rekeyable | undefined;
  refused = 0;
  /** Joiners whose new key took effect here (once per key). */
  readonly rekeyed: string[] = [];

  /** This peer's session (its key, the keys it masks with, the shares it holds): replaced when this peer rejoins while alive (burn.ts). */
  private session: PeerSecureSession;
  private mine: () => CurrentKey | undefined;

  constructor(private readonly o: RekeyOptions) {
    this.session = o.session;
    this.mine = o.mine;
  }

  /**
   * This peer rejoins with a fresh key while alive (its old one burnt, burn.ts): from now on the responder answers with, records
   * into and swaps keys in `joiner`, and routes the replies to its announcement there.
   */
  rebind(joiner: RejoinSession): void {
    this.session = joiner;
    this.mine = () => joiner.mine;
    this.joiner = joiner;
  }

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
    if (msg.scenario !== this.o.scenario || !this.session.identity.has(from)) return this.refuse(from, 'secure-rekey-foreign');
    if (msg.codec === REKEY_CODEC.announce) return this.onAnnounce(from, msg);
    if (msg.codec === REKEY_CODEC.deal) return this.onDeal(from, msg);
    if (msg.codec === REKEY_CODEC.commit) return this.onCommit(from, msg);
    this.joiner?.receive(from, msg);
  }

  private onAnnounce(from: string, msg: ModelMessage): void {
    const k: CurrentKey = { publicKey: msg.payload.slice(0, 32), signature: msg.payload.slice(32), fromRound: msg.round };
    if (msg.payload.byteLength !== 96 || k.fromRound < 1 || !verifyKey(this.o.scenario, from, k, this.session.identity.get(from)!)) return this.refuse(from, 'secure-rekey-refused');
    // heard after its r0 began here (or an older attempt than one known): the joiner must not commit this one
    if (this.schedule(from, k, false) !== 'ok') return this.send(from, REKEY_CODEC.late, new Uint8Array(0), k.fromRound);
    const mine = this.mine();
    if (mine) this.send(from, REKEY_CODEC.key, new Uint8Array([...mine.publicKey, ...mine.signature]), mine.fromRound);
    const dir = this.directory(from);
    if (dir.participants.length) this.send(from, REKEY_CODEC.dir, dir.payload, this.round, { participants: dir.participants });
  }

  /**
   * A joiner's verified key, held until its commit (from its announcement, or learned by this peer's own joiner session from a
   * reply; `committed`: from a directory, whose keys are committed). 'late': its r0 has begun here; 'stale': a key of the same
   * joiner from that round or a later one is already held (keys only move forward).
   */
  schedule(peer: string, k: CurrentKey, committed: boolean): 'ok' | 'late' | 'stale' {
    const known = this.pending.get(peer) ?? [];
    const hit = known.find((p) => equalBytes(p.publicKey, k.publicKey) && p.fromRound === k.fromRound);
    if (hit) { if (committed) this.commit(peer, hit); return 'ok'; }
    if (known.some((p) => p.fromRound >= k.fromRound)) return 'stale';
    if (this.round >= k.fromRound) return 'late';
    const entry = this.hold(peer, k);
    if (committed) this.commit(peer, entry);
    return 'ok';
  }

  private hold(peer: string, k: CurrentKey): Pending {
    const entry: Pending = { publicKey: k.publicKey, fromRound: k.fromRound, committed: false, applied: false };
    this.pending.set(peer, [...(this.pending.get(peer) ?? []), entry].sort((a, b) => a.fromRound - b.fromRound));
    this.session.recordKey(peer, k);
    const at = k.fromRound * this.o.roundMs - swapMargin(this.o.roundMs);
    this.t!.setTimer(Math.max(0, at - this.t!.now()), () => this.apply(peer, entry));
    return entry;
  }

  /** Committed: in force from its r0, or from the next round when the commit came after r0 began here. */
  private commit(peer: string, p: Pending): void {
    if (p.committed) return;
    p.committed = true;
    const at = p.fromRound * this.o.roundMs - swapMargin(this.o.roundMs);
    const late = this.t!.now() >= at;
    const inForce = late ? this.round + 1 : p.fromRound;
    this.session.recordKey(peer, { publicKey: p.publicKey, signature: new Uint8Array(0), fromRound: p.fromRound }, inForce);
    if (late) this.t!.setTimer(Math.max(0, inForce * this.o.roundMs - swapMargin(this.o.roundMs) - this.t!.now()), () => this.apply(peer, p));
  }

  /** The joiner's commit of its key (sent once every participant answered and its holders acknowledged their shares). */
  private onCommit(from: string, msg: ModelMessage): void {
    const pk = msg.payload.slice(0, 32);
    let p = (this.pending.get(from) ?? []).find((x) => x.fromRound === msg.round && equalBytes(x.publicKey, pk));
    if (!p) {
      // announced to this peer's previous run, or learned from a reply only: the key is in the log if this peer knows it
      const logged = (this.session.keyLog.get(from) ?? []).find((x) => x.fromRound === msg.round && equalBytes(x.publicKey, pk));
      if (!logged || (this.pending.get(from) ?? []).some((x) => x.fromRound > msg.round)) return;   // not acknowledged: re-sent
      p = this.hold(from, logged);
    }
    this.commit(from, p);
    this.send(from, REKEY_CODEC.commitAck, new Uint8Array(0), p.fromRound);
  }

  /** The committed signed keys this peer knows of everyone but `to`: each one's key in force now and those from later rounds. */
  private directory(to: string): { participants: string[]; payload: Uint8Array } {
    const entries: [string, CurrentKey][] = [];
    for (const [q, log] of this.session.keyLog) {
      if (q === to) continue;
      const now = log.filter((k) => k.inForce <= this.round).at(-1);
      for (const k of log) if (k.signature.length && (k === now || (k.inForce > this.round && Number.isFinite(k.inForce)))) entries.push([q, k]);
    }
    return encodeDirectory(entries);
  }

  private onDeal(from: string, msg: ModelMessage): void {
    const p = (this.pending.get(from) ?? []).find((x) => x.fromRound === msg.round);
    const nonce = msg.nonce ?? '';
    const me = this.session.peers.get(this.self);
    if (!p || !me || msg.shareId !== from || !/^[0-9a-f]{24}$/.test(nonce)) return this.refuse(from, 'secure-rekey-share-refused');
    const share = openShare({ dealer: from, holder: this.self, scenario: this.o.scenario, nonce: Uint8Array.from(Buffer.from(nonce, 'hex')), box: msg.payload.slice() },
      this.self, this.o.scenario, me.keys.secretKey, p.publicKey);
    if (!share) return this.refuse(from, 'secure-rekey-share-refused');
    if (!p.applied) p.share = share;
    // a re-send after the swap (the first was lost or late): held from now on if that key is still the joiner's current one here
    else if (!me.held.has(from) && equalBytes(this.session.publicKeys.get(from) ?? new Uint8Array(0), p.publicKey)) me.held.set(from, share);
    this.send(from, REKEY_CODEC.dealAck, new Uint8Array(0), p.fromRound);
  }

  /** When a committed key comes in force: it (and its share) replace the old; the node forgets what it derived from the old one. */
  private apply(peer: string, p: Pending): void {
    if (p.applied || !p.committed) return;
    // a later key of the same joiner already in force here (its commit came first): this one is superseded
    const current = this.session.keyAt(peer, Math.max(this.round + 1, p.fromRound));
    if (current && current.fromRound > p.fromRound) return;
    p.applied = true;
    this.session.publicKeys.set(peer, p.publicKey);
    const held = this.session.peers.get(this.self)?.held;
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
  /** Decided, for good: from `sendsFrom` this peer masks and sends (Infinity: it stays a receiver; `why` says why). */
  readonly onDecided?: (sendsFrom: number, why: string) => void;
  /** An attempt did not commit before its r0 (`why`); a new one starts with r0 = `fromRound`. */
  readonly onRetry?: (fromRound: number, why: string) => void;
  readonly onRefused?: (from: string, reason: string) => void;
}

/**
 * The joiner's side: a SecureSession with a fresh key whose setup is the announcement above. `setup()` starts it and resolves at
 * once; keys, shares and the commit follow over the run's transport; masking starts at `sendsFrom` (reported through onDecided).
 * An attempt that cannot commit before its cutoff (half a round before its r0: someone did not answer, answered `late`, or did
 * not acknowledge its share) is dropped, and a new one announced (same key, r0 = the current round + lead) while r0 stays
 * inside the run. The key is the same across attempts: it was never used before a commit.
 */
export class RejoinSession extends PeerSecureSession {
  private closed = false;
  private timer: number | null = null;
  private current: CurrentKey | undefined;
  private dealt: SealedShare[] | null = null;
  private dealing = false;
  private answered = new Set<string>();
  /** Each participant's key as it answered with it (its newest: the one it holds the secret of, so shares are sealed to it). */
  private readonly newest = new Map<string, CurrentKey>();
  private dealAcked = new Set<string>();
  private commitAcked = new Set<string>();
  private late: string | undefined;
  private committed = false;
  /** Past this attempt's r0: waiting for every commit receipt and every key in force to start masking. */
  private awaiting = false;
  private done = false;
  private attempts = 0;
  /** This peer's responder (set when the responder takes this session as its joiner): keys from later rounds are held there. */
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

  /** Where the rekey stands (status, tests). */
  get progress(): { attempt: number; fromRound: number; answered: string[]; dealt: string[]; acknowledged: string[]; committed: boolean; commitAcknowledged: string[] } {
    return { attempt: this.attempts, fromRound: this.fromRound, answered: [...this.answered].sort(), dealt: (this.dealt ?? []).map((s) => s.holder).sort(),
      acknowledged: [...this.dealAcked].sort(), committed: this.committed, commitAcknowledged: [...this.commitAcked].sort() };
  }

  /** The others know this peer's new key from r0 on once it committed it; before that they use its old one (which died with it). */
  override get keyFromRound(): number { return this.committed ? this.fromRound : Number.POSITIVE_INFINITY; }

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
    this.publicKeys.set(this.self, this.me.keys.publicKey);
    this.attempt();
    const tick = (): void => {
      if (this.closed || this.done || this.round >= this.o.rounds) return;
      void this.step();
      this.timer = this.t!.setTimer(RESEND_MS, tick);
    };
    tick();
    // resolves at once: the node's rounds and this session's messages share the transport's one queue, so a setup that waited
    // for the replies here would hold them back (the node sends nothing before sendsFrom anyway)
  }

  /** A new attempt: r0 = the current round + lead, announced to everyone again; decided just before r0. */
  private attempt(): void {
    this.fromRound = this.round + rekeyLead(this.o.roundMs);
    if (this.fromRound >= this.o.rounds) return this.final(Number.POSITIVE_INFINITY, 'r0 is past the last round');
    this.attempts++;
    this.current = signRekey(this.o.scenario, this.self, this.fromRound, this.me.keys.publicKey, this.identitySecrets.get(this.self)!);
    this.answered = new Set();
    this.dealt = null;
    this.dealAcked = new Set();
    this.commitAcked = new Set();
    this.late = undefined;
    const r0 = this.fromRound;
    this.t!.setTimer(Math.max(0, r0 * this.o.roundMs - swapMargin(this.o.roundMs) - this.t!.now()), () => { if (this.fromRound === r0) this.decide(); });
  }

  private get cutoffMs(): number { return this.fromRound * this.o.roundMs - this.o.roundMs / 2; }

  /** Announce to those that have not answered; deal once every key is in; commit; re-send what is not acknowledged. */
  private async step(): Promise<void> {
    if (!this.current || this.done) return;
    const payload = new Uint8Array([...this.current.publicKey, ...this.current.signature]);
    if (!this.committed) for (const p of this.others) if (!this.answered.has(p)) this.send(p, REKEY_CODEC.announce, payload);
    if (!this.dealt && !this.dealing && !this.committed && this.others.every((p) => this.answered.has(p))) {
      this.dealing = true;
      const r0 = this.fromRound;
      // sealed to the key each holder answered with: a holder that is rejoining too holds only its new secret
      const holders = this.holdersOf(this.self).map((h) => ({ peer: h, publicKey: this.newest.get(h)!.publicKey }));
      const sealed = holders.length >= 2 ? await dealShares(this.self, this.o.scenario, this.me.keys, holders, Math.min(this.threshold, holders.length)) : [];
      this.dealing = false;
      if (r0 !== this.fromRound) return;   // a new attempt began meanwhile
      this.dealt = sealed;
    }
    for (const s of this.dealt ?? []) if (!this.dealAcked.has(s.holder)) this.send(s.holder, REKEY_CODEC.deal, s.box, { shareId: this.self, nonce: hex(s.nonce) });
    this.tryCommit();
    if (this.committed) for (const p of this.others) if (!this.commitAcked.has(p)) this.send(p, REKEY_CODEC.commit, this.current.publicKey);
    if (this.awaiting) this.tryStart(this.round + 2);
  }

  /** Commits once every participant answered (none `late`) and every holder acknowledged its share, before the cutoff. */
  private tryCommit(): void {
    if (this.committed || this.late || !this.dealt || this.t!.now() >= this.cutoffMs) return;
    if (!this.others.every((p) => this.answered.has(p)) || !this.dealt.every((s) => this.dealAcked.has(s.holder))) return;
    this.committed = true;
    this.recordKey(this.self, this.current!, this.fromRound);
    for (const p of this.others) this.send(p, REKEY_CODEC.commit, this.current!.publicKey);
  }

  /** Replies routed here by the responder: a participant's key, its key directory, a share's or the commit's receipt, or `late`. */
  receive(from: string, msg: ModelMessage): void {
    if (this.closed || !this.current) return;
    // receipts and `late` name the attempt (its r0): an earlier attempt's are stale
    if ((msg.codec === REKEY_CODEC.late || msg.codec === REKEY_CODEC.dealAck || msg.codec === REKEY_CODEC.commitAck) && msg.round !== this.fromRound) return;
    if (msg.codec === REKEY_CODEC.late) { if (!this.committed) this.late ??= from; return; }
    if (msg.codec === REKEY_CODEC.dealAck) { if (this.dealt?.some((s) => s.holder === from)) { this.dealAcked.add(from); this.tryCommit(); } return; }
    if (msg.codec === REKEY_CODEC.commitAck) { if (this.committed) this.commitAcked.add(from); if (this.awaiting) this.tryStart(this.round + 2); return; }
    if (msg.codec === REKEY_CODEC.dir) return this.onDirectory(from, msg);
    if (msg.codec !== REKEY_CODEC.key) return;
    const k: CurrentKey = { publicKey: msg.payload.slice(0, 32), signature: msg.payload.slice(32), fromRound: msg.round };
    if (msg.payload.byteLength !== 96 || !verifyKey(this.o.scenario, from, k, this.identity.get(from)!)) {
      this.refusedAnnouncements++;
      return this.o.onRefused?.(from, 'secure-rekey-key-refused');
    }
    // a participant rejoining too answers with its fresh key: in force once it commits it (its r0 past here: it did, or it
    // would have announced a new attempt)
    this.learn(from, k, k.fromRound <= this.round);
    const had = this.newest.get(from);
    if (!had || had.fromRound < k.fromRound) this.newest.set(from, k);
    this.answered.add(from);
  }

  /** Another participant's committed signed keys of the others (each checked against its owner's identity). */
  private onDirectory(from: string, msg: ModelMessage): void {
    const entries = decodeDirectory(msg.participants, msg.payload);
    if (!entries) { this.refusedAnnouncements++; return this.o.onRefused?.(from, 'secure-rekey-dir-refused'); }
    for (const [q, k] of entries) {
      if (q === this.self) continue;
      const id = this.identity.get(q);
      if (!id || !verifyKey(this.o.scenario, q, k, id)) { this.refusedAnnouncements++; this.o.onRefused?.(from, 'secure-rekey-dir-refused'); continue; }
      this.learn(q, k, true);
    }
  }

  /** A verified key: recorded; one from a later round is held by the responder until its commit (swapped in there). */
  private learn(peer: string, k: CurrentKey, committed: boolean): void {
    const logged: LoggedKey = this.recordKey(peer, k, k.fromRound === 0 || (committed && k.fromRound <= this.round) ? k.fromRound : Number.POSITIVE_INFINITY);
    if (k.fromRound > this.round) this.responder?.schedule(peer, k, committed);
    // once decided (a reply that came late, or this peer waits): the key in force, for rebuilding drops
    if ((this.awaiting || this.done) && !this.publicKeys.has(peer)) {
      const now = this.keyAt(peer, Math.max(this.round, this.fromRound));
      if (now) this.publicKeys.set(peer, now.publicKey);
    }
    void logged;
  }

  /**
   * Just before r0: an attempt that did not commit is dropped and a new one begins (none of the others uses the key). A committed
   * one masks from r0 when every participant acknowledged the commit and this peer knows every key in force at r0 (for another
   * rejoiner whose key comes later: its old key, from a directory); otherwise it waits, and masks from two rounds after both hold
   * (a commit acknowledged late is applied there at the next round).
   */
  private decide(): void {
    if (this.closed || this.done) return;
    if (!this.committed) {
      const missing = this.others.filter((p) => !this.answered.has(p));
      const unacked = (this.dealt ?? []).filter((s) => !this.dealAcked.has(s.holder)).map((s) => s.holder);
      const why = this.late ? `${this.late} heard the new key after r0 began there`
        : missing.length ? `no answer from ${missing.join(', ')}` : unacked.length ? `shares not acknowledged by ${unacked.join(', ')}` : 'not committed before the cutoff';
      const next = this.round + rekeyLead(this.o.roundMs);
      if (next >= this.o.rounds) return this.final(Number.POSITIVE_INFINITY, why);
      this.o.onRetry?.(next, why);
      return this.attempt();
    }
    for (const p of this.others) { const k = this.keyAt(p, this.fromRound); if (k) this.publicKeys.set(p, k.publicKey); }
    this.awaiting = true;
    this.tryStart(this.fromRound);
  }

  /** Masks from `from` once every participant acknowledged the commit and every key in force then is known. */
  private tryStart(from: number): void {
    if (this.done || !this.awaiting) return;
    if (from >= this.o.rounds) return this.final(Number.POSITIVE_INFINITY, 'not every participant acknowledged the commit before the last round');
    if (!this.others.every((p) => this.commitAcked.has(p) && this.keyAt(p, from))) return;
    for (const p of this.others) this.publicKeys.set(p, this.keyAt(p, from)!.publicKey);
    const note = from > this.fromRound ? ` (the key is in force from round ${this.fromRound}; every commit receipt was in only later)` : '';
    this.final(from, `masking with a fresh key from round ${from}${note}`);
  }

  private final(sendsFrom: number, why: string): void {
    this.done = true;
    this.awaiting = false;
    this.sendsFrom = sendsFrom;
    this.o.onDecided?.(sendsFrom, why);
  }

  private send(to: string, codec: string, payload: Uint8Array, extra: Partial<ModelMessage> = {}): void {
    this.t!.send(to, { kind: 'model', scenario: this.o.scenario, round: this.fromRound, layoutHash: this.o.layoutHash, codec, payload, ...extra });
    this.setupBytes += payload.byteLength;
  }
}
