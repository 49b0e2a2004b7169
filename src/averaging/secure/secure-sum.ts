/**
 * Secure sum of the consortium's preprocessing statistics (issue 13.1 with privacy.secure; docs/privacy.md, docs/data.md).
 *
 * Each site turns its SiteStats into one vector of integers mod 2^192 (fixed point, FRACTION = 64 bits) and adds pairwise masks
 * with every other sender, as masking.ts does for models:
 *     y_k = enc(x_k) + sum_{l != k} s(k,l) PRG(key_kl, "stats", scenario)     (mod 2^192),  s(k,l) = +1 if k < l else -1
 * key_kl is the X25519 secret of the two sites' ephemeral keys agreed by NetSecureSession (net-session.ts); the PRG is ChaCha20
 * under an HKDF-SHA256 key, like crypto.ts maskStream, with its own label so that no model-mask stream is ever reused here.
 * The sum of every sender's y_k is enc(sum_k x_k): a peer learns the consortium total, and any one y_k is uniformly random to it.
 *
 * Why 2^192 and 64 fraction bits: a float64 v with |v| >= 2^-11 is a multiple of 2^-64, so it encodes exactly; the integer sum is
 * exact, and the decoded total is the exact sum rounded once to float64 (combineStats' float additions round at each step: the two
 * agree to ~1e-15 relative). Values are clipped to +-CLIP (2^120; counted, never reached by counts, sums or sums of squares of
 * real inputs), so a total of up to 2^7 clipped values stays inside (-2^127, 2^127) and decodes with its sign. Counts are integers
 * and come back exact.
 *
 * The layout (input names and lengths, class-count cells) travels in the clear: it is the manifest's shape, not data. A class
 * count a site suppressed (null, small-count rule) is carried as a flag slot, so the total's cell is null when any site's was,
 * exactly as combineStats does.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { chacha20 } from '@noble/ciphers/chacha.js';
import type { InputStats, SiteStats } from '../../data/standardiser-stats.ts';
import { CohortError } from '../../util/errors.ts';
import { maskSign, type PairKeys } from './masking.ts';

const WORD_BITS = 192n;
const MOD = 1n << WORD_BITS;
const CLIP = 2 ** 120;
const BYTES = Number(WORD_BITS / 8n);
const te = new TextEncoder();
const SALT = te.encode('cohort/secure-stats/v1');

/** The vector's shape: inputs by name with their feature count, and the number of class-count cells (0: none). */
export interface StatsLayout { readonly inputs: readonly (readonly [string, number])[]; readonly classes: number }

export function layoutOf(s: SiteStats): StatsLayout {
  return { inputs: Object.entries(s.inputs).map(([k, t]) => [k, t.n.length] as const).sort((a, b) => (a[0] < b[0] ? -1 : 1)), classes: s.classCounts?.length ?? 0 };
}

export const layoutLength = (l: StatsLayout): number => 2 + l.inputs.reduce((a, [, d]) => a + 3 * d, 0) + 2 * l.classes;

/** [rows, sites, per input (name order) n[], sum[], sumsq[], per class (count, suppressed flag)]; null (suppressed site): zeros. */
export function flatten(s: SiteStats | null, l: StatsLayout): number[] {
  if (!s) return new Array<number>(layoutLength(l)).fill(0);
  const same = JSON.stringify(layoutOf(s)) === JSON.stringify(l);
  if (!same) throw new CohortError('STATISTICS_SHAPE', 'this site\'s statistics do not have the consortium\'s shape (inputs, features or classes)', 'every site must read the same columns and class list');
  const out = [s.rows, s.sites];
  for (const [name] of l.inputs) { const t = s.inputs[name]!; out.push(...t.n, ...t.sum, ...t.sumsq); }
  for (const c of s.classCounts ?? []) out.push(c ?? 0, c === null ? 1 : 0);
  return out;
}

/** The decoded total back into SiteStats (what combineStats returns for the same sites, to float rounding). */
export function unflatten(v: readonly number[], l: StatsLayout): SiteStats {
  let i = 2;
  const take = (n: number): number[] => { const r = v.slice(i, i + n); i += n; return r; };
  const inputs: Record<string, InputStats> = {};
  for (const [name, d] of l.inputs) inputs[name] = { n: take(d), sum: take(d), sumsq: take(d) };
  const classCounts = l.classes ? Array.from({ length: l.classes }, () => { const [c, flag] = take(2); return flag! > 0 ? null : c!; }) : undefined;
  return { rows: v[0]!, sites: v[1]!, inputs, ...(classCounts ? { classCounts } : {}) };
}

