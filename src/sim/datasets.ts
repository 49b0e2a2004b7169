/**
 * Pooled data for a simulation, from a manifest's data selector (simulation only: real peers read their own registered data).
 *   source "path/to/file.csv" + label column   the data layer's tabular reader (src/data/tabular.ts: ids dropped, categories one-hot,
 *                                              labels -> class indices in sorted order)
 *   source "path/to/file.csv" + survival       the same reader with targets time + event (a survival task: task.time / task.event)
 *   source "path/to/file.csv" + regression     the same reader, targets.label = the label column's value (task.kind regression)
 *   CSV sources are read by src/data/site-table.ts, as real peers read theirs: identifier-like columns (named id/pid/..., or a
 *   distinct integer or text per row) and the columns in data.selector.ignore are not features.
 *   source "synthetic:blobs"                   Gaussian class blobs (preprocessing: { samples, features, classes, separation })
 *   source "synthetic:petct"                   SYNTHETIC 2D PET/CT phantoms, one site per scanner profile, fixed train/test cases
 *                                              per site (preprocessing: the image config + synthetic: { sites, train, test, seed })
 * Produces a SampleSet { inputs: { features: [F] }, targets: { label: [] } } (survival: { time: [], event: [] }). With a natural
 * split (data.split: { by: COLUMN, train?: { column, value } }) each sample also carries its site (the value of COLUMN) and,
 * with `train`, whether it belongs to the fixed training part; those columns are not features. preprocessing.standardize is
 * applied after the split by src/sim/run.ts: "consortium" (or true) with consortiumStandardiser below, the real peers' functions.
 */
import { concatSamples, type SampleSet } from '../data/samples.ts';
import { parsePreprocessConfig, preprocessCases, type PreprocessCase } from '../data/preprocess.ts';
import { synthCase } from '../data/synth.ts';
import { fitStandardiser, readTable, standardiseSet } from '../data/tabular.ts';
import { siteTable, targetQuintiles } from '../data/site-table.ts';
import { CohortError } from '../util/errors.ts';
import { agreeStandardiser, combineStats, siteStats, type AgreedStandardiser, type StandardiserMeta } from '../data/standardiser-stats.ts';
import { Rng } from '../util/random.ts';

export interface LoadedData {
  readonly set: SampleSet;
  readonly classes: number;
  readonly classNames: readonly string[];
  readonly featureNames: readonly string[];
  /** Columns dropped as identifiers (named id/..._id, or text unique per row). */
  readonly identifiers?: readonly string[];
  /** Natural split: the site of each sample, and (with a train column) whether it is in the fixed training part. */
  readonly sites?: readonly string[];
  readonly inTrain?: readonly boolean[];
}

/** Survival targets: the follow-up time column and the event column (1 = event, 0 = censored). */
export interface SurvivalColumns { readonly time: string; readonly event: string }

/** A natural split: one peer per distinct value of `by`; `train` marks the rows of a fixed training part (the rest is test). */
export interface SiteSplit { readonly by: string; readonly train?: { readonly column: string; readonly value: string } }

/** regression: the label is a number to predict (targets.label holds its value, not a class index). */
export interface LoadOptions { readonly survival?: SurvivalColumns; readonly split?: SiteSplit; readonly regression?: boolean }

export interface DataSelector {
  readonly source?: string;
  readonly label?: string;
  readonly dataset?: string;
  /** Columns never used as features (identifier-like columns are dropped without being named here). */
  readonly ignore?: readonly string[];
}

export function loadSimData(selector: DataSelector, preprocessing: Readonly<Record<string, unknown>>, seed: number, o: LoadOptions = {}): LoadedData {
  const source = selector.source ?? (selector.dataset === 'wdbc' ? 'data/wdbc.csv' : undefined);
  if (!source) {
    throw new CohortError('SIM_DATA_SOURCE', 'the manifest\'s data.selector names no source the simulator can load',
      'set data.selector.source to a CSV file (with data.selector.label) or "synthetic:blobs"');
  }
  if (source === 'synthetic:petct') {
    if (o.survival) throw new CohortError('SIM_DATA_SOURCE', 'synthetic PET/CT data has no survival columns', 'use a CSV source');
    return syntheticPetct(preprocessing, seed);
  }
  if (source.startsWith('synthetic:')) {
    if (o.survival || o.split) throw new CohortError('SIM_DATA_SOURCE', 'synthetic data has no survival columns or sites', 'use a CSV source');
    return synthetic(source.slice(10), preprocessing, seed);
  }
  return csv(source, selector.label ?? 'label', o, selector.ignore ?? []);
}

