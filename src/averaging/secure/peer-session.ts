/**
 * What every real peer's secure session shares (net-session.ts for the round-0 setup, rejoin.ts for a restarted peer's fresh
 * key): the participants and static graph come from the run plan, each participant's identity key is its peer ID (an Ed25519
 * public key, so no key directory is needed), the holder sets are planned before any share can arrive, and this peer's own key
 * pair is drawn from the OS CSPRNG with its libp2p identity seed for signing. The simulator's SecureSession registers every
 * simulated peer itself instead.
 */
import { equalBytes } from '@noble/curves/utils.js';
import { peerIdFromString } from '@libp2p/peer-id';
import type { AveragingTransport } from '../types.ts';
import { ephemeralKeys } from './crypto.ts';
import { PairKeys } from './masking.ts';
import { SecureSession, type SecurePeerState } from './session.ts';

export interface PeerSessionOptions {
  readonly scenario: string;
  /** This peer's libp2p Ed25519 private key, raw (32-byte seed first). */
  readonly identitySeed: Uint8Array;
  /** Round-0 participants and the static graph over them (every participant draws the same one). */
  readonly graph: ReadonlyMap<string, readonly string[]>;
}

/**
 * A participant's signed key: its round-0 announcement (fromRound 0, crypto.ts's signature domain) or a rejoin's (fromRound r0,
 * rejoin.ts's domain). Anyone can check it against the participant's peer ID, so any participant may pass it on (rejoin.ts's
 * key directory).
 */
export interface CurrentKey { readonly publicKey: Uint8Array; readonly signature: Uint8Array; readonly fromRound: number }

/** A recorded key and the round it is in force from here: its fromRound once committed, later if the commit came late; Infinity until then. */
export interface LoggedKey extends CurrentKey { inForce: number }

const sameKey = (a: CurrentKey, b: CurrentKey): boolean => a.fromRound === b.fromRound && equalBytes(a.publicKey, b.publicKey);

export abstract class PeerSecureSession extends SecureSession {
  protected t: AveragingTransport | null = null;
  protected self = '';
  /**
   * Every verified signed key this peer knows, by participant, in fromRound order: the round-0 ones from the setup (in force from
   * round 0), rejoiners' fresh ones (in force once their commit is in: rejoin.ts), and what other participants passed on in their
   * key directories (committed there). Callers record only verified keys.
   */
  readonly keyLog = new Map<string, LoggedKey[]>();

  constructor(private readonly peerOptions: PeerSessionOptions) {
    super(peerOptions.scenario);
    for (const [p, ns] of peerOptions.graph) {
      this.neighbours.set(p, [...ns]);
      this.identity.set(p, peerIdFromString(p).publicKey!.raw);
    }
    // known before any share can arrive: a share from a dealer whose holder set does not name this peer is refused
    this.planHolders([...peerOptions.graph.keys()].sort());
  }

  /** The node registers itself (or the runner, first): a fresh key pair from the OS CSPRNG, never an old one. Idempotent. */
  override register(id: string): void {
    if (this.peers.has(id)) return;
    this.identitySecrets.set(id, this.peerOptions.identitySeed.subarray(0, 32));
    this.peers.set(id, { id, keys: ephemeralKeys(), held: new Map() });
  }

  /**
   * This peer's pairwise keys once the setup is complete: the consortium statistics' secure sum (secure-sum.ts) masks with the
   * same X25519 secrets as the models, under its own HKDF label. Waits for the setup (rejects as it does).
   */
  async pairKeys(): Promise<PairKeys> {
    await this.setup();
    return new PairKeys(this.me.keys.secretKey, this.publicKeys);
  }

  /**
   * Records a verified signed key of `peer`, in force from `inForce` (round-0 keys: 0; a rejoiner's: Infinity until committed).
   * A key recorded again keeps the earlier of the two rounds.
   */
  recordKey(peer: string, k: CurrentKey, inForce = k.fromRound === 0 ? 0 : Number.POSITIVE_INFINITY): LoggedKey {
    const log = this.keyLog.get(peer) ?? [];
    const known = log.find((x) => sameKey(x, k));
    if (known) { known.inForce = Math.min(known.inForce, inForce); return known; }
    const entry: LoggedKey = { publicKey: k.publicKey.slice(), signature: k.signature.slice(), fromRound: k.fromRound, inForce };
    log.push(entry);
    log.sort((a, b) => a.fromRound - b.fromRound);
    this.keyLog.set(peer, log);
    return entry;
  }

  /** `peer`'s key in force at `round` here: of the keys in force by then, the one from the latest round (undefined: none known). */
  keyAt(peer: string, round: number): LoggedKey | undefined {
    return (this.keyLog.get(peer) ?? []).filter((k) => k.inForce <= round).at(-1);
  }

  /** Binds the session to the run's transport (each subclass's wrap() does this first). */
  protected attach(t: AveragingTransport): void {
    this.t = t;
    this.self = t.self;
  }

  protected get me(): SecurePeerState { return this.peers.get(this.self)!; }
  /** The other participants, sorted. */
  protected get others(): string[] { return [...this.peerOptions.graph.keys()].filter((p) => p !== this.self).sort(); }
}
