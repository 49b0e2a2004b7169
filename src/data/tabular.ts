/**
 * CSV/TSV tables -> SampleSet (the tabular reader of the data layer).
 *
 *   readTable(file, opts?)                      parse a delimited file into typed columns (numeric / categorical, missing = null)
 *   tableToSamples(table, { label, ignore })    -> { set, classNames, featureNames, encoding }
 *   readTabular(file, { label, ignore })        both in one call (what `cohort train --data F --label L` uses)
 *   stratifiedSplit(labels, testFraction, seed) seeded per-class held-out split (indices)
 *   fitStandardiser / applyStandardiser         z-score fitted on the training part only (NaN -> 0 = the training mean)
 *
 * Rules (documented in docs/data.md):
 *   - the delimiter is a tab for .tsv/.tab files or when the header holds a tab and no comma; otherwise a comma. RFC-4180 quotes.
 *   - missing values: empty cell, NA, N/A, NaN, null, ?, . (case-insensitive). Numeric missing -> NaN in the SampleSet.
 *   - a column is numeric when every non-missing cell parses as a finite number; otherwise categorical.
 *   - identifier columns are dropped: a column named `id`, or ending in `_id`/`-id` (case-insensitive), plus any named in `ignore`.
 *   - categorical features are one-hot encoded with the categories seen locally (sorted); a missing category -> all zeros.
 *     Categorical columns with more than `maxCategories` (default 32) distinct values are dropped with a warning (free text).
 *   - the label column's distinct values, sorted (numerically when numeric), are the classes; targets.label holds the class index
 *     as a float. Rows with a missing label are dropped (counted in `droppedRows`).
 *   - survival instead of a label (`survival: { time, event }`): targets.time (the numeric follow-up time) and targets.event
 *     (1 = event observed, 0 = censored; the column holds 0/1, or true/false, yes/no, dead/alive); rows missing either are dropped.
 *   - a text column with one distinct value per row (and more rows than `maxCategories`) is identifier-like: it is dropped, and
 *     listed in `identifiers` with the named identifier columns (callers print them as a note).
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';
import { Rng } from '../util/random.ts';
import { perSample, type SampleSet, type SampleTensor } from './samples.ts';

const log = logger('data:tabular');

export type Cell = number | string | null;

export interface Column {
  readonly name: string;
  readonly kind: 'numeric' | 'categorical';
  /** One value per row: numbers for numeric columns, strings for categorical ones, null when missing. */
  readonly values: readonly Cell[];
  readonly missing: number;
}

export interface Table {
  readonly file: string;
  readonly columns: readonly Column[];
  readonly rows: number;
}

export interface TabularOptions {
  /** The column to predict (class labels). Without it the set has no targets. */
  readonly label?: string;
  /** Further columns to leave out (besides identifier columns). */
  readonly ignore?: readonly string[];
  /** Only these feature columns (default: all but label, identifiers and ignored). */
  readonly features?: readonly string[];
  readonly maxCategories?: number;
  /** Fewest label classes accepted (default 2, what training needs; a registry accepts 1: a site may see one class only). */
  readonly minClasses?: number;
  /**
   * The federation's class list, in index order. Federated sites must agree on class indices even when one site sees only some
   * classes (label skew); with this list, index k always means classNames[k], and a label outside it is an error.
   * Without it the locally seen values, sorted, are the classes.
   */
  readonly classNames?: readonly string[];
  /** Survival targets instead of a label: the follow-up time column and the event column (1/0). */
  readonly survival?: { readonly time: string; readonly event: string };
}

export interface Encoding {
  /** One entry per source column used: numeric columns map to one feature, categorical ones to one feature per category. */
  readonly columns: ReadonlyArray<{ name: string; kind: 'numeric' | 'categorical'; categories?: readonly string[] }>;
}

export interface TabularSamples {
  readonly set: SampleSet;
  readonly classes: number;
  readonly classNames: readonly string[];
  readonly featureNames: readonly string[];
  readonly encoding: Encoding;
  readonly dropped: readonly string[];
  /** The dropped columns that look like identifiers (named id/..._id, or text with one distinct value per row). */
  readonly identifiers: readonly string[];
  readonly droppedRows: number;
  /** The table row of each sample (rows with a missing label or survival target are left out). */
  readonly rowIndex: readonly number[];
}

