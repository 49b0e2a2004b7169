/**
 * Which share holders a receiver asks when it recovers a dropped sender's secret (node.ts). Asking every participant costs a
 * request to each and a sealed share back from each live one, though only `threshold` shares are needed: at 100 peers that
 * was most of the recovery bytes. A receiver first asks ceil(1.5 t) holders (its own share counts as one), so about a third
 * of them may be dead and the rebuild still needs no second trip; it asks the rest only if too few answered by a deadline.
 *
 * The choice is deterministic (the same receiver, dealer and peers give the same holders): holders known to be alive this
 * round (they sent this receiver their masked model) first, then the others in the order of a hash ring keyed by the dealer
 * and the receiver, so different receivers of one dropped peer spread their requests over different holders.
 */
import { sha256 } from '@noble/hashes/sha2.js';

/** Shares asked for at first, as a multiple of the threshold: slack for holders that are gone too. */
export const FIRST_ASK_FACTOR = 1.5;

const enc = new TextEncoder();
const ringKey = (dealer: string, receiver: string, holder: string): string =>
  Buffer.from(sha256(enc.encode(`cohort-recovery|${dealer}|${receiver}|${holder}`))).toString('hex');

/** `candidates` ordered for asking: the live ones first (by id), then the rest by their position on the hash ring. */
export function holderOrder(dealer: string, receiver: string, candidates: readonly string[], live: ReadonlySet<string>): string[] {
  const known = candidates.filter((h) => live.has(h)).sort();
  const rest = candidates.filter((h) => !live.has(h)).map((h) => [ringKey(dealer, receiver, h), h] as const);
  rest.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return [...known, ...rest.map(([, h]) => h)];
}

/** How many other holders to ask first: ceil(1.5 t) shares in all, less the one this receiver holds itself. */
export function firstAskCount(threshold: number, ownShare: boolean): number {
  return Math.max(0, Math.ceil(FIRST_ASK_FACTOR * threshold) - (ownShare ? 1 : 0));
}

/** Requests grouped by holder: each holder gets one request naming the dealers it is asked about. */
export function requestsByHolder(asks: ReadonlyMap<string, readonly string[]>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [dealer, holders] of asks) for (const h of holders) out.set(h, [...(out.get(h) ?? []), dealer]);
  return out;
}
