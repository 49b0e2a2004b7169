/**
 * Honest tables: what a table would do to a model before any training, so `cohort train` and `cohort sim --data` can say it.
 *
 *   idLikeColumns(table, exclude)          columns that identify a row rather than describe it: by name (id, pid, patient_id,
 *                                          subject, mrn, uuid, ..._id) or by content (every row a distinct integer or text value)
 *   checkClassLabel(table, label)          refuses a label with too many distinct values for classification (continuous, or
 *                                          more than MAX_CLASSES classes), with a hint towards regression or survival
 *   missingCounts(table, columns)          missing cells per feature column (they are imputed: training mean / all-zero one-hot)
 *   auditTable(table, options)             all of the above in one call: the samples, a seeded held-out split, the feature
 *                                          columns used, identifiers dropped, missing counts, warnings and printable notes
 *   leakageWarnings(set, names, task, rows) single columns that alone predict the target almost perfectly on the training rows
 *                                          (binary: univariate AUC; multi-class: purity of a few-valued column or one-vs-rest AUC;
 *                                          regression: |Pearson r|) -- likely a copy or a consequence of the outcome
 *
 * Why here and not in each command: the CLI commands and the simulator read tables through the same data layer, and the
 * same table must produce the same notes everywhere.
 */
import { CohortError } from '../util/errors.ts';
import type { SampleSet } from './samples.ts';
import { stratifiedSplit, tableToRegression, tableToSamples, type Column, type Table, type TabularSamples } from './tabular.ts';

/** More distinct label values than this is not a classification problem a table of patients supports. */
export const MAX_CLASSES = 20;
/** A single column this good at predicting the target (AUC, purity or |r|) is reported as likely leakage. */
export const LEAKAGE_THRESHOLD = 0.98;
/** Fewer rows than this cannot show that "one distinct value per row" is more than chance. */
const MIN_ROWS_FOR_UNIQUE = 20;

const ID_NAME = /^(id|pid|mrn|uuid|guid|subject|patient|case|record|accession|barcode|(patient|subject|case|record|sample|study|person)[ _-]?(id|no|nr|number|code)|.*[_-](id|uuid))$/i;

export interface IdLikeColumn {
  readonly name: string;
  /** 'name': the header says so; 'unique': every row holds a distinct integer or text value. */
  readonly reason: 'name' | 'unique';
}

export function isIdLikeName(name: string): boolean {
  return ID_NAME.test(name.trim());
}

/** Columns to drop as identifiers (the label and other excluded columns are never candidates). */
export function idLikeColumns(table: Table, exclude: ReadonlySet<string>): IdLikeColumn[] {
  const out: IdLikeColumn[] = [];
  for (const c of table.columns) {
    if (exclude.has(c.name)) continue;
    if (isIdLikeName(c.name)) out.push({ name: c.name, reason: 'name' });
    else if (isUniquePerRow(c, table.rows)) out.push({ name: c.name, reason: 'unique' });
  }
  return out;
}

/** Every row a distinct value, no value missing, and the values integers or text (a measured quantity is not an identifier). */
function isUniquePerRow(c: Column, rows: number): boolean {
  if (rows < MIN_ROWS_FOR_UNIQUE || c.missing > 0) return false;
  if (c.kind === 'numeric' && !c.values.every((v) => Number.isInteger(v))) return false;
  return new Set(c.values).size === rows;
}

/** The label's distinct values; refuses (exit 2) a label that is no set of classes. */
export function checkClassLabel(table: Table, label: string): void {
  const col = table.columns.find((c) => c.name === label);
  if (!col) return; // the reader names the missing column with its own hint
  const distinct = new Set(col.values.filter((v) => v !== null));
  const fractional = col.kind === 'numeric' && [...distinct].some((v) => !Number.isInteger(v));
  if (distinct.size <= MAX_CLASSES && !(fractional && distinct.size > 2)) return;
  const what = fractional ? 'a continuous column' : `more than ${MAX_CLASSES} classes`;
  throw new CohortError('LABEL_NOT_CLASSES', `${table.file}: label column '${label}' has ${distinct.size} distinct values (${what}): it is not a classification target`,
    col.kind === 'numeric'
      ? `to predict the value itself use --task regression --label ${label}; for a time to an event use --time ${label} --event COLUMN (survival)`
      : 'group the values into a few classes first, or pick another label column');
}

/** Missing cells per column among `columns` (only columns with at least one). */
export function missingCounts(table: Table, columns: readonly string[], rows?: readonly number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of columns) {
    const c = table.columns.find((col) => col.name === name);
    if (!c) continue;
    const n = rows ? rows.reduce((a, r) => a + (c.values[r] === null ? 1 : 0), 0) : c.missing;
    if (n > 0) out[name] = n;
  }
  return out;
}