const MISSING = new Set(['', 'na', 'n/a', 'nan', 'null', '?', '.', 'none']);

export function isMissing(cell: string): boolean {
  return MISSING.has(cell.trim().toLowerCase());
}

/** Split one delimited text into rows of cells (RFC 4180 quoting: "a ""b""" -> a "b"; quoted newlines allowed). */
export function parseDelimited(text: string, delimiter: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"' && cell.trim() === '') { quoted = true; cell = ''; }
    else if (ch === delimiter) { row.push(cell); cell = ''; }
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(cell); cell = '';
      if (row.length > 1 || row[0].trim() !== '') rows.push(row);
      row = [];
    } else cell += ch;
  }
  if (quoted) throw new CohortError('CSV_UNTERMINATED_QUOTE', 'a quoted cell is never closed', 'close the quote or remove it');
  row.push(cell);
  if (row.length > 1 || row[0].trim() !== '') rows.push(row);
  return rows;
}

function delimiterFor(file: string, text: string): string {
  const ext = extname(file.replace(/\.gz$/, '')).toLowerCase();
  if (ext === '.tsv' || ext === '.tab') return '\t';
  const header = text.slice(0, text.indexOf('\n') >>> 0);
  return header.includes('\t') && !header.includes(',') ? '\t' : ',';
}

/** Parse a CSV/TSV file (header row first) into typed columns. */
export function readTable(file: string): Table {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CohortError('DATA_NOT_FOUND', `cannot read ${file}: ${(e as Error).message}`, 'pass the path of an existing CSV or TSV file');
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let cells: string[][];
  try {
    cells = parseDelimited(text, delimiterFor(file, text));
  } catch (e) {
    throw new CohortError('BAD_CSV', `${file}: ${(e as Error).message}`, 'fix the quoting in the file');
  }
  if (cells.length === 0) throw new CohortError('EMPTY_DATASET', `${file} is empty`, 'the file needs a header row and data rows');
  const header = cells[0].map((h) => h.trim());
  const body = cells.slice(1);
  if (body.length === 0) throw new CohortError('EMPTY_DATASET', `${file} has a header but no data rows`, 'add data rows');
  const dup = header.find((h, i) => header.indexOf(h) !== i);
  if (dup !== undefined) throw new CohortError('BAD_CSV', `${file}: column '${dup}' appears twice in the header`, 'give every column a distinct name');
  body.forEach((r, i) => {
    if (r.length !== header.length) {
      throw new CohortError('BAD_CSV', `${file}: row ${i + 2} has ${r.length} cells, the header has ${header.length}`,
        'every row needs one cell per header column (quote cells that contain the delimiter)');
    }
  });
  const columns = header.map((name, j) => typeColumn(name, body.map((r) => r[j])));
  return { file, columns, rows: body.length };
}

function typeColumn(name: string, raw: readonly string[]): Column {
  const present = raw.filter((c) => !isMissing(c));
  const numeric = present.length > 0 && present.every((c) => Number.isFinite(Number(c.trim())));
  const values: Cell[] = raw.map((c) => (isMissing(c) ? null : numeric ? Number(c.trim()) : c.trim()));
  return { name, kind: numeric ? 'numeric' : 'categorical', values, missing: raw.length - present.length };
}

export function isIdentifierColumn(name: string): boolean {
  return /^(id|.*[_-]id)$/i.test(name.trim());
}

function columnNamed(table: Table, name: string, what: string): Column {
  const c = table.columns.find((col) => col.name === name);
  if (!c) {
    const names = table.columns.map((col) => col.name);
    const near = names.filter((n) => editDistance(n.toLowerCase(), name.toLowerCase()) <= 2);
    throw new CohortError('MISSING_COLUMN', `${table.file} has no ${what} column '${name}'`,
      `${near.length ? `did you mean ${near.map((n) => `'${n}'`).join(' or ')}? ` : ''}`
      + `columns: ${names.slice(0, 16).join(', ')}${names.length > 16 ? `, ... (${names.length} in all)` : ''}`);
  }
  return c;
}

