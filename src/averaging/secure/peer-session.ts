/**
 * What every real peer's secure session shares (net-session.ts for the round-0 setup, rejoin.ts for a restarted peer's fresh
 * key): the participants and static graph come from the run plan, each participant's identity key is its peer ID (an Ed25519
 * public key, so no key directory is needed), the holder sets are planned before any share can arrive, and this peer's own key
 * pair is drawn from the OS CSPRNG with its libp2p identity seed for signing. The simulator's SecureSession registers every
 * simulated peer itself instead.
 */
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

export abstract class PeerSecureSession extends SecureSession {
  protected t: AveragingTransport | null = null;
  protected self = '';

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

  /** Binds the session to the run's transport (each subclass's wrap() does this first). */
  protected attach(t: AveragingTransport): void {
    this.t = t;
    this.self = t.self;
  }

  protected get me(): SecurePeerState { return this.peers.get(this.self)!; }
  /** The other participants, sorted. */
  protected get others(): string[] { return [...this.peerOptions.graph.keys()].filter((p) => p !== this.self).sort(); }
}
