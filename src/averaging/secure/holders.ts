/**
 * Share holders for dropout recovery (SecAgg+, Bell et al. CCS 2020): who holds whose Shamir shares, how many are needed, and which
 * of them a receiver asks when it recovers a dropped sender's secret (node.ts).
 *
 * Holder sets. Each dealer's ephemeral secret is split among a PUBLIC holder set of h participants, not among all n - 1 others:
 * the first h of an HKDF-seeded shuffle of the others, keyed by the scenario id and the dealer (receivers.ts publicDraw), so every
 * peer can recompute who holds whose shares with no message. h and the threshold t come from `holderPlan`: the smallest h for which
 * some t has both (hypergeometric tails, computed exactly here, not the paper's asymptotic bound)
 *   P[at least t of the h holders collude]          <= 2^-securityBits     (with a fraction `collusion` of the others colluding)
 *   P[fewer than t of the h holders are still alive] <= 2^-correctnessBits  (with a fraction `dropout` of the others gone)
 * and t the smallest such threshold. Where no h <= min(n - 1, 255) meets both (small n), all others hold shares and t is the
 * smallest threshold meeting the collusion bound (security first); `meetsBounds` says so.
 *
 * Asking. Asking every holder costs a request to each and a sealed share back from each live one, though only t shares are
 * needed. A receiver first asks ceil(1.5 t) of the dealer's holders (its own share counts as one), so about a third of them may be
 * dead and the rebuild still needs no second trip; it asks the dealer's other holders only if too few answered by a deadline.
 * The choice is deterministic (the same receiver, dealer and peers give the same holders): holders known to be alive this
 * round (they sent this receiver their masked model) first, then the others in the order of a hash ring keyed by the dealer
 * and the receiver, so different receivers of one dropped peer spread their requests over different holders.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { publicDraw } from './receivers.ts';

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

/** What the holder sets are sized for (docs/privacy.md, "Holder sets"). */
export interface HolderParams {
  /** Fraction of the other participants assumed to collude (honest-but-curious, fixed before the scenario id is drawn). */
  readonly collusion: number;
  /** Fraction of the other participants assumed gone when a dropped peer's secret is rebuilt. */
  readonly dropout: number;
  /** -log2 of the largest accepted probability that t of a dealer's h holders collude (per dealer). */
  readonly securityBits: number;
  /** -log2 of the largest accepted probability that fewer than t of a dealer's h holders survive (per dealer). */
  readonly correctnessBits: number;
}

/** 1 in 5 colluding, 30% dropped; 2^-40 exposure and 2^-20 unrecoverable per dealer (Bell et al. use sigma = 40 and eta = 20..30). */
export const HOLDER_PARAMS: HolderParams = { collusion: 0.2, dropout: 0.3, securityBits: 40, correctnessBits: 20 };

/** The Shamir library's limit on shares per secret. */
export const MAX_HOLDERS = 255;

export interface HolderPlan {
  /** h: holders per dealer. */
  readonly holders: number;
  /** t: shares that rebuild a dealer's secret (t - 1 reveal nothing). */
  readonly threshold: number;
  /** P[>= t of the h holders collude] and P[< t of them survive], per dealer, at the plan's fractions. */
  readonly colludeTail: number;
  readonly shortTail: number;
  /** Both tails within their bounds; false only where no h <= min(n - 1, 255) can meet them (small n). */
  readonly meetsBounds: boolean;
}

/** log C(a, b) from a table of log factorials. */
const logChoose = (lf: Float64Array, a: number, b: number): number => lf[a]! - lf[b]! - lf[a - b]!;

/** P[X >= x] for x = 0..h+1, X ~ Hypergeometric(population N, K marked, h drawn); summed from the top so tiny tails stay exact. */
function upperTails(lf: Float64Array, N: number, K: number, h: number): Float64Array {
  const tail = new Float64Array(h + 2);
  const total = logChoose(lf, N, h);
  for (let x = h; x >= 0; x--) {
    const p = x <= K && h - x <= N - K ? Math.exp(logChoose(lf, K, x) + logChoose(lf, N - K, h - x) - total) : 0;
    tail[x] = tail[x + 1]! + p;
  }
  return tail;
}

const plans = new Map<string, HolderPlan>();

/** h and t for n participants (module doc); the same for every peer, as it depends only on n and the fixed parameters. */
export function holderPlan(n: number, p: HolderParams = HOLDER_PARAMS): HolderPlan {
  const key = `${n}|${p.collusion}|${p.dropout}|${p.securityBits}|${p.correctnessBits}`;
  const hit = plans.get(key);
  if (hit) return hit;
  const N = Math.max(0, n - 1);
  const hMax = Math.min(N, MAX_HOLDERS);
  const lf = new Float64Array(N + 1);
  for (let i = 1; i <= N; i++) lf[i] = lf[i - 1]! + Math.log(i);
  // colluders and dropped among a dealer's n - 1 others, rounded up (the dealer itself is the honest, possibly dropped, one)
  const C = Math.ceil(p.collusion * N), D = Math.ceil(p.dropout * N);
  const eS = 2 ** -p.securityBits, eC = 2 ** -p.correctnessBits;
  let plan: HolderPlan = { holders: hMax, threshold: Math.max(2, hMax), colludeTail: 0, shortTail: 1, meetsBounds: false };
  for (let h = 2; h <= hMax; h++) {
    const collude = upperTails(lf, N, C, h), dead = upperTails(lf, N, D, h);
    let t = 2;
    while (t <= h && collude[t]! > eS) t++;
    // fewer than t alive = at least h - t + 1 of the h dead
    const cand: HolderPlan = { holders: h, threshold: Math.min(t, h), colludeTail: collude[Math.min(t, h)]!, shortTail: dead[h - Math.min(t, h) + 1]!, meetsBounds: false };
    if (t <= h && cand.shortTail <= eC) { plan = { ...cand, meetsBounds: true }; break; }
    if (h === hMax) plan = cand;
  }
  plans.set(key, plan);
  return plan;
}

const HOLDER_SALT = new TextEncoder().encode('cohort/share-holders/v1');

/** Each participant's holder set: the first h of a shuffle of the others seeded by (scenario, dealer). Public and deterministic. */
export function holderSets(participants: readonly string[], scenario: string, h: number): Map<string, readonly string[]> {
  const ids = [...new Set(participants)].sort();
  return new Map(ids.map((d) => [d, publicDraw(ids.filter((x) => x !== d), h, { ikm: scenario, salt: HOLDER_SALT, info: d })]));
}