/** Levenshtein distance, for "did you mean" hints on misspelt column names. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** Class names of a label column, sorted (numerically for numeric labels). */
function classesOf(col: Column): string[] {
  const present = col.values.filter((v): v is number | string => v !== null);
  if (col.kind === 'numeric') return [...new Set(present as number[])].sort((a, b) => a - b).map(String);
  return [...new Set(present as string[])].sort();
}

/** Encode a parsed table as a SampleSet: `inputs.features` [F] and, with a label, `targets.label` [] (class index). */
export function tableToSamples(table: Table, opts: TabularOptions = {}): TabularSamples {
  const ignore = new Set(opts.ignore ?? []);
  for (const name of ignore) columnNamed(table, name, 'ignored');
  const labelCol = opts.label !== undefined ? columnNamed(table, opts.label, 'label') : undefined;
  const surv = opts.survival ? { time: columnNamed(table, opts.survival.time, 'time'), event: columnNamed(table, opts.survival.event, 'event') } : undefined;
  const dropped: string[] = [];
  const identifiers: string[] = [];
  const candidates = opts.features
    ? opts.features.map((f) => columnNamed(table, f, 'feature'))
    : table.columns.filter((c) => c !== labelCol && c !== surv?.time && c !== surv?.event && !ignore.has(c.name)
      && !(isIdentifierColumn(c.name) && dropped.push(c.name) && identifiers.push(c.name)));
  const maxCat = opts.maxCategories ?? 32;
  const used: Encoding['columns'][number][] = [];
  for (const c of candidates) {
    if (c.kind === 'numeric') { used.push({ name: c.name, kind: 'numeric' }); continue; }
    const categories = [...new Set(c.values.filter((v): v is string => v !== null))].sort();
    if (categories.length > maxCat) {
      const idLike = categories.length === table.rows - c.missing;
      if (idLike) identifiers.push(c.name);
      else log.warn({ file: table.file, column: c.name, categories: categories.length }, 'dropping a text column with too many distinct values');
      dropped.push(c.name);
      continue;
    }
    used.push({ name: c.name, kind: 'categorical', categories });
  }
  if (used.length === 0) throw new CohortError('NO_FEATURES', `${table.file} has no feature columns left`, 'the table needs at least one column besides the label and identifiers');
  const r = encodeRows(table, { columns: used }, labelCol, dropped, opts.minClasses ?? 2, opts.classNames, surv);
  return { ...r, identifiers };
}

const EVENT_WORDS: Readonly<Record<string, number>> = { '1': 1, '0': 0, true: 1, false: 0, yes: 1, no: 0, dead: 1, alive: 0, deceased: 1, event: 1, censored: 0 };

/** Survival targets of the rows kept: numeric times, events as 1/0 (checked). */
function survivalValues(table: Table, surv: { time: Column; event: Column }, rows: readonly number[]): Record<string, SampleTensor> {
  if (surv.time.kind !== 'numeric') {
    throw new CohortError('BAD_SURVIVAL_COLUMN', `${table.file}: time column '${surv.time.name}' is not numeric`, 'the time column holds the follow-up time as a number (e.g. days)');
  }
  const event = rows.map((r) => {
    const v = surv.event.values[r];
    const e = EVENT_WORDS[String(v).trim().toLowerCase()];
    if (e === undefined) {
      throw new CohortError('BAD_SURVIVAL_COLUMN', `${table.file}: event column '${surv.event.name}' holds '${String(v)}' (row ${r + 2})`,
        'the event column holds 1 (event observed) or 0 (censored); true/false, yes/no and dead/alive are read too');
    }
    return e;
  });
  if (!event.includes(1)) {
    throw new CohortError('NO_EVENTS', `${table.file}: event column '${surv.event.name}' has no observed event`, 'survival models need some events (1) besides censored rows (0)');
  }
  return {
    time: { shape: [], data: Float32Array.from(rows, (r) => surv.time.values[r] as number) },
    event: { shape: [], data: Float32Array.from(event) },
  };
}

