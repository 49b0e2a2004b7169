/**
 * A scenario's table, read the same way wherever it runs: by a real peer's training worker (src/peer/worker.ts, the site's own
 * CSV) and by the simulator (src/sim/datasets.ts, the pooled CSV). One function, so that a scenario means the same columns
 * everywhere (issue 13.4):
 *
 *   siteTable(table, { label | survival, regression?, ignore?, siteColumns?, classNames? })  -> { samples, identifiers, ignore }
 *
 * Left out of the features: identifier-like columns (src/data/table-audit.ts idLikeColumns: named id/pid/patient_id/..., or an
 * integer or text column with a distinct value in every row), the manifest's data.selector.ignore, and site/split columns.
 * Targets: a classification label (class indices; with the manifest's class list, index k is the same class at every site), a
 * regression target (its raw value: the caller scales it), or survival time + event.
 *
 * Why the same rule at every site can still disagree: "distinct in every row" is a property of the rows a site holds. A site whose
 * integer column happens to be all-distinct drops it while the others keep it; the consortium standardiser then refuses the
 * mismatch by name (STATISTICS_SHAPE). Naming the column in data.selector.ignore settles it for everyone.
 */
import { tableToRegression, tableToSamples, type Table, type TabularSamples } from './tabular.ts';
import { idLikeColumns } from './table-audit.ts';
import { CohortError } from '../util/errors.ts';
import type { SampleSet } from './samples.ts';
import type { AgreedStandardiser } from './standardiser-stats.ts';

export interface SiteTableOptions {
  /** The column to predict: class labels, or a number with `regression`. */
  readonly label?: string;
  readonly regression?: boolean;
  readonly survival?: { readonly time: string; readonly event: string };
  /** The manifest's data.selector.ignore (the user's --ignore). */
  readonly ignore?: readonly string[];
  /** Site and fixed-split columns (data.split): never features, never identifiers. */
  readonly siteColumns?: readonly string[];
  /** The federation's class list in index order (data.selector.classNames). */
  readonly classNames?: readonly string[];
}

export interface SiteTable {
  readonly samples: TabularSamples;
  /** Columns dropped as identifiers (by name or one distinct value per row), in table order. */
  readonly identifiers: readonly string[];
  /** Every column left out of the features besides the targets: identifiers, the user's ignore list, site columns. */
  readonly ignore: readonly string[];
}

export function siteTable(table: Table, o: SiteTableOptions): SiteTable {
  const userIgnore = o.ignore ?? [];
  const siteColumns = o.siteColumns ?? [];
  const targets = o.survival ? [o.survival.time, o.survival.event] : o.label !== undefined ? [o.label] : [];
  const named = targets.find((t) => userIgnore.includes(t));
  if (named) throw new CohortError('BAD_MANIFEST', `data.selector.ignore names the target column '${named}'`, 'a target is never a feature; drop it from the ignore list');
  const ids = idLikeColumns(table, new Set([...targets, ...siteColumns, ...userIgnore])).map((c) => c.name);
  const ignore = [...new Set([...siteColumns, ...userIgnore, ...ids])];
  const samples = o.survival ? tableToSamples(table, { survival: o.survival, ignore })
    : o.regression ? tableToRegression(table, { target: labelOf(o), ignore })
      : tableToSamples(table, { label: labelOf(o), ignore, ...(o.classNames?.length ? { classNames: o.classNames } : {}) });
  return { samples, identifiers: [...new Set([...ids, ...samples.identifiers])], ignore };
}

function labelOf(o: SiteTableOptions): string {
  if (o.label === undefined) throw new CohortError('BAD_MANIFEST', 'the table task names no label column', 'set data.selector.label');
  return o.label;
}

/**
 * Regression targets scale like inputs: the target's [n, sum, sumsq] travel as one more input (`target`) of the site's statistics,
 * so the consortium agrees the target's mean and sd with the features' (one exchange, the same small-count rule), and every site
 * trains on one target scale; the export multiplies back (engine/export.ts). These three functions are that round trip.
 */
export const TARGET_INPUT = 'target';

/** The set with its regression target also as input `target` [1] (for siteStats only: the model never reads it). */
export function withTargetInput(set: SampleSet): SampleSet {
  const y = set.targets['label'];
  if (!y) throw new CohortError('NO_TARGET', 'a regression set has no target', 'set data.selector.label to the numeric column to predict');
  return { ...set, inputs: { ...set.inputs, [TARGET_INPUT]: { shape: [1], data: y.data } } };
}

/** The target's mean and sd in a standardiser built from withTargetInput statistics. */
export function targetScaleOf(s: AgreedStandardiser): TargetScale {
  const t = s.inputs[TARGET_INPUT];
  if (!t || t.mean.length !== 1) throw new CohortError('STANDARDISER_SHAPE', 'the standardiser has no regression target', 'every site must run the same regression scenario');
  return { mean: t.mean[0]!, std: t.std[0]! };
}

export interface TargetScale { readonly mean: number; readonly std: number }

/** targets.label z-scored: (y - mean) / std. */
export function scaleTarget(set: SampleSet, s: TargetScale): SampleSet {
  const y = set.targets['label']!;
  return { ...set, targets: { ...set.targets, label: { shape: y.shape, data: y.data.map((v) => (v - s.mean) / s.std) } } };
}

/** Quintile of each target value (0..4), to stratify a regression split as the simulator does (a number has no classes). */
export function targetQuintiles(y: Float32Array): Float32Array {
  const n = y.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => y[a]! - y[b]!);
  const q = new Float32Array(n);
  order.forEach((i, rank) => { q[i] = Math.min(4, Math.floor((5 * rank) / Math.max(1, n))); });
  return q;
}