export type AuditTask = 'classification' | 'regression';

export interface LeakageWarning {
  readonly column: string;
  /** 'auc' (binary), 'purity' or 'auc_ovr' (multi-class), 'abs_r' (regression). */
  readonly statistic: 'auc' | 'purity' | 'auc_ovr' | 'abs_r';
  readonly value: number;
  readonly message: string;
}

/**
 * Feature columns of `set` (names: one per feature, `col=cat` for one-hot parts) that alone predict the target on `rows` (the
 * training part). One-hot parts of one source column are judged together (the source column is named once, at its best).
 */
export function leakageWarnings(set: SampleSet, featureNames: readonly string[], task: AuditTask, rows: readonly number[],
  threshold = LEAKAGE_THRESHOLD): LeakageWarning[] {
  const x = set.inputs['features'];
  const y = set.targets['label'];
  if (!x || !y || rows.length < 4) return [];
  const F = featureNames.length;
  const target = rows.map((r) => y.data[r]!);
  const best = new Map<string, { statistic: LeakageWarning['statistic']; value: number }>();
  for (let j = 0; j < F; j++) {
    const values = rows.map((r) => x.data[r * F + j]!);
    const s = separation(values, target, task);
    if (!s) continue;
    const source = featureNames[j]!.split('=')[0]!;
    const prev = best.get(source);
    if (!prev || s.value > prev.value) best.set(source, s);
  }
  return [...best].filter(([, s]) => s.value >= threshold).map(([column, s]) => ({
    column, ...s,
    message: `column '${column}' alone predicts the ${task === 'regression' ? 'target' : 'label'} almost perfectly on the training part`
      + ` (${describeStatistic(s.statistic)} ${s.value.toFixed(3)}): likely leakage (a copy or a consequence of the outcome); drop it with --ignore ${column} unless it is truly known at prediction time`,
  }));
}

function describeStatistic(s: LeakageWarning['statistic']): string {
  return s === 'auc' ? 'univariate AUC' : s === 'purity' ? 'class purity of its values' : s === 'auc_ovr' ? 'mean one-vs-rest AUC' : '|Pearson r|';
}

/** How well one feature alone separates the target (NaN feature values skipped); null when it cannot be judged. */
function separation(values: number[], target: number[], task: AuditTask): { statistic: LeakageWarning['statistic']; value: number } | null {
  const keep = values.map((v, i) => i).filter((i) => !Number.isNaN(values[i]!) && !Number.isNaN(target[i]!));
  const v = keep.map((i) => values[i]!);
  const t = keep.map((i) => target[i]!);
  if (v.length < 4) return null;
  if (task === 'regression') {
    const r = pearson(v, t);
    return Number.isNaN(r) ? null : { statistic: 'abs_r', value: Math.abs(r) };
  }
  const classes = [...new Set(t)].sort((a, b) => a - b);
  if (classes.length < 2) return null;
  if (classes.length === 2) {
    const a = auc(v, t.map((c) => (c === classes[1] ? 1 : 0)));
    return Number.isNaN(a) ? null : { statistic: 'auc', value: Math.max(a, 1 - a) };
  }
  const distinct = new Set(v).size;
  if (distinct <= MAX_CLASSES) return { statistic: 'purity', value: purity(v, t) };
  const aucs = classes.map((c) => auc(v, t.map((k) => (k === c ? 1 : 0)))).map((a) => Math.max(a, 1 - a));
  return { statistic: 'auc_ovr', value: aucs.reduce((s, a) => s + a, 0) / aucs.length };
}

/** Share of rows whose class is the majority class of their feature value (1 = the value decides the class). */
function purity(v: number[], t: number[]): number {
  const counts = new Map<number, Map<number, number>>();
  v.forEach((x, i) => {
    const m = counts.get(x) ?? new Map<number, number>();
    m.set(t[i]!, (m.get(t[i]!) ?? 0) + 1);
    counts.set(x, m);
  });
  let hit = 0;
  for (const m of counts.values()) hit += Math.max(...m.values());
  return hit / v.length;
}

/** Rank-based AUC (Mann-Whitney U, ties as one half); NaN when one class is absent. */
function auc(score: number[], positive: number[]): number {
  const idx = score.map((_, i) => i).sort((a, b) => score[a]! - score[b]!);
  let pos = 0, rankSum = 0;
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && score[idx[j + 1]!] === score[idx[i]!]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (positive[idx[k]!] === 1) { pos++; rankSum += rank; }
    i = j + 1;
  }
  const neg = idx.length - pos;
  return pos === 0 || neg === 0 ? Number.NaN : (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

function pearson(a: number[], b: number[]): number {
  const n = a.length;
  const ma = a.reduce((s, x) => s + x, 0) / n;
  const mb = b.reduce((s, x) => s + x, 0) / n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i]! - ma, db = b[i]! - mb;
    sab += da * db; saa += da * da; sbb += db * db;
  }
  return saa === 0 || sbb === 0 ? Number.NaN : sab / Math.sqrt(saa * sbb);
}

