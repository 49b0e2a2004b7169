/**
 * Secure (masked) averaging: the primitives, all from audited libraries (no cryptography written here).
 *   X25519 (@noble/curves) per-scenario ephemeral keys, announced in Ed25519-signed messages (the peer's identity key);
 *   HKDF-SHA256 (@noble/hashes) derives one key per (pair, scenario, round, receiver); ChaCha20 (@noble/ciphers) expands it
 *   into the mask; ChaCha20-Poly1305 (@noble/ciphers) seals Shamir shares (shamir-secret-sharing, audited by Cure53 and Zellic)
 *   of each peer's ephemeral secret to the other participants, bound to (scenario, dealer, holder) as associated data.
 *
 * Fixed point: a value v becomes round(v 2^F) mod 2^32 (two's complement), F = FRACTION_BITS = 24. Sums of encoded values
 * and masks are exact mod 2^32; a decoded sum is exact as long as its true value lies in (-2^(31-F), 2^(31-F)) = (-128, 128):
 * each value is clipped to +-CLIP_RANGE before encoding (counted), and the weighted sum of a neighbourhood is a convex
 * combination, so it stays in range. Quantisation: |error| <= 2^-(F+1) per encoded term.
 */
import { x25519, ed25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { chacha20, chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { combine, split } from 'shamir-secret-sharing';

export const FRACTION_BITS = 24;
const SCALE = 2 ** FRACTION_BITS;
/** Largest magnitude encoded exactly (values beyond are clipped). */
export const CLIP_RANGE = 2 ** (31 - FRACTION_BITS) - 2 ** -FRACTION_BITS;

const te = new TextEncoder();
const SALT = te.encode('cohort/secure-averaging/v1');

/** w * v in fixed point mod 2^32 (values clipped to +-CLIP_RANGE; `clipped` counts them). */
export function encodeFixed(v: ArrayLike<number>, w: number, out = new Uint32Array(v.length)): { out: Uint32Array; clipped: number } {
  let clipped = 0;
  for (let i = 0; i < v.length; i++) {
    let x = v[i]!;
    if (x > CLIP_RANGE) { x = CLIP_RANGE; clipped++; } else if (x < -CLIP_RANGE) { x = -CLIP_RANGE; clipped++; }
    out[i] = Math.round(w * x * SCALE) >>> 0;
  }
  return { out, clipped };
}

/** A fixed-point sum mod 2^32 back to numbers (read as a signed 32-bit integer). */
export function decodeFixed(s: Uint32Array): Float64Array {
  const out = new Float64Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = (s[i]! | 0) / SCALE;
  return out;
}

export function addInto(acc: Uint32Array, v: Uint32Array, sign: 1 | -1 = 1): void {
  if (sign === 1) for (let i = 0; i < acc.length; i++) acc[i] = (acc[i]! + v[i]!) >>> 0;
  else for (let i = 0; i < acc.length; i++) acc[i] = (acc[i]! - v[i]!) >>> 0;
}

export interface EphemeralKeys { readonly secretKey: Uint8Array; readonly publicKey: Uint8Array }

/** A fresh X25519 key pair for one scenario (from `seed` bytes in simulations, else the OS CSPRNG). */
export function ephemeralKeys(seed?: Uint8Array): EphemeralKeys {
  const k = seed ? x25519.keygen(seed) : x25519.keygen();
  return { secretKey: k.secretKey, publicKey: k.publicKey };
}

export function publicKeyOf(secretKey: Uint8Array): Uint8Array { return x25519.getPublicKey(secretKey); }

/** The X25519 shared secret of two peers (the same from either end). */
export function sharedSecret(mySecret: Uint8Array, theirPublic: Uint8Array): Uint8Array {
  return x25519.getSharedSecret(mySecret, theirPublic);
}

/** The mask of one pair for (scenario, round, receiver): n uint32 from ChaCha20 under an HKDF-derived key. */
export function maskStream(shared: Uint8Array, scenario: string, round: number, receiver: string, n: number): Uint32Array {
  const key = hkdf(sha256, shared, SALT, te.encode(`mask|${scenario}|${round}|${receiver}`), 32);
  const bytes = chacha20(key, new Uint8Array(12), new Uint8Array(4 * n));
  return new Uint32Array(bytes.buffer, bytes.byteOffset, n);
}

/** What a peer announces for a scenario: its ephemeral public key, signed with its Ed25519 identity key. */
export interface KeyAnnouncement { readonly peer: string; readonly scenario: string; readonly publicKey: Uint8Array; readonly signature: Uint8Array }

const announceBytes = (peer: string, scenario: string, pk: Uint8Array): Uint8Array =>
  new Uint8Array([...te.encode(`cohort/secure-key|${scenario}|${peer}|`), ...pk]);

export function announce(peer: string, scenario: string, keys: EphemeralKeys, identitySecret: Uint8Array): KeyAnnouncement {
  return { peer, scenario, publicKey: keys.publicKey, signature: ed25519.sign(announceBytes(peer, scenario, keys.publicKey), identitySecret) };
}

export function verifyAnnouncement(a: KeyAnnouncement, identityPublic: Uint8Array): boolean {
  try { return ed25519.verify(a.signature, announceBytes(a.peer, a.scenario, a.publicKey), identityPublic); } catch { return false; }
}

export function identityKeys(seed: Uint8Array): { secretKey: Uint8Array; publicKey: Uint8Array } {
  const k = ed25519.keygen(seed);
  return { secretKey: k.secretKey, publicKey: k.publicKey };
}

/** A Shamir share of `dealer`'s ephemeral secret, sealed to `holder` (ChaCha20-Poly1305, key from their X25519 secret). */
export interface SealedShare { readonly dealer: string; readonly holder: string; readonly scenario: string; readonly nonce: Uint8Array; readonly box: Uint8Array }

function shareKey(shared: Uint8Array, scenario: string): Uint8Array {
  return hkdf(sha256, shared, SALT, te.encode(`share|${scenario}`), 32);
}
const shareAd = (scenario: string, dealer: string, holder: string, purpose: string): Uint8Array => te.encode(`${purpose}|${scenario}|${dealer}|${holder}`);

/**
 * Split `keys.secretKey` into one share per holder (threshold t), each sealed to its holder. `nonceFor` gives 12 distinct bytes per
 * holder (the OS CSPRNG by default).
 */
export async function dealShares(dealer: string, scenario: string, keys: EphemeralKeys, holders: readonly { peer: string; publicKey: Uint8Array }[],
  threshold: number, nonceFor: (k: number) => Uint8Array = () => crypto.getRandomValues(new Uint8Array(12))): Promise<SealedShare[]> {
  const shares = await split(keys.secretKey, holders.length, threshold);
  return holders.map((h, k) => {
    const nonce = nonceFor(k);
    const box = chacha20poly1305(shareKey(sharedSecret(keys.secretKey, h.publicKey), scenario), nonce, shareAd(scenario, dealer, h.peer, 'deal')).encrypt(shares[k]!);
    return { dealer, holder: h.peer, scenario, nonce, box };
  });
}

/** The holder opens a share sealed to it; null when it was tampered with or is not for this (scenario, dealer, holder). */
export function openShare(s: SealedShare, holder: string, scenario: string, holderSecret: Uint8Array, dealerPublic: Uint8Array): Uint8Array | null {
  if (s.holder !== holder || s.scenario !== scenario) return null;
  try {
    return chacha20poly1305(shareKey(sharedSecret(holderSecret, dealerPublic), scenario), s.nonce, shareAd(scenario, s.dealer, holder, 'deal')).decrypt(s.box);
  } catch {
    return null;
  }
}

/** A share released to a receiver to recover a dropped dealer's masks: sealed to the receiver, bound to the round asked for. */
export interface ReleasedShare { readonly dealer: string; readonly holder: string; readonly receiver: string; readonly scenario: string; readonly round: number; readonly nonce: Uint8Array; readonly box: Uint8Array }

export function releaseShare(share: Uint8Array, dealer: string, holder: string, receiver: string, scenario: string, round: number, holderSecret: Uint8Array,
  receiverPublic: Uint8Array, nonce: Uint8Array = crypto.getRandomValues(new Uint8Array(12))): ReleasedShare {
  const box = chacha20poly1305(shareKey(sharedSecret(holderSecret, receiverPublic), scenario), nonce, shareAd(scenario, dealer, `${holder}>${receiver}@${round}`, 'release')).encrypt(share);
  return { dealer, holder, receiver, scenario, round, nonce, box };
}

/** Null when tampered with, or replayed from another round, receiver, dealer or scenario. */
export function openReleased(r: ReleasedShare, receiver: string, scenario: string, round: number, receiverSecret: Uint8Array, holderPublic: Uint8Array): Uint8Array | null {
  if (r.receiver !== receiver || r.scenario !== scenario || r.round !== round) return null;
  try {
    return chacha20poly1305(shareKey(sharedSecret(receiverSecret, holderPublic), scenario), r.nonce, shareAd(scenario, r.dealer, `${r.holder}>${receiver}@${round}`, 'release')).decrypt(r.box);
  } catch {
    return null;
  }
}

/** Reconstructs a dealer's secret from >= threshold shares and checks it against the announced public key (null if wrong). */
export async function recoverSecret(shares: readonly Uint8Array[], announcedPublic: Uint8Array): Promise<Uint8Array | null> {
  if (shares.length < 2) return null;
  try {
    const sk = await combine([...shares]);
    const pk = publicKeyOf(sk);
    return pk.length === announcedPublic.length && pk.every((b, i) => b === announcedPublic[i]) ? sk : null;
  } catch {
    return null;
  }
}