/** Apply a fitted encoding to a table (also used to encode a second file with the categories fitted on the first). */
export function encodeRows(table: Table, encoding: Encoding, labelCol: Column | undefined, dropped: string[] = [], minClasses = 2,
  fixedClasses?: readonly string[], survival?: { time: Column; event: Column }): TabularSamples {
  const classNames = labelCol ? (fixedClasses ? [...fixedClasses] : classesOf(labelCol)) : [];
  if (labelCol && fixedClasses) {
    const unknown = classesOf(labelCol).find((c) => !fixedClasses.includes(c));
    if (unknown !== undefined) {
      throw new CohortError('UNKNOWN_CLASS', `${table.file}: label '${unknown}' in column '${labelCol.name}' is not one of the classes ${fixedClasses.join(', ')}`,
        'fix the label value, or add the class to the scenario\'s class list');
    }
  }
  if (labelCol && classNames.length < Math.max(1, minClasses)) {
    throw new CohortError('ONE_CLASS', `${table.file}: label column '${labelCol.name}' has ${classNames.length} distinct value(s)`, 'classification needs at least two classes');
  }
  const rows = [...Array(table.rows).keys()].filter((r) => (!labelCol || labelCol.values[r] !== null)
    && (!survival || (survival.time.values[r] !== null && survival.event.values[r] !== null)));
  const featureNames = encoding.columns.flatMap((c) => (c.kind === 'numeric' ? [c.name] : (c.categories ?? []).map((k) => `${c.name}=${k}`)));
  const F = featureNames.length;
  const features = new Float32Array(rows.length * F);
  let offset = 0;
  for (const enc of encoding.columns) {
    const col = columnNamed(table, enc.name, 'feature');
    rows.forEach((r, i) => writeCell(features, i * F + offset, col.values[r], enc));
    offset += enc.kind === 'numeric' ? 1 : (enc.categories ?? []).length;
  }
  const targets: Record<string, SampleTensor> = {};
  if (labelCol) {
    const index = new Map(classNames.map((n, i) => [n, i]));
    targets.label = { shape: [], data: Float32Array.from(rows, (r) => index.get(String(labelCol.values[r])) ?? Number.NaN) };
  }
  if (survival) Object.assign(targets, survivalValues(table, survival, rows));
  return {
    set: { size: rows.length, inputs: { features: { shape: [F], data: features } }, targets },
    classes: classNames.length, classNames, featureNames, encoding, dropped, identifiers: dropped.filter(isIdentifierColumn),
    droppedRows: table.rows - rows.length, rowIndex: rows,
  };
}

function writeCell(out: Float32Array, at: number, v: Cell, enc: Encoding['columns'][number]): void {
  if (enc.kind === 'numeric') { out[at] = typeof v === 'number' ? v : Number.NaN; return; }
  const k = v === null ? -1 : (enc.categories ?? []).indexOf(String(v));
  if (k >= 0) out[at + k] = 1; // unseen or missing category: all zeros
}

/** One column as class indices (sorted class names; missing -> NaN). */
export function encodeLabel(table: Table, name: string): { labels: Float32Array; classNames: string[] } {
  const col = columnNamed(table, name, 'label');
  const classNames = classesOf(col);
  const index = new Map(classNames.map((n, i) => [n, i]));
  return { labels: Float32Array.from(col.values, (v) => (v === null ? Number.NaN : index.get(String(v)) ?? Number.NaN)), classNames };
}

/** Read a CSV/TSV file into a SampleSet in one call. */
export function readTabular(file: string, opts: TabularOptions = {}): TabularSamples {
  return tableToSamples(readTable(file), opts);
}

/** Seeded stratified split: the same fraction of each class (label = class index) held out; indices shuffled. */
export function stratifiedSplit(labels: Float32Array, testFraction: number, seed: number): { train: number[]; test: number[] } {
  if (!(testFraction >= 0 && testFraction < 1)) {
    throw new CohortError('BAD_SPLIT', `test fraction ${testFraction} is outside [0, 1)`, 'use e.g. 0.2 for a 20% held-out part');
  }
  const rng = new Rng(seed);
  const byClass = new Map<number, number[]>();
  labels.forEach((c, i) => { const l = byClass.get(c); if (l) l.push(i); else byClass.set(c, [i]); });
  const train: number[] = [];
  const test: number[] = [];
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = rng.shuffle([...(byClass.get(c) as number[])]);
    const k = Math.round(idx.length * testFraction);
    test.push(...idx.slice(0, k));
    train.push(...idx.slice(k));
  }
  return { train: rng.shuffle(train), test: rng.shuffle(test) };
}

