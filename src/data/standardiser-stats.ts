/**
 * One standardiser for a whole consortium, agreed from sufficient statistics (issue 13.1). Only aggregates leave a site:
 *
 *   standardizeMode(preprocessing)         -> 'consortium' | 'site' | 'none'   (manifest data.preprocessing.standardize)
 *   siteStats(train, { minCount })          -> SiteStats: rows, per input and feature [count, sum, sum of squares] (NaN ignored),
 *                                              per-class counts; small counts suppressed (null), a site below minCount rows -> null
 *   combineStats([a, b, ...])               -> SiteStats: plain sums, added in an order fixed by content (any input order: same bits)
 *   agreeStandardiser(total, meta)          -> AgreedStandardiser: per-input mean and (n-1) std as numbers, and its sha256 `hash`
 *   applyAgreed(set, agreed)                -> the set z-scored with it (NaN -> 0: mean imputation, like src/data/tabular.ts)
 *   exportStandardiser(agreed)              -> { mean, std, featureNames, classes } for the self-contained export (engine/export.ts)
 *
 * Why sums and not a fitted mean/std per site: [n, sum, sumsq] are additive, so the consortium's mean and variance are exact (the
 * pooled-data fit, up to float rounding), and additive vectors are what masked secure summation (src/averaging/secure) adds up.
 * JSON carries float64 exactly, and contributions are added in an order fixed by their content, so peers that hold the same
 * contributions get bit-identical standardisers and the same hash: the hash is how a report shows that every participant trained on one input scale.
 */
import { z } from 'zod';
import type { SampleSet, SampleTensor } from './samples.ts';
import { canonicalJson } from '../util/canonical.ts';
import { CohortError } from '../util/errors.ts';
import { sha256Hex } from '../util/hash.ts';

export type StandardizeMode = 'consortium' | 'site' | 'none';

/** The usual small-cell rule (as src/data/catalogue.ts): counts below it never leave a site. */
export const SMALL_COUNT = 10;

/**
 * data.preprocessing.standardize: "consortium" (one standardiser agreed by all participants; what templates write), "site" (each site
 * its own: explicit per-site harmonisation), false/absent (none). `true`, from manifests written before the choice existed, means
 * "consortium": the averaged model only makes sense on one input scale.
 */
export function standardizeMode(preprocessing: Readonly<Record<string, unknown>>): StandardizeMode {
  const v = preprocessing['standardize'];
  if (v === undefined || v === false) return 'none';
  if (v === true || v === 'consortium') return 'consortium';
  if (v === 'site') return 'site';
  throw new CohortError('BAD_MANIFEST', `data.preprocessing.standardize is ${JSON.stringify(v)}`,
    'use "consortium" (one standardiser agreed by all sites), "site" (each site its own) or false');
}

/**
 * Images: data.preprocessing.intensity.<MODALITY> { method: "zscore", scope: "consortium" } is the image scenario's one consortium
 * scale (src/data/intensity-stats.ts); a standardize on top would fit a per-voxel standardiser on raw intensities before that
 * scale exists, so the two together are refused (read from the manifest as written, so launch and validate refuse it too).
 */
export function checkIntensityStandardize(preprocessing: Readonly<Record<string, unknown>>): void {
  const intensity = preprocessing['intensity'];
  if (!intensity || typeof intensity !== 'object') return;
  const consortium = Object.entries(intensity as Record<string, unknown>)
    .filter(([, c]) => typeof c === 'object' && c !== null && (c as Record<string, unknown>)['method'] === 'zscore' && (c as Record<string, unknown>)['scope'] === 'consortium')
    .map(([m]) => m);
  if (consortium.length && standardizeMode(preprocessing) !== 'none') {
    throw new CohortError('BAD_MANIFEST', `data.preprocessing.intensity asks for a consortium z-score (${consortium.join(', ')}), and data.preprocessing.standardize is set too`,
      'drop standardize for an image scenario: the consortium intensity z-score is its one input scale');
  }
}

/**
 * data.preprocessing.minCount: the small-count rule of a scenario (default SMALL_COUNT). Every site approves the manifest, so a
 * different value is the sites' own choice; below it a site's statistics (or a feature's, or a class count) are not shared.
 */
export function minCountOf(preprocessing: Readonly<Record<string, unknown>>): number {
  const v = preprocessing['minCount'];
  if (v === undefined) return SMALL_COUNT;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new CohortError('BAD_MANIFEST', `data.preprocessing.minCount is ${JSON.stringify(v)}`, 'a whole number of rows, at least 1 (default 10)');
  }
  return v;
}

/** One input's per-feature sufficient statistics (feature j: values that were not NaN). */
export interface InputStats { readonly n: number[]; readonly sum: number[]; readonly sumsq: number[] }

export interface SiteStats {
  /** Training rows behind the statistics (summed over sites when combined). */
  readonly rows: number;
  /** Sites whose statistics are in (1 for one site). */
  readonly sites: number;
  readonly inputs: Readonly<Record<string, InputStats>>;
  /** Rows per class index (classification); a cell below the small-count rule is null, and stays null when combined. */
  readonly classCounts?: (number | null)[];
}

