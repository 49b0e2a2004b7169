import { describe, expect, it } from 'vitest';
import { readTabular, readTable, stratifiedSplit, fitStandardiser, applyStandardiser, parseDelimited } from '../../src/data/index.ts';
import { CohortError } from '../../src/util/errors.ts';

const F = 'test/fixtures/data';

describe('tabular reader', () => {
  it('reads WDBC: drops id, 30 features, 2 classes in sorted order', () => {
    const t = readTabular('data/wdbc.csv', { label: 'diagnosis' });
    expect(t.set.size).toBe(569);
    expect(t.featureNames.length).toBe(30);
    expect(t.dropped).toEqual(['id']);
    expect(t.classNames).toEqual(['benign', 'malignant']);
    const lab = t.set.targets.label.data;
    expect(lab.filter((v) => v === 1).length).toBe(212);
    expect(t.set.inputs.features.data[0]).toBeCloseTo(17.99, 4); // first row radius_mean
  });

  it('types TSV columns, one-hot encodes categories, keeps missing numerics as NaN and drops unlabelled rows', () => {
    const tab = readTable(`${F}/clinical.tsv`);
    expect(tab.columns.map((c) => c.kind)).toEqual(['numeric', 'numeric', 'categorical', 'categorical', 'categorical']);
    const t = readTabular(`${F}/clinical.tsv`, { label: 'outcome' });
    expect(t.droppedRows).toBe(1);
    expect(t.featureNames).toEqual(['age', 'sex=F', 'sex=M', 'stage=I', 'stage=II', 'stage=III']);
    expect(t.classNames).toEqual(['alive', 'dead']);
    const x = t.set.inputs.features.data;
    expect(Array.from(x.subarray(0, 6))).toEqual([61, 0, 1, 0, 1, 0]);
    expect(Number.isNaN(x[6])).toBe(true);
    expect(Array.from(x.subarray(12 + 3, 12 + 6))).toEqual([0, 0, 0]); // NA stage -> all zeros
    expect(Array.from(t.set.targets.label.data)).toEqual([1, 0, 0, 1]);
  });

  it('handles quotes with delimiters and doubled quotes', () => {
    expect(parseDelimited('a,"b,c","d ""e"""\n1,2,3\n', ',')).toEqual([['a', 'b,c', 'd "e"'], ['1', '2', '3']]);
    const t = readTabular(`${F}/tricky.csv`, { label: 'label', ignore: ['comment'] });
    expect(t.featureNames).toEqual(['score']);
    expect(Number.isNaN(t.set.inputs.features.data[2])).toBe(true);
  });

  it('names the file and the column when the label column does not exist', () => {
    let err: unknown;
    try { readTabular('data/wdbc.csv', { label: 'diagnosys' }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(CohortError);
    expect((err as CohortError).message).toContain('data/wdbc.csv');
    expect((err as CohortError).message).toContain("'diagnosys'");
    expect((err as CohortError).hint).toContain('diagnosis');
  });

  it('rejects ragged rows and missing files with the file name', () => {
    expect(() => readTabular(`${F}/nope.csv`)).toThrow(/nope\.csv/);
    expect(() => parseDelimited('a,"b\n', ',')).toThrow(/quoted/);
  });

  it('keeps federation-wide class indices with a fixed class list (label skew)', () => {
    const t = readTabular(`${F}/clinical.tsv`, { label: 'outcome', classNames: ['dead', 'alive', 'unknown'] });
    expect(t.classNames).toEqual(['dead', 'alive', 'unknown']);
    expect(Array.from(t.set.targets.label.data)).toEqual([0, 1, 1, 0]);
    expect(() => readTabular(`${F}/clinical.tsv`, { label: 'outcome', classNames: ['dead'] })).toThrow(/'alive'.*clinical\.tsv|clinical\.tsv.*'alive'/);
  });

  it('splits stratified and reproducibly by seed; standardiser fitted on the training part', () => {
    const t = readTabular('data/wdbc.csv', { label: 'diagnosis' });
    const lab = t.set.targets.label.data;
    const a = stratifiedSplit(lab, 0.2, 7), b = stratifiedSplit(lab, 0.2, 7), c = stratifiedSplit(lab, 0.2, 8);
    expect(a).toEqual(b);
    expect(a.test).not.toEqual(c.test);
    expect(a.test.length + a.train.length).toBe(569);
    expect(a.test.filter((i) => lab[i] === 1).length).toBe(Math.round(212 * 0.2));
    const x = t.set.inputs.features;
    const trainX = { shape: x.shape, data: new Float32Array(a.train.flatMap((i) => Array.from(x.data.subarray(i * 30, i * 30 + 30)))) };
    const s = fitStandardiser(trainX, a.train.length);
    const z = applyStandardiser(trainX, s);
    let mean = 0;
    for (let i = 0; i < a.train.length; i++) mean += z.data[i * 30];
    expect(Math.abs(mean / a.train.length)).toBeLessThan(1e-4);
  });
});