/** Fixed point mod 2^192; `clipped` counts values beyond +-2^120 (or not finite: none should be). */
export function encode(x: readonly number[]): { words: bigint[]; clipped: number } {
  let clipped = 0;
  const words = x.map((v) => {
    let c = Number.isFinite(v) ? v : 0;
    if (c !== v || Math.abs(c) > CLIP) { clipped++; c = Math.sign(c) * Math.min(Math.abs(c), CLIP); }
    // c * 2^64 is exact (a power of two); beyond 2^53 it is an integer already, below it rounds to the nearest multiple of 2^-64
    const scaled = c * 2 ** 64;
    const w = Math.abs(scaled) < 2 ** 53 ? BigInt(Math.round(scaled)) : BigInt(scaled);
    return ((w % MOD) + MOD) % MOD;
  });
  return { words, clipped };
}

/** A total mod 2^192 back to float64 (read as signed; one rounding). */
export function decode(words: readonly bigint[]): number[] {
  return words.map((w) => {
    // Number(BigInt) rounds to nearest once; dividing by 2^64 is exact
    return Number(w >= MOD / 2n ? w - MOD : w) / 2 ** 64;
  });
}

function prg(shared: Uint8Array, scenario: string, attempt: number, n: number): bigint[] {
  const key = hkdf(sha256, shared, SALT, te.encode(`stats-mask|${scenario}|${attempt}`), 32);
  const bytes = chacha20(key, new Uint8Array(12), new Uint8Array(BYTES * n));
  return Array.from({ length: n }, (_, k) => BigInt(`0x${Buffer.from(bytes.subarray(k * BYTES, (k + 1) * BYTES)).toString('hex')}`));
}

/** Sender `self`'s masked vector for the sum over `senders` (self among them). */
export function maskStats(self: string, keys: PairKeys, senders: readonly string[], scenario: string, attempt: number, x: readonly number[]): { words: bigint[]; clipped: number } {
  const { words, clipped } = encode(x);
  for (const l of senders) {
    if (l === self) continue;
    const m = prg(keys.with(l), scenario, attempt, words.length);
    const sign = BigInt(maskSign(self, l));
    for (let i = 0; i < words.length; i++) words[i] = (((words[i]! + sign * m[i]!) % MOD) + MOD) % MOD;
  }
  return { words, clipped };
}

/** The sum of every sender's masked vector: the encoded total (masks cancelled). */
export function sumMasked(vectors: readonly (readonly bigint[])[]): bigint[] {
  const n = vectors[0]?.length ?? 0;
  const acc = new Array<bigint>(n).fill(0n);
  for (const v of vectors) {
    if (v.length !== n) throw new CohortError('STATISTICS_SHAPE', 'masked statistics of different lengths', 'every site must read the same columns');
    for (let i = 0; i < n; i++) acc[i] = (acc[i]! + v[i]!) % MOD;
  }
  return acc;
}

/** Wire form: the layout in the clear, each word as 48 hex digits. */
export interface MaskedStats { readonly layout: StatsLayout; readonly attempt: number; readonly words: readonly string[] }

export const toWire = (layout: StatsLayout, attempt: number, words: readonly bigint[]): MaskedStats =>
  ({ layout, attempt, words: words.map((w) => w.toString(16).padStart(BYTES * 2, '0')) });

export function fromWire(v: unknown): { layout: StatsLayout; attempt: number; words: bigint[] } {
  const m = v as Partial<MaskedStats> | null;
  const okLayout = m && m.layout && Array.isArray(m.layout.inputs) && Number.isInteger(m.layout.classes) && m.layout.classes >= 0 && m.layout.classes <= 1000
    && m.layout.inputs.every((e) => Array.isArray(e) && typeof e[0] === 'string' && e[0].length <= 200 && Number.isInteger(e[1]) && e[1] >= 0 && e[1] <= 1e6);
  if (!okLayout || !Number.isInteger(m.attempt) || !Array.isArray(m.words) || m.words.length !== layoutLength(m.layout!)
    || !m.words.every((w) => typeof w === 'string' && /^[0-9a-f]{48}$/.test(w))) {
    throw new CohortError('BAD_STATISTICS', 'not a masked statistics vector', 'the sender runs an incompatible Cohort version');
  }
  return { layout: m.layout!, attempt: m.attempt!, words: m.words.map((w) => BigInt(`0x${w}`)) };
}