export interface Standardiser { readonly mean: Float32Array; readonly std: Float32Array }

/** Per-feature mean and standard deviation over the samples of one input (NaN ignored; a constant feature gets std 1). */
export function fitStandardiser(t: SampleTensor, size: number): Standardiser {
  const d = perSample(t);
  const sum = new Float64Array(d), sq = new Float64Array(d), n = new Float64Array(d);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < d; j++) {
      const v = t.data[i * d + j];
      if (Number.isNaN(v)) continue;
      sum[j] += v; sq[j] += v * v; n[j]++;
    }
  }
  const mean = new Float32Array(d), std = new Float32Array(d);
  for (let j = 0; j < d; j++) {
    const m = n[j] ? sum[j] / n[j] : 0;
    const v = n[j] > 1 ? (sq[j] - n[j] * m * m) / (n[j] - 1) : 0;
    mean[j] = m;
    std[j] = v > 1e-12 ? Math.sqrt(v) : 1;
  }
  return { mean, std };
}

/** z-scores with a fitted standardiser; missing values (NaN) become 0, i.e. the training mean (mean imputation). */
export function applyStandardiser(t: SampleTensor, s: Standardiser): SampleTensor {
  const d = s.mean.length;
  if (perSample(t) !== d) throw new CohortError('STANDARDISER_SHAPE', `the standardiser has ${d} features, the input has ${perSample(t)}`, 'fit it on the same input');
  const data = new Float32Array(t.data.length);
  for (let i = 0; i < data.length; i++) {
    const v = (t.data[i] - s.mean[i % d]) / s.std[i % d];
    data[i] = Number.isNaN(v) ? 0 : v;
  }
  return { shape: t.shape, data };
}

/** Replace one input of a set with its standardised version. */
export function standardiseSet(set: SampleSet, s: Standardiser, input = 'features'): SampleSet {
  const t = set.inputs[input];
  if (!t) throw new CohortError('MISSING_INPUT', `the sample set has no input '${input}'`, `inputs: ${Object.keys(set.inputs).join(', ')}`);
  return { ...set, inputs: { ...set.inputs, [input]: applyStandardiser(t, s) } };
}

/**
 * A regression table: features as tableToSamples encodes them (the target column left out of them), targets.label = the
 * target's raw numeric value (not a class index). Rows with a missing target are dropped (counted in droppedRows).
 */
export function tableToRegression(table: Table, opts: Omit<TabularOptions, 'label' | 'classNames' | 'minClasses' | 'survival'> & { target: string }): TabularSamples {
  const target = columnNamed(table, opts.target, 'target');
  if (target.kind !== 'numeric') {
    throw new CohortError('TARGET_NOT_NUMERIC', `${table.file}: regression target '${target.name}' holds text`,
      'regression predicts a number: pick a numeric column, or use --label for classes');
  }
  const { target: _t, ...rest } = opts;
  const all = tableToSamples(table, { ...rest, ignore: [...(opts.ignore ?? []), target.name], minClasses: 0 });
  const keep = all.rowIndex.map((r, i) => [r, i] as const).filter(([r]) => target.values[r] !== null);
  const x = all.set.inputs.features;
  const F = all.featureNames.length;
  const features = new Float32Array(keep.length * F);
  keep.forEach(([, i], k) => features.set(x.data.subarray(i * F, (i + 1) * F), k * F));
  const label = Float32Array.from(keep, ([r]) => target.values[r] as number);
  return {
    ...all, dropped: all.dropped.filter((d) => d !== target.name),
    set: { size: keep.length, inputs: { features: { shape: [F], data: features } }, targets: { label: { shape: [], data: label } } },
    droppedRows: table.rows - keep.length, rowIndex: keep.map(([r]) => r),
  };
}