export interface AuditOptions {
  /** The column to predict: class labels (classification) or a number (regression). */
  readonly label: string;
  readonly task: AuditTask;
  /** Columns the user leaves out (--ignore). */
  readonly ignore?: readonly string[];
  /** Columns left out without a note (e.g. the site column of a natural split). */
  readonly exclude?: readonly string[];
  readonly testFraction: number;
  readonly seed: number;
  readonly classNames?: readonly string[];
}

export interface TableAudit {
  readonly samples: TabularSamples;
  /** Held-out split (classification: stratified by class; regression: a seeded random split). */
  readonly split: { readonly train: number[]; readonly test: number[] };
  /** The source columns the model sees, in order (a categorical column once, though it is one-hot encoded). */
  readonly features: string[];
  readonly identifiers: IdLikeColumn[];
  readonly ignored: string[];
  /** Missing cells per feature column among the rows used: imputed (numeric: the training mean; categorical: all-zero one-hot). */
  readonly imputed: Record<string, number>;
  readonly warnings: LeakageWarning[];
  /** One line each, for stderr in human mode. */
  readonly notes: string[];
}

/** Read a table honestly: refuse what is not a target, drop identifiers, split, count the imputation, look for leakage. */
export function auditTable(table: Table, o: AuditOptions): TableAudit {
  const ignored = [...new Set(o.ignore ?? [])];
  if (ignored.includes(o.label)) {
    throw new CohortError('BAD_ARGUMENT', `--ignore names the label column '${o.label}'`, 'the label is never a feature; drop it from --ignore');
  }
  if (o.task === 'classification') checkClassLabel(table, o.label);
  const exclude = o.exclude ?? [];
  const ids = idLikeColumns(table, new Set([o.label, ...ignored, ...exclude]));
  const ignore = [...new Set([...ignored, ...exclude, ...ids.map((c) => c.name)])];
  const samples = o.task === 'regression'
    ? tableToRegression(table, { target: o.label, ignore })
    : tableToSamples(table, { label: o.label, ignore, ...(o.classNames ? { classNames: o.classNames } : {}) });
  const identifiers = [...ids, ...samples.identifiers.filter((n) => !ids.some((c) => c.name === n)).map((name) => ({ name, reason: 'unique' as const }))];
  const labels = samples.set.targets['label']!.data;
  const split = stratifiedSplit(o.task === 'regression' ? new Float32Array(labels.length) : labels, o.testFraction, o.seed);
  const features = samples.encoding.columns.map((c) => c.name);
  const imputed = missingCounts(table, features, samples.rowIndex);
  const warnings = leakageWarnings(samples.set, samples.featureNames, o.task, split.train);
  return { samples, split, features, identifiers, ignored, imputed, warnings, notes: auditNotes(samples, identifiers, ignored, imputed, warnings) };
}

function auditNotes(s: TabularSamples, ids: readonly IdLikeColumn[], ignored: readonly string[], imputed: Record<string, number>,
  warnings: readonly LeakageWarning[]): string[] {
  const notes: string[] = [];
  if (ids.length) {
    const why = (reason: IdLikeColumn['reason'], text: string): string[] => {
      const names = ids.filter((c) => c.reason === reason).map((c) => c.name);
      return names.length ? [`${text}: ${names.join(', ')}`] : [];
    };
    notes.push(`note: dropped identifier-like column(s): ${ids.map((c) => c.name).join(', ')}`
      + ` (${[...why('name', 'by name'), ...why('unique', 'a distinct value in every row')].join('; ')})`);
  }
  if (ignored.length) notes.push(`note: ignored column(s) (--ignore): ${ignored.join(', ')}`);
  const other = s.dropped.filter((d) => !ids.some((c) => c.name === d));
  if (other.length) notes.push(`note: dropped text column(s) with too many distinct values: ${other.join(', ')}`);
  if (s.droppedRows) notes.push(`note: left out ${s.droppedRows} row(s) without a label value`);
  const miss = Object.entries(imputed);
  if (miss.length) notes.push(`note: imputed missing values (numeric: training mean; text: no category): ${miss.map(([c, n]) => `${c} ${n}`).join(', ')}`);
  const cols = s.encoding.columns.map((c) => c.name);
  notes.push(`features (${cols.length} column(s), ${s.featureNames.length} input(s)): ${cols.join(', ')}`);
  for (const w of warnings) notes.push(`warning: ${w.message}`);
  return notes;
}