/** A CSV through the data layer: identifier-like columns (src/data/table-audit.ts), the site columns and `userIgnore` left out. */
function csv(path: string, label: string, o: LoadOptions, userIgnore: readonly string[]): LoadedData {
  const table = readTable(path);
  const siteColumns = o.split ? [o.split.by, ...(o.split.train ? [o.split.train.column] : [])] : [];
  // the real peers' reader (src/data/site-table.ts): the same columns in the simulator as on a hospital's peer
  const { samples: t, identifiers } = siteTable(table, { label, ignore: userIgnore, siteColumns,
    ...(o.survival ? { survival: o.survival } : {}), ...(o.regression ? { regression: true } : {}) });
  if (!o.survival && !t.set.targets['label']) throw new CohortError('SIM_DATA_LABEL', `${path} has no label column "${label}"`, 'set data.selector.label');
  const base = { set: o.regression ? regressionTargets(t.set) : t.set, classes: t.classes, classNames: t.classNames, featureNames: t.featureNames, identifiers };
  if (!o.split) return base;
  const column = (name: string): readonly (string | number | null)[] => table.columns.find((c) => c.name === name)!.values;
  const siteOf = column(o.split.by);
  const sites = t.rowIndex.map((r, i) => {
    const v = siteOf[r];
    if (v === null) throw new CohortError('SIM_SITE_MISSING', `${path}: sample ${i} (row ${r + 2}) has no value in the site column "${o.split!.by}"`, 'fill the site column, or drop those rows');
    return String(v);
  });
  if (!o.split.train) return { ...base, sites };
  const trainCol = column(o.split.train.column);
  const inTrain = t.rowIndex.map((r) => String(trainCol[r]) === o.split!.train!.value);
  if (!inTrain.some(Boolean) || inTrain.every(Boolean)) {
    throw new CohortError('SIM_TRAIN_COLUMN', `${path}: column "${o.split.train.column}" marks ${inTrain.filter(Boolean).length} of ${inTrain.length} rows as "${o.split.train.value}"`,
      'the train column must mark some rows as training and leave the others for testing');
  }
  return { ...base, sites, inTrain };
}

/**
 * Regression in the simulator: the target as read (src/sim/run.ts z-scores it after the split with the consortium's target
 * statistics from the training parts, as real peers agree it: held-out rows never enter its mean or sd), and `stratum` = the
 * target's quintile, which the train/test split and the partition stratify by (a continuous value has no classes to stratify by).
 */
function regressionTargets(set: SampleSet): SampleSet {
  const stratum = targetQuintiles(set.targets['label']!.data);
  return { ...set, targets: { ...set.targets, stratum: { shape: [], data: stratum } } };
}

function num(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

function synthetic(kind: string, p: Readonly<Record<string, unknown>>, seed: number): LoadedData {
  if (kind !== 'blobs') throw new CohortError('SIM_DATA_SOURCE', `unknown synthetic source "${kind}"`, 'use "synthetic:blobs"');
  const n = num(p['samples'], 600);
  const F = num(p['features'], 8);
  const C = num(p['classes'], 3);
  const sep = num(p['separation'], 2);
  const rng = new Rng(seed ^ 0xb10b);
  const centres = Array.from({ length: C }, () => Float32Array.from({ length: F }, () => rng.normal() * sep));
  const features = new Float32Array(n * F);
  const label = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    const c = k % C;
    label[k] = c;
    for (let j = 0; j < F; j++) features[k * F + j] = centres[c]![j]! + rng.normal();
  }
  return {
    set: { size: n, inputs: { features: { shape: [F], data: features } }, targets: { label: { shape: [], data: label } } },
    classes: C,
    classNames: Array.from({ length: C }, (_, c) => `class${c}`),
    featureNames: Array.from({ length: F }, (_, j) => `f${j}`),
  };
}

