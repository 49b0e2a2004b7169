/**
 * Pairwise-masked weighted sums (the protocol core, transport-free; docs/privacy.md).
 *
 * Receiver j mixes the models of its senders S_j (its neighbours) with weights W_jk. Each sender k sends j
 *     y_k = enc(W_jk x_k) + sum_{l in S_j, l != k} s(k,l) PRG(key_kl, scenario, round, j)   (mod 2^32)
 * with s(k,l) = +1 if k < l else -1 and key_kl the X25519 secret of k and l. In sum_k y_k every pair's masks cancel, so j gets
 * enc(sum_k W_jk x_k) exactly, and any single y_k (or any proper subset of S_j) is uniformly random to j. The sender applies the
 * weight before masking, so the masks cancel under the weights actually used (no division mod 2^32 needed).
 *
 * Dropout: when sender d never delivers, the survivors' masks for pairs (l, d) do not cancel. j then obtains >= threshold Shamir
 * shares of d's ephemeral secret from the other participants (crypto.ts), reconstructs it (checked against d's announced public
 * key), regenerates each PRG(key_ld, ...) and removes it: the exact sum of the survivors' weighted models. d's secret is then known
 * to j for the rest of the scenario, so d must never send again (a returning peer only receives).
 */
import { addInto, decodeFixed, encodeFixed, maskStream, sharedSecret } from './crypto.ts';

export const maskSign = (a: string, b: string): 1 | -1 => (a < b ? 1 : -1);

/** Caches X25519 shared secrets of one peer with the others (one scalar multiplication per pair per scenario). */
export class PairKeys {
  private readonly cache = new Map<string, Uint8Array>();
  constructor(private readonly secret: Uint8Array, private readonly publicKeys: ReadonlyMap<string, Uint8Array>) {}
  with(peer: string): Uint8Array {
    let s = this.cache.get(peer);
    if (!s) {
      const pk = this.publicKeys.get(peer);
      if (!pk) throw new Error(`no announced key for ${peer}`);
      s = sharedSecret(this.secret, pk);
      this.cache.set(peer, s);
    }
    return s;
  }
}

/** Sender k's masked, weighted contribution to receiver j (senders = S_j, k among them). */
export function maskedContribution(self: string, keys: PairKeys, receiver: string, senders: readonly string[], scenario: string, round: number,
  x: ArrayLike<number>, weight: number): { payload: Uint32Array; clipped: number } {
  const { out, clipped } = encodeFixed(x, weight);
  for (const l of senders) {
    if (l === self) continue;
    addInto(out, maskStream(keys.with(l), scenario, round, receiver, x.length), maskSign(self, l));
  }
  return { payload: out, clipped };
}

/** Receiver j's running sum of one round's masked contributions. */
export class MaskedSum {
  private readonly acc: Uint32Array;
  readonly received = new Set<string>();

  constructor(readonly receiver: string, readonly senders: readonly string[], readonly scenario: string, readonly round: number, readonly length: number) {
    this.acc = new Uint32Array(length);
  }

  /** False for a sender outside S_j, a second contribution, or a wrong length. */
  add(from: string, payload: Uint32Array): boolean {
    if (!this.senders.includes(from) || this.received.has(from) || payload.length !== this.length) return false;
    addInto(this.acc, payload);
    this.received.add(from);
    return true;
  }

  missing(): string[] { return this.senders.filter((s) => !this.received.has(s)); }

  /**
   * Removes the unmatched masks of dropped sender d, given its reconstructed ephemeral secret: for each survivor l, l added
   * s(l,d) PRG(key_ld); subtract it. Call once per dropped sender.
   */
  removeDropped(dropped: string, droppedSecret: Uint8Array, publicKeys: ReadonlyMap<string, Uint8Array>): void {
    for (const l of this.received) {
      const pk = publicKeys.get(l);
      if (!pk) throw new Error(`no announced key for ${l}`);
      addInto(this.acc, maskStream(sharedSecret(droppedSecret, pk), this.scenario, this.round, this.receiver, this.length), maskSign(dropped, l) === 1 ? 1 : -1);
    }
  }

  /** The decoded sum (valid once every missing sender's masks were removed). */
  value(): Float64Array { return decodeFixed(this.acc); }
}
