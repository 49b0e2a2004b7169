/**
 * What a tabular model reads, described once for the self-contained export (src/engine/export.ts) and `cohort predict`:
 * the standardiser a trainer used (a site's own fit, or the consortium's agreed one from src/data/standardiser-stats.ts),
 * the encoded feature names in input order, the class names in index order and, optionally, the tabular reader's encoding
 * (which source columns are numeric and which are one-hot categorical, with their categories).
 *
 *   ModelInputDescription                  { mean, std, featureNames, classes, encoding? }
 *   describeModelInput(samples, standardiser) from readTabular's result and a fitted standardiser
 *   sourceColumns(description)             the encoding: given, or derived from the feature names ("col=category" -> one-hot)
 */
import { CohortError } from '../util/errors.ts';
import type { Encoding, Standardiser, TabularSamples } from './tabular.ts';

export interface ModelInputDescription {
  /** Per encoded feature: z = (x - mean) / std, then NaN (missing) -> 0, the training mean. */
  readonly mean: Float32Array | readonly number[];
  readonly std: Float32Array | readonly number[];
  /** Encoded features in the model's input order: a numeric column's name, or `column=category` for one-hot entries. */
  readonly featureNames: readonly string[];
  /** Class names in index order ([] for survival and regression). */
  readonly classes: readonly string[];
  /** The reader's encoding of source columns; without it, sourceColumns() derives it from the feature names. */
  readonly encoding?: Encoding;
}

export type SourceColumn = Encoding['columns'][number];

export function describeModelInput(t: Pick<TabularSamples, 'featureNames' | 'classNames' | 'encoding'>, s: Standardiser): ModelInputDescription {
  return { mean: s.mean, std: s.std, featureNames: [...t.featureNames], classes: [...t.classNames], encoding: t.encoding };
}

/**
 * The source columns and how each becomes features. A feature name `a=b` whose prefix `a` is not itself a feature is entry b
 * of categorical column a (the tabular reader's naming); every other name is a numeric column. Checked against featureNames.
 */
export function sourceColumns(d: ModelInputDescription): SourceColumn[] {
  const cols = d.encoding ? [...d.encoding.columns] : deriveColumns(d.featureNames);
  const expanded = cols.flatMap((c) => (c.kind === 'numeric' ? [c.name] : (c.categories ?? []).map((k) => `${c.name}=${k}`)));
  if (expanded.join('\u0000') !== d.featureNames.join('\u0000')) {
    throw new CohortError('BAD_MODEL_INPUT', 'the encoding does not produce the feature names it is given with',
      'pass the encoding the tabular reader returned together with its featureNames');
  }
  if (d.mean.length !== d.featureNames.length || d.std.length !== d.featureNames.length) {
    throw new CohortError('STANDARDISER_SHAPE', `the standardiser has ${d.mean.length} means and ${d.std.length} stds for ${d.featureNames.length} features`,
      'describe the model input with the standardiser fitted on these features');
  }
  return cols;
}

function deriveColumns(names: readonly string[]): SourceColumn[] {
  const plain = new Set(names);
  const cols: SourceColumn[] = [];
  for (const n of names) {
    const eq = n.indexOf('=');
    const col = eq > 0 ? n.slice(0, eq) : '';
    if (eq <= 0 || plain.has(col)) { cols.push({ name: n, kind: 'numeric' }); continue; }
    const last = cols[cols.length - 1];
    if (last?.kind === 'categorical' && last.name === col) (last.categories as string[]).push(n.slice(eq + 1));
    else cols.push({ name: col, kind: 'categorical', categories: [n.slice(eq + 1)] });
  }
  return cols;
}