/**
 * SYNTHETIC PET/CT phantoms (src/data/synth.ts), 2D, one site per scanner profile (natural site shift: PET calibration, CT offset,
 * noise, blur, voxel size, case mix), preprocessed by the data layer with `preprocessing` (the image config of the scenario).
 * preprocessing.synthetic = { sites (default 4), train (cases per site, default 16), test (default 16), seed (default 1) }; the
 * generator's seed is synthetic.seed, not the run's, so every run sees the same patients. Each site's first `train` cases are its
 * training part (augmentation applies there only), the next `test` cases its test part (no augmentation): one subject never lands
 * on both sides. Targets: the mask, and `label` = 1 when a sample's mask has foreground (for stratification; the Dice loss reads
 * `mask`). Needs data.split (any `by`) to be run as a natural split, one peer per site.
 */
function syntheticPetct(p: Readonly<Record<string, unknown>>, seed: number): LoadedData {
  const g = (p['synthetic'] ?? {}) as Record<string, unknown>;
  const sites = num(g['sites'], 4);
  const ntrain = num(g['train'], 16);
  const ntest = num(g['test'], 16);
  const genSeed = num(g['seed'], 1);
  const { synthetic: _drop, ...rest } = p as Record<string, unknown>;
  const config = parsePreprocessConfig(rest);
  const noAugment = { ...config, augment: undefined };
  const parts: SampleSet[] = [];
  const siteOf: string[] = [];
  const inTrain: boolean[] = [];
  for (let s = 0; s < sites; s++) {
    const cases = (from: number, n: number): PreprocessCase[] => Array.from({ length: n }, (_, k) => {
      const c = synthCase(s, from + k, { twoD: true, seed: genSeed });
      return { subject: c.subject, images: { CT: c.ct, PT: c.pet }, mask: c.mask };
    });
    const tr = preprocessCases(cases(0, ntrain), config, seed ^ Math.imul(s + 1, 0x2545f491)).set;
    const te = preprocessCases(cases(ntrain, ntest), noAugment, genSeed).set;
    for (const [set, train] of [[tr, true], [te, false]] as const) {
      parts.push(set);
      for (let i = 0; i < set.size; i++) { siteOf.push(`site-${s}`); inTrain.push(train); }
    }
  }
  const pooled = concatSamples(parts);
  const mask = pooled.targets['mask']!;
  const per = mask.shape.reduce((a, b) => a * b, 1);
  const label = Float32Array.from({ length: pooled.size }, (_, i) => (mask.data.subarray(i * per, (i + 1) * per).some((v) => v > 0) ? 1 : 0));
  return {
    set: { ...pooled, targets: { ...pooled.targets, label: { shape: [], data: label } } },
    classes: 2, classNames: ['background', 'lesion'], featureNames: [], sites: siteOf, inTrain,
  };
}

/** z-score every input with statistics of the training part only (the data layer's standardiser); the test part reuses them. */
export function standardiseSplit(train: SampleSet, test: SampleSet): { train: SampleSet; test: SampleSet } {
  let tr = train;
  let te = test;
  for (const [name, t] of Object.entries(train.inputs)) {
    const s = fitStandardiser(t, train.size);
    tr = standardiseSet(tr, s, name);
    te = standardiseSet(te, s, name);
  }
  return { train: tr, test: te };
}

/**
 * The consortium standardiser of the simulated sites, exactly as real peers agree it (src/peer/stats-exchange.ts): each site's
 * training statistics (siteStats, small counts suppressed), added in site order (combineStats), turned into one standardiser.
 * `suppressed`: sites below the small-count rule, left out as a real site would leave itself out.
 */
export function consortiumStandardiser(parts: readonly SampleSet[], o: { minCount?: number; meta?: StandardiserMeta } = {}): { standardiser: AgreedStandardiser; suppressed: number } {
  const stats = parts.map((p) => siteStats(p, o.minCount !== undefined ? { minCount: o.minCount } : {}));
  const present = stats.filter((x) => x !== null);
  if (!present.length) {
    throw new CohortError('NO_STATISTICS', `every one of the ${parts.length} simulated sites has fewer training rows than the small-count rule allows to share`,
      'use fewer peers, lower data.preprocessing.minCount, or data.preprocessing.standardize "site"');
  }
  return { standardiser: agreeStandardiser(combineStats(present), { ...o.meta, mode: 'consortium' }), suppressed: parts.length - present.length };
}
