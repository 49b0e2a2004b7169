/**
 * The table audit (src/data/table-audit.ts) on real files: test/fixtures/data/wdbc-leaky.csv is WDBC (data/wdbc.csv, 569 patients)
 * reduced to 7 features, with a `pid` column (P0000...), `enrolment` (a shuffled distinct integer per row, a neutral name),
 * `review_score` (= 1 for malignant, 0 for benign, plus Gaussian noise of sd 0.12: a column that leaks the label) and 9 empty
 * smoothness_mean cells.
 */
import { describe, expect, it } from 'vitest';
import { readTable, type Column, type Table } from '../../src/data/tabular.ts';
import { auditTable, checkClassLabel, idLikeColumns, isIdLikeName, leakageWarnings, missingCounts } from '../../src/data/table-audit.ts';
import { CohortError } from '../../src/util/errors.ts';

const LEAKY = 'test/fixtures/data/wdbc-leaky.csv';

function numericTable(name: string, values: number[]): Table {
  const col: Column = { name, kind: 'numeric', values, missing: 0 };
  const y: Column = { name: 'y', kind: 'categorical', values: values.map((_, i) => (i % 2 ? 'a' : 'b')), missing: 0 };
  return { file: 'mem.csv', columns: [col, y], rows: values.length };
}

function refusal(f: () => unknown): CohortError {
  try { f(); } catch (e) { if (e instanceof CohortError) return e; throw e; }
  throw new Error('expected a CohortError');
}