const finite = z.number().finite();
const InputStatsSchema = z.object({ n: z.array(z.number().int().nonnegative()), sum: z.array(finite), sumsq: z.array(finite.nonnegative()) }).strict();
/** What a peer accepts from another: plain finite numbers, array lengths checked against its own in combineStats. */
export const SiteStatsSchema = z.object({
  rows: z.number().int().nonnegative(), sites: z.number().int().positive(),
  inputs: z.record(z.string().max(200), InputStatsSchema),
  classCounts: z.array(z.number().int().nonnegative().nullable()).max(1000).optional(),
}).strict();

export interface SiteStatsOptions { readonly minCount?: number; readonly classes?: number }

/** This site's statistics of its training part, or null when it has fewer than minCount rows (nothing may leave then). */
export function siteStats(train: SampleSet, o: SiteStatsOptions = {}): SiteStats | null {
  const min = o.minCount ?? SMALL_COUNT;
  if (train.size < min) return null;
  const inputs = Object.fromEntries(Object.entries(train.inputs).map(([name, t]) => [name, inputStats(t, train.size, min)]));
  const label = train.targets['label'];
  const classes = o.classes ?? 0;
  if (!label || classes < 1) return { rows: train.size, sites: 1, inputs };
  const counts = new Array<number>(classes).fill(0);
  for (const c of label.data) if (c >= 0 && c < classes) counts[c]!++;
  return { rows: train.size, sites: 1, inputs, classCounts: counts.map((k) => (k > 0 && k < min ? null : k)) };
}

function perSample(t: SampleTensor): number {
  return t.shape.reduce((a, b) => a * b, 1);
}

/** Per-feature sums over the non-missing values; a feature seen fewer than `min` times is suppressed (reported as never seen). */
function inputStats(t: SampleTensor, size: number, min: number): InputStats {
  const d = perSample(t);
  const n = new Array<number>(d).fill(0), sum = new Array<number>(d).fill(0), sumsq = new Array<number>(d).fill(0);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < d; j++) {
      const v = t.data[i * d + j]!;
      if (Number.isNaN(v)) continue;
      n[j]!++; sum[j]! += v; sumsq[j]! += v * v;
    }
  }
  for (let j = 0; j < d; j++) if (n[j]! < min) { n[j] = 0; sum[j] = 0; sumsq[j] = 0; }
  return { n, sum, sumsq };
}

/**
 * Plain sums of the sites' statistics. They are added in an order fixed by their content (sha256 of each one's canonical JSON), not
 * the order given: float addition is not associative, and this way every peer, and the simulator, gets the same bits.
 */
