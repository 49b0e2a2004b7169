/**
 * One scenario's key setup for secure averaging, as every participant runs it before round 0:
 *   1. each peer draws an ephemeral X25519 key and announces its public key in a message signed with its Ed25519 identity;
 *      every peer verifies every announcement (a forged or tampered one is refused and counted);
 *   2. each peer splits its ephemeral secret into Shamir shares, one per member of its public holder set (h of the others, drawn
 *      from the scenario id; threshold t; both from holders.ts holderPlan: SecAgg+-style, sized for a stated collusion and dropout
 *      fraction), seals each to its holder (ChaCha20-Poly1305) and sends it; each holder opens its share (a tampered or replayed
 *      share, or one from a dealer whose holder set does not name this peer, is refused and counted).
 * In the simulator the announcements and sealed shares are handed over in process (their bytes are counted in `setupBytes`);
 * on real peers NetSecureSession (net-session.ts) sends them over the scenario's averaging transport, with the same cryptography.
 */
import { announce, dealShares, ephemeralKeys, identityKeys, openShare, verifyAnnouncement, type EphemeralKeys, type KeyAnnouncement, type SealedShare } from './crypto.ts';
import { Rng } from '../../util/random.ts';
import { holderPlan, holderSets, type HolderPlan } from './holders.ts';

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
  /** h and t for this scenario's participants, and each dealer's holder set (public: every peer computes the same). */
  holderPlan: HolderPlan | null = null;
  private holderSetOf = new Map<string, readonly string[]>();
  setupBytes = 0;
  refusedAnnouncements = 0;
  refusedShares = 0;
  /**
   * Whether the setup needs messages over the nodes' own transport (real peers, net-session.ts): a round must then not wait for
   * it inside a transport timer. In the simulator the setup runs in process, and a round awaits it (deterministic order).
   */
  readonly setupOverTransport: boolean = false;
  /**
   * First round in which the other participants know this peer's current key: 0, or a rejoiner's r0 (rejoin.ts). Before it
   * this peer's key is not the one the others seal to, so it neither releases shares nor asks for them (node.ts).
   */
  get keyFromRound(): number { return 0; }
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

  /** The holder sets over `participants` (all of them, sorted): the same function on every peer and in the simulator. */
  protected planHolders(participants: readonly string[]): void {
    this.holderPlan = holderPlan(participants.length);
    this.threshold = this.holderPlan.threshold;
    this.holderSetOf = holderSets(participants, this.scenario, this.holderPlan.holders);
  }

  /** The peers that hold `dealer`'s shares (empty before the setup planned them, or for a participant unknown). */
  holdersOf(dealer: string): readonly string[] { return this.holderSetOf.get(dealer) ?? []; }

  /** The dealers whose holder sets name `holder`: the shares it should receive (a set of fewer than 2 is never dealt to). */
  dealersTo(holder: string): string[] { return [...this.holderSetOf].filter(([, hs]) => hs.length >= 2 && hs.includes(holder)).map(([d]) => d); }

  /** Steps 1 and 2; the simulator's in-process version (a real peer's runs over the network: net-session.ts). */
  protected async runSteps(): Promise<void> {
    const ids = [...this.peers.keys()].sort();
    const announcements: KeyAnnouncement[] = ids.map((id) => announce(id, this.scenario, this.peers.get(id)!.keys, this.identitySecrets.get(id)!));
    for (const a of announcements) {
      this.setupBytes += (ids.length - 1) * (a.publicKey.length + a.signature.length + a.peer.length + a.scenario.length);
      if (!this.acceptAnnouncement(a)) continue;
    }
    this.planHolders(ids);
    for (const dealer of ids) {
      const holders = this.holdersOf(dealer).map((h) => ({ peer: h, publicKey: this.publicKeys.get(h)! }));
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

  /**
   * Step 2 at the holder: opens the sealed share, or refuses it (tampered, replayed from another scenario/holder, duplicate, or
   * from a dealer whose public holder set does not name this holder).
   */
  deliverShare(s: SealedShare): boolean {
    const holder = this.peers.get(s.holder);
    const dealerPk = this.publicKeys.get(s.dealer);
    if (!holder || !dealerPk || holder.held.has(s.dealer) || !this.holdersOf(s.dealer).includes(s.holder)) { this.refusedShares++; return false; }
    const share = openShare(s, s.holder, this.scenario, holder.keys.secretKey, dealerPk);
    if (!share) { this.refusedShares++; return false; }
    holder.held.set(s.dealer, share);
    return true;
  }
}