describe('table audit', () => {
  it('names identifier columns by name and by distinct-per-row content, not measured quantities', () => {
    for (const n of ['id', 'PID', 'patient_id', 'Subject', 'subject-id', 'mrn', 'record_no', 'sample_id', 'uuid']) expect(isIdLikeName(n)).toBe(true);
    for (const n of ['idea', 'acid', 'valid', 'age', 'diagnosis', 'radius_mean']) expect(isIdLikeName(n)).toBe(false);
    const t = readTable(LEAKY);
    expect(idLikeColumns(t, new Set(['diagnosis']))).toEqual([{ name: 'pid', reason: 'name' }, { name: 'enrolment', reason: 'unique' }]);
    // fractional values all distinct are a measurement, not an identifier
    expect(idLikeColumns(numericTable('x', Array.from({ length: 30 }, (_, i) => i + 0.5)), new Set(['y']))).toEqual([]);
    // distinct integers in a handful of rows prove nothing
    expect(idLikeColumns(numericTable('x', [5, 3, 9, 1]), new Set(['y']))).toEqual([]);
    expect(idLikeColumns(numericTable('x', Array.from({ length: 30 }, (_, i) => 1000 - i)), new Set(['y']))).toEqual([{ name: 'x', reason: 'unique' }]);
  });

  it('refuses a continuous or many-valued label as classes, with a hint towards regression or survival', () => {
    const t = readTable(LEAKY);
    expect(() => checkClassLabel(t, 'diagnosis')).not.toThrow();
    const e = refusal(() => checkClassLabel(t, 'radius_mean'));
    expect(e.code).toBe('LABEL_NOT_CLASSES');
    expect(e.message).toMatch(/label column 'radius_mean' has \d+ distinct values \(a continuous column\)/);
    expect(e.hint).toMatch(/--task regression --label radius_mean/);
    expect(e.hint).toMatch(/--time radius_mean --event/);
    const many = refusal(() => checkClassLabel(numericTable('grade', Array.from({ length: 40 }, (_, i) => i % 25)), 'grade'));
    expect(many.message).toMatch(/25 distinct values \(more than 20 classes\)/);
    expect(() => checkClassLabel(numericTable('grade', Array.from({ length: 40 }, (_, i) => i % 5)), 'grade')).not.toThrow();
  });

  it('counts missing cells per column (among the rows used)', () => {
    const t = readTable(LEAKY);
    expect(missingCounts(t, ['radius_mean', 'smoothness_mean'])).toEqual({ smoothness_mean: 9 });
    expect(missingCounts(t, ['smoothness_mean'], [0, 1, 2])).toEqual({});
  });

  it('classification: drops pid and enrolment, names the leaking column, and --ignore removes it', () => {
    const t = readTable(LEAKY);
    const a = auditTable(t, { label: 'diagnosis', task: 'classification', testFraction: 0.2, seed: 1 });
    expect(a.identifiers.map((c) => c.name)).toEqual(['pid', 'enrolment']);
    expect(a.features).toEqual(['radius_mean', 'texture_mean', 'perimeter_mean', 'area_mean', 'smoothness_mean', 'concavity_mean', 'symmetry_mean', 'review_score']);
    expect(a.imputed).toEqual({ smoothness_mean: 9 });
    expect(a.warnings.map((w) => w.column)).toEqual(['review_score']);
    expect(a.warnings[0]!.statistic).toBe('auc');
    expect(a.warnings[0]!.value).toBeGreaterThanOrEqual(0.98);
    expect(a.split.train.length + a.split.test.length).toBe(569);
    expect(a.notes.join('\n')).toMatch(/dropped identifier-like column\(s\): pid, enrolment \(by name: pid; a distinct value in every row: enrolment\)/);
    expect(a.notes.join('\n')).toMatch(/warning: column 'review_score' alone predicts the label/);
    const b = auditTable(t, { label: 'diagnosis', task: 'classification', ignore: ['review_score'], testFraction: 0.2, seed: 1 });
    expect(b.features).not.toContain('review_score');
    expect(b.warnings).toEqual([]);
    expect(b.ignored).toEqual(['review_score']);
    expect(refusal(() => auditTable(t, { label: 'diagnosis', task: 'classification', ignore: ['nope'], testFraction: 0.2, seed: 1 })).code).toBe('MISSING_COLUMN');
    expect(refusal(() => auditTable(t, { label: 'diagnosis', task: 'classification', ignore: ['diagnosis'], testFraction: 0.2, seed: 1 })).code).toBe('BAD_ARGUMENT');
  });

  it('leakage is judged on the training rows only and per source column (one-hot parts together)', () => {
    // a column that copies the label on the first half of the rows only: judged on those rows it leaks, on the rest it does not
    const n = 200;
    const label = Float32Array.from({ length: n }, (_, i) => i % 2);
    const copy = Float32Array.from({ length: n }, (_, i) => (i < n / 2 ? i % 2 : (i * 7919) % 13));
    const set = { size: n, inputs: { features: { shape: [1], data: copy } }, targets: { label: { shape: [], data: label } } };
    const first = Array.from({ length: n / 2 }, (_, i) => i);
    const second = first.map((i) => i + n / 2);
    expect(leakageWarnings(set, ['copy'], 'classification', first).map((w) => w.column)).toEqual(['copy']);
    expect(leakageWarnings(set, ['copy'], 'classification', second)).toEqual([]);
    // one-hot encoded: site=A / site=B name the source column once
    const onehot = new Float32Array(n * 2);
    label.forEach((y, i) => { onehot[i * 2 + (y === 1 ? 0 : 1)] = 1; });
    const set2 = { size: n, inputs: { features: { shape: [2], data: onehot } }, targets: { label: { shape: [], data: label } } };
    expect(leakageWarnings(set2, ['site=A', 'site=B'], 'classification', first).map((w) => w.column)).toEqual(['site']);
    // three classes: a few-valued code that decides the class (purity 1) is named; a weak one is not
    const y3 = Float32Array.from({ length: n }, (_, i) => i % 3);
    const code = Float32Array.from(y3, (c) => 10 + 5 * c);
    const weak = Float32Array.from({ length: n }, (_, i) => (i * 7) % 4);
    const both = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) { both[2 * i] = code[i]!; both[2 * i + 1] = weak[i]!; }
    const set3 = { size: n, inputs: { features: { shape: [2], data: both } }, targets: { label: { shape: [], data: y3 } } };
    const all = Array.from({ length: n }, (_, i) => i);
    expect(leakageWarnings(set3, ['code', 'weak'], 'classification', all).map((w) => [w.column, w.statistic, w.value])).toEqual([['code', 'purity', 1]]);
  });

  it('regression: the target is a number, rows without it are left out, a near-copy is named', () => {
    const t = readTable(LEAKY);
    const a = auditTable(t, { label: 'smoothness_mean', task: 'regression', testFraction: 0.2, seed: 1 });
    expect(a.samples.set.size).toBe(560);
    expect(a.samples.droppedRows).toBe(9);
    expect(a.features).not.toContain('smoothness_mean');
    expect(a.features).toContain('diagnosis');
    const target = a.samples.set.targets['label']!.data;
    expect(target[0]).toBeCloseTo(0.1184, 6);
    const r = auditTable(t, { label: 'radius_mean', task: 'regression', testFraction: 0.2, seed: 1 });
    expect(r.warnings.map((w) => w.column)).toContain('perimeter_mean'); // perimeter ~ 2 pi radius: |r| near 1
    expect(r.warnings.every((w) => w.statistic === 'abs_r')).toBe(true);
    expect(refusal(() => auditTable(t, { label: 'diagnosis', task: 'regression', testFraction: 0.2, seed: 1 })).code).toBe('TARGET_NOT_NUMERIC');
  });
});