export function combineStats(given: readonly SiteStats[]): SiteStats {
  const list = given.map((s) => ({ s, key: sha256Hex(canonicalJson(s)) })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((x) => x.s);
  const first = list[0];
  if (!first) throw new CohortError('NO_STATISTICS', 'no site contributed statistics for the standardiser', 'every site was below the small-count rule, or none answered');
  const inputs: Record<string, InputStats> = {};
  for (const [name, s] of Object.entries(first.inputs)) inputs[name] = { n: [...s.n], sum: [...s.sum], sumsq: [...s.sumsq] };
  let rows = first.rows, sites = first.sites;
  let classCounts = first.classCounts ? [...first.classCounts] : undefined;
  for (const s of list.slice(1)) {
    checkSameShape(first, s);
    rows += s.rows; sites += s.sites;
    for (const [name, t] of Object.entries(s.inputs)) {
      const acc = inputs[name]!;
      for (let j = 0; j < t.n.length; j++) { acc.n[j]! += t.n[j]!; acc.sum[j]! += t.sum[j]!; acc.sumsq[j]! += t.sumsq[j]!; }
    }
    classCounts = classCounts && s.classCounts ? classCounts.map((k, c) => (k === null || s.classCounts![c] === null ? null : k + s.classCounts![c]!)) : undefined;
  }
  return { rows, sites, inputs, ...(classCounts ? { classCounts } : {}) };
}

function checkSameShape(a: SiteStats, b: SiteStats): void {
  const shape = (s: SiteStats): string => Object.entries(s.inputs).map(([k, t]) => `${k}[${t.n.length}]`).sort().join(', ');
  const ok = shape(a) === shape(b) && Object.values(b.inputs).every((t) => t.sum.length === t.n.length && t.sumsq.length === t.n.length)
    && (a.classCounts?.length ?? 0) === (b.classCounts?.length ?? 0);
  if (!ok) {
    throw new CohortError('STATISTICS_SHAPE', `sites disagree on the inputs: ${shape(a)} vs ${shape(b)}${a.classCounts?.length !== b.classCounts?.length ? ' (or the class list)' : ''}`,
      'every site must read the same columns (and the manifest\'s class list) for one standardiser to exist');
  }
}

/** The agreed standardiser: what every participant applies, what the report names by hash, what the export ships. */
export interface AgreedStandardiser {
  readonly mode: 'consortium' | 'site';
  /** sha256 of the canonical JSON of everything below except the hash itself. */
  readonly hash: string;
  readonly rows: number;
  readonly sites: number;
  readonly inputs: Readonly<Record<string, { readonly mean: number[]; readonly std: number[] }>>;
  readonly featureNames?: readonly string[];
  readonly classNames?: readonly string[];
  readonly classCounts?: readonly (number | null)[];
}

export interface StandardiserMeta { readonly mode?: 'consortium' | 'site'; readonly featureNames?: readonly string[]; readonly classNames?: readonly string[] }

/** Mean and sample standard deviation per feature (as src/data/tabular.ts fitStandardiser: unseen -> mean 0, constant -> std 1). */
export function agreeStandardiser(total: SiteStats, meta: StandardiserMeta = {}): AgreedStandardiser {
  const inputs = Object.fromEntries(Object.entries(total.inputs).map(([name, t]) => {
    const mean = t.n.map((n, j) => (n ? t.sum[j]! / n : 0));
    const std = t.n.map((n, j) => {
      const v = n > 1 ? (t.sumsq[j]! - n * mean[j]! * mean[j]!) / (n - 1) : 0;
      return v > 1e-12 ? Math.sqrt(v) : 1;
    });
    return [name, { mean, std }];
  }));
  const body = { mode: meta.mode ?? 'consortium', rows: total.rows, sites: total.sites, inputs,
    ...(meta.featureNames ? { featureNames: [...meta.featureNames] } : {}), ...(meta.classNames ? { classNames: [...meta.classNames] } : {}),
    ...(total.classCounts ? { classCounts: [...total.classCounts] } : {}) };
  return { ...body, hash: standardiserHash(body) };
}

export function standardiserHash(s: Omit<AgreedStandardiser, 'hash'> | AgreedStandardiser): string {
  const { hash: _hash, ...body } = s as AgreedStandardiser;
  return sha256Hex(canonicalJson(body));
}

const AgreedSchema = z.object({
  mode: z.enum(['consortium', 'site']), hash: z.string().regex(/^[0-9a-f]{64}$/), rows: z.number().int().nonnegative(), sites: z.number().int().positive(),
  inputs: z.record(z.string().max(200), z.object({ mean: z.array(finite), std: z.array(finite.positive()) }).strict()),
  featureNames: z.array(z.string().max(1000)).optional(), classNames: z.array(z.string().max(1000)).optional(),
  classCounts: z.array(z.number().int().nonnegative().nullable()).optional(),
}).strict();

/** A standardiser read back (store) or received (a peer's answer): schema and hash checked. */
export function parseAgreed(v: unknown): AgreedStandardiser {
  const p = AgreedSchema.safeParse(v);
  if (!p.success) throw new CohortError('BAD_STANDARDISER', `not a standardiser: ${p.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, 'the sender runs an incompatible Cohort version');
  const s = p.data as AgreedStandardiser;
  if (standardiserHash(s) !== s.hash) throw new CohortError('BAD_STANDARDISER', 'the standardiser does not match its hash', 'it was altered or damaged');
  return s;
}

/** Every input of the set z-scored with the agreed statistics; missing values (NaN) become 0, i.e. the consortium's mean. */
export function applyAgreed(set: SampleSet, s: AgreedStandardiser): SampleSet {
  const inputs = { ...set.inputs };
  for (const [name, t] of Object.entries(set.inputs)) {
    const st = s.inputs[name];
    if (!st) throw new CohortError('STANDARDISER_SHAPE', `the standardiser has no input '${name}'`, 'every site must read the same inputs');
    const d = st.mean.length;
    if (perSample(t) !== d) throw new CohortError('STANDARDISER_SHAPE', `the standardiser has ${d} values for input '${name}', the data ${perSample(t)}`, 'every site must read the same columns');
    const data = new Float32Array(t.data.length);
    for (let i = 0; i < data.length; i++) {
      const v = (t.data[i]! - st.mean[i % d]!) / st.std[i % d]!;
      data[i] = Number.isNaN(v) ? 0 : v;
    }
    inputs[name] = { shape: t.shape, data };
  }
  return { ...set, inputs };
}

/** The tabular standardiser in the form the self-contained export takes (input `features`). */
export function exportStandardiser(s: AgreedStandardiser, input = 'features'): { mean: Float32Array; std: Float32Array; featureNames: string[]; classes: string[] } {
  const st = s.inputs[input];
  if (!st) throw new CohortError('STANDARDISER_SHAPE', `the standardiser has no input '${input}'`, `inputs: ${Object.keys(s.inputs).join(', ')}`);
  return { mean: Float32Array.from(st.mean), std: Float32Array.from(st.std), featureNames: [...(s.featureNames ?? [])], classes: [...(s.classNames ?? [])] };
}

/** Bytes for the store or the wire, and back. */
export function encodeJson(v: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v));
}
export function decodeJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new CohortError('BAD_STANDARDISER', 'statistics message is not JSON', 'the sender runs an incompatible Cohort version');
  }
}
