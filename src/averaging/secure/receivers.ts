/**
 * Public, verifiable Epidemic Learning receivers (docs/privacy.md, "Secure Epidemic Learning").
 *
 * EL-Local pushes each model to s peers drawn at random every round. Pairwise masks cancel only in a sum whose senders every one
 * of them knows in advance, so the draw is made public: sender k's receivers in round r are the first s of a permutation of the
 * other participants whose randomness is HKDF-SHA256(scenario id, round, k). Anyone holding the participant list can recompute
 * every sender's draw, hence each receiver j's sender set S_j(r), with no message and no pairwise key.
 *
 * One rule on top: a receiver drawn by fewer than 2 senders would decode a single sender's model, so nobody sends to it that
 * round (it keeps its own model). Plain EL with `averaging.receivers: "public"` follows the same draw and the same rule, so a
 * masked and an unmasked run exchange along the same edges.
 *
 * What this gives up: the draw is predictable. An adversary that knows the scenario id knows who sends to whom in every round, so
 * EL's fresh randomness no longer protects against a targeted adversary (one that would position itself as the receiver of a
 * victim, or cut a victim's receivers off). The masks still hide every model; what becomes public is the graph.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';

const SALT = new TextEncoder().encode('cohort/el-receivers/v1');
const MAX_HKDF_BYTES = 255 * 32;

/** Sender's receivers in a round: the first s of an HKDF-seeded Fisher-Yates shuffle of the other participants (sorted first). */
export function publicReceivers(participants: readonly string[], sender: string, s: number, scenario: string, round: number): string[] {
  return publicDraw([...new Set(participants)].filter((p) => p !== sender), s, { ikm: scenario, salt: SALT, info: `${round}|${sender}` });
}

/**
 * The first `take` of a Fisher-Yates shuffle of `items` (deduplicated and sorted first) whose randomness is HKDF-SHA256(ikm, salt,
 * info): a draw anyone can recompute from public inputs. Also draws each dealer's share holders (holders.ts).
 */
export function publicDraw(items: readonly string[], take: number, seed: { readonly ikm: string; readonly salt: Uint8Array; readonly info: string }): string[] {
  const others = [...new Set(items)].sort();
  take = Math.min(take, others.length);
  if (take <= 0) return [];
  // 4 random bytes per swap; the HKDF output limit (8160 bytes) caps the draw at 2040 swaps, far above any s
  const steps = Math.min(take, Math.floor(MAX_HKDF_BYTES / 4));
  const bytes = hkdf(sha256, new TextEncoder().encode(seed.ikm), seed.salt, new TextEncoder().encode(seed.info), steps * 4);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < steps; i++) {
    // swap position i with a uniform position in [i, n); the modulo bias is below n / 2^32 (irrelevant for a public draw)
    const j = i + (view.getUint32(i * 4) % (others.length - i));
    [others[i], others[j]] = [others[j]!, others[i]!];
  }
  return others.slice(0, steps);
}

/** One round's public graph: who sends to whom, with receivers drawn by fewer than 2 senders removed. */
export interface RoundGraph {
  /** Receivers of each sender (after the 2-sender rule). */
  readonly receivers: ReadonlyMap<string, readonly string[]>;
  /** Senders of each receiver: S_j(r), sorted; empty when fewer than 2 senders drew it. */
  readonly senders: ReadonlyMap<string, readonly string[]>;
}

export function publicRoundGraph(participants: readonly string[], s: number, scenario: string, round: number): RoundGraph {
  const ids = [...new Set(participants)].sort();
  const draws = new Map(ids.map((k) => [k, publicReceivers(ids, k, s, scenario, round)]));
  const drawn = new Map<string, string[]>(ids.map((p) => [p, []]));
  for (const [k, js] of draws) for (const j of js) drawn.get(j)!.push(k);
  const senders = new Map<string, readonly string[]>();
  for (const [j, ks] of drawn) senders.set(j, ks.length >= 2 ? ks.sort() : []);
  const receivers = new Map<string, readonly string[]>([...draws].map(([k, js]) => [k, js.filter((j) => senders.get(j)!.length > 0)]));
  return { receivers, senders };
}

/** Caches the last few rounds' graphs of one scenario (each peer asks for its senders and receivers several times per round). */
export class PublicReceivers {
  private readonly cache = new Map<number, RoundGraph>();
  constructor(private readonly participants: readonly string[], readonly s: number, private readonly scenario: string) {}

  graph(round: number): RoundGraph {
    let g = this.cache.get(round);
    if (!g) {
      g = publicRoundGraph(this.participants, this.s, this.scenario, round);
      this.cache.set(round, g);
      for (const r of this.cache.keys()) if (r < round - 4) this.cache.delete(r);
    }
    return g;
  }

  sendersOf(receiver: string, round: number): readonly string[] { return this.graph(round).senders.get(receiver) ?? []; }
  receiversOf(sender: string, round: number): readonly string[] { return this.graph(round).receivers.get(sender) ?? []; }
}
