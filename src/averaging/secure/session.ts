/**
 * One scenario's key setup for secure averaging, as every participant runs it before round 0:
 *   1. each peer draws an ephemeral X25519 key and announces its public key in a message signed with its Ed25519 identity;
 *      every peer verifies every announcement (a forged or tampered one is refused and counted);
 *   2. each peer splits its ephemeral secret into Shamir shares, one per other participant (threshold t = floor(n/2) + 1 of
 *      n - 1 holders, at most 255 holders), seals each to its holder (ChaCha20-Poly1305) and sends it; each holder opens its share
 *      (a tampered or replayed share fails authentication and is refused and counted).
 * In the simulator the announcements and sealed shares are handed over in process (their bytes are counted in `setupBytes`);
 * on real peers NetSecureSession (net-session.ts) sends them over the scenario's averaging transport, with the same cryptography.
 */
import { announce, dealShares, ephemeralKeys, identityKeys, openShare, verifyAnnouncement, type EphemeralKeys, type KeyAnnouncement, type SealedShare } from './crypto.ts';
import { Rng } from '../../util/random.ts';

export interface SecurePeerState {
  readonly id: string;
  readonly keys: EphemeralKeys;
  /** Shares this peer holds, by dealer (opened). */
  readonly held: Map<string, Uint8Array>;
}

export class SecureSession {
  readonly publicKeys = new Map<string, Uint8Array>();
  readonly peers = new Map<string, SecurePeerState>();
  readonly identity = new Map<string, Uint8Array>();
  /** Static topology: each peer's neighbours (its senders and receivers), fixed at setup. */
  readonly neighbours = new Map<string, readonly string[]>();
  threshold = 2;
  setupBytes = 0;
  refusedAnnouncements = 0;
  refusedShares = 0;
  /** Wall time the setup took (ms, all peers together in the simulator). */
  setupMs = 0;
  private ready: Promise<void> | null = null;
  protected readonly identitySecrets = new Map<string, Uint8Array>();

  constructor(readonly scenario: string, private readonly seed?: number) {}

  /** Register a peer with its neighbours (before setup). Keys from the OS CSPRNG, or from the seed in simulations. */
  register(id: string, neighbours: readonly string[]): void {
    const bytes = (salt: number): Uint8Array | undefined => {
      if (this.seed === undefined) return undefined;
      const r = new Rng((this.seed * 2654435761 + salt * 40503 + [...id].reduce((a, c) => a * 31 + c.charCodeAt(0), 7)) >>> 0);
      return Uint8Array.from({ length: 32 }, () => r.nextU32() & 0xff);
    };
    const idk = identityKeys(bytes(1) ?? crypto.getRandomValues(new Uint8Array(32)));
    this.identity.set(id, idk.publicKey);
    this.identitySecrets.set(id, idk.secretKey);
    this.peers.set(id, { id, keys: ephemeralKeys(bytes(2)), held: new Map() });
    this.neighbours.set(id, [...neighbours]);
  }

  /** Runs steps 1 and 2 once for every registered peer. */
  setup(): Promise<void> {
    this.ready ??= this.run();
    return this.ready;
  }

  private async run(): Promise<void> {
    const t0 = performance.now();
    await this.runSteps();
    this.setupMs = performance.now() - t0;
  }

  /** Steps 1 and 2; the simulator's in-process version (a real peer's runs over the network: net-session.ts). */
  protected async runSteps(): Promise<void> {
    const ids = [...this.peers.keys()].sort();
    const announcements: KeyAnnouncement[] = ids.map((id) => announce(id, this.scenario, this.peers.get(id)!.keys, this.identitySecrets.get(id)!));
    for (const a of announcements) {
      this.setupBytes += (ids.length - 1) * (a.publicKey.length + a.signature.length + a.peer.length + a.scenario.length);
      if (!this.acceptAnnouncement(a)) continue;
    }
    const n = ids.length;
    this.threshold = Math.max(2, Math.floor(n / 2) + 1);
    for (const dealer of ids) {
      const holders = ids.filter((h) => h !== dealer).slice(0, 255).map((h) => ({ peer: h, publicKey: this.publicKeys.get(h)! }));
      const threshold = Math.min(this.threshold, holders.length);
      if (holders.length < 2) continue;
      const sealed = await dealShares(dealer, this.scenario, this.peers.get(dealer)!.keys, holders, threshold);
      for (const s of sealed) {
        this.setupBytes += s.box.length + s.nonce.length + s.dealer.length + s.holder.length;
        this.deliverShare(s);
      }
    }
  }

  /** Step 1 at a receiver: a valid signature by the announced peer's identity, else refused. */
  acceptAnnouncement(a: KeyAnnouncement): boolean {
    const idPub = this.identity.get(a.peer);
    if (!idPub || a.scenario !== this.scenario || !verifyAnnouncement(a, idPub)) { this.refusedAnnouncements++; return false; }
    this.publicKeys.set(a.peer, a.publicKey);
    return true;
  }

  /** Step 2 at the holder: opens the sealed share, or refuses it (tampered, replayed from another scenario/holder, duplicate). */
  deliverShare(s: SealedShare): boolean {
    const holder = this.peers.get(s.holder);
    const dealerPk = this.publicKeys.get(s.dealer);
    if (!holder || !dealerPk || holder.held.has(s.dealer)) { this.refusedShares++; return false; }
    const share = openShare(s, s.holder, this.scenario, holder.keys.secretKey, dealerPk);
    if (!share) { this.refusedShares++; return false; }
    holder.held.set(s.dealer, share);
    return true;
  }
}
