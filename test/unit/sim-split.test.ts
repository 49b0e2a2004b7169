// Natural splits: one part per site value, a fixed train/test column or a per-site held-out share; survival columns from a CSV;
// site and split columns are not features; the manifest's survival task and data.split shape.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTabular } from '../../src/data/tabular.ts';
import { loadSimData } from '../../src/sim/datasets.ts';
import { siteSplit } from '../../src/sim/partition.ts';
import { parseManifest } from '../../src/scenario/manifest.ts';

describe('siteSplit', () => {
  const sites = ['b', 'a', 'b', 'c', 'a', 'b', 'c', 'b', 'a', 'c'];
  const strata = [1, 0, 0, 1, 1, 0, 0, 1, 0, 1];

  it('a fixed train column: each site keeps its marked rows; sites ordered by training size (ties by name)', () => {
    const inTrain = [true, true, false, true, true, true, true, true, false, false];
    const s = siteSplit(sites, strata, { inTrain, holdout: 0.5, seed: 1 });
    expect(s.names).toEqual(['b', 'a', 'c']);
    expect(s.train).toEqual([[0, 5, 7], [1, 4], [3, 6]]);
    expect(s.test).toEqual([[2], [8], [9]]);
  });

  it('without a train column each site holds out its share, stratified; every sample lands in exactly one part', () => {
    const s = siteSplit(sites, strata, { holdout: 0.3, seed: 3 });
    const all = [...s.train.flat(), ...s.test.flat()].sort((a, b) => a - b);
    expect(all).toEqual(sites.map((_, i) => i));
    s.names.forEach((name, k) => {
      for (const i of [...s.train[k]!, ...s.test[k]!]) expect(sites[i]).toBe(name);
      // one of each stratum held out where a site has both (b: two 1s, two 0s -> one of each)
      if (name === 'b') expect(s.test[k]!.map((i) => strata[i]).sort()).toEqual([0, 1]);
    });
    expect(siteSplit(sites, strata, { holdout: 0.3, seed: 3 })).toEqual(s);
  });

  it('refuses one site, and a site without 2 training samples', () => {
    expect(() => siteSplit(['a', 'a', 'a'], [0, 1, 0], { holdout: 0.3, seed: 1 })).toThrow(/1 distinct value/);
    expect(() => siteSplit(['a', 'a', 'b'], [0, 1, 0], { inTrain: [true, true, true], holdout: 0.3, seed: 1 })).toThrow(/site "b" has 1 training/);
  });
});

describe('survival tables and site columns', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-split-'));
  const file = join(dir, 'cohort.csv');
  writeFileSync(file, [
    'patient,age,stage,hospital,part,months,dead',
    ...Array.from({ length: 40 }, (_, i) => `P${100 + i},${40 + (i % 17)},${['I', 'II', 'III'][i % 3]},${['north', 'south', 'east'][i % 3 === 0 ? 0 : i % 2 ? 1 : 2]},${i % 5 === 0 ? 'test' : 'train'},${3 + ((i * 7) % 50)},${i % 4 === 0 ? 'yes' : 'no'}`),
  ].join('\n'));

  it('the tabular reader gives time/event targets; an identifier-like text column is dropped and named', () => {
    const t = readTabular(file, { survival: { time: 'months', event: 'dead' }, ignore: ['hospital', 'part'] });
    expect(Object.keys(t.set.targets).sort()).toEqual(['event', 'time']);
    expect(t.featureNames).toEqual(['age', 'stage=I', 'stage=II', 'stage=III']);
    expect(t.identifiers).toEqual(['patient']);
    expect(Array.from(t.set.targets.event!.data.slice(0, 5))).toEqual([1, 0, 0, 0, 1]);
    expect(t.set.targets.time!.data[1]).toBe(10);
  });

  it('loadSimData with a split carries each sample\'s site and train flag, and keeps those columns out of the features', () => {
    const d = loadSimData({ source: file }, {}, 1, { survival: { time: 'months', event: 'dead' }, split: { by: 'hospital', train: { column: 'part', value: 'train' } } });
    expect(d.featureNames).not.toContain('hospital=north');
    expect(d.featureNames.some((f) => f.startsWith('part'))).toBe(false);
    expect(d.sites!.slice(0, 4)).toEqual(['north', 'south', 'east', 'north']);
    expect(d.inTrain!.filter((v) => !v).length).toBe(8);
    expect(() => loadSimData({ source: file }, {}, 1, { survival: { time: 'months', event: 'dead' }, split: { by: 'hospitl' } }))
      .toThrow(/no ignored column 'hospitl'/);
  });

  it('a bad event column is refused with a hint', () => {
    expect(() => readTabular(file, { survival: { time: 'months', event: 'stage' } })).toThrow(/holds 'I'/);
  });
});

describe('manifest: survival task and data.split', () => {
  const base = {
    version: 1, name: 'surv', title: 'survival',
    data: { selector: { source: 'x.csv' }, split: { by: 'region', train: { column: 'split', value: 'train' } } },
    model: { type: 'mlp', hidden: [], classes: 1 }, loss: { type: 'cox' }, optimizer: { type: 'adam' },
    averaging: { algorithm: 'dpsgd' }, rounds: { max: 3 },
  };
  it('accepts a survival task with time and event, and refuses it without them or with a classification metric', () => {
    const m = parseManifest({ ...base, task: { kind: 'survival', metric: 'c_index', time: 't', event: 'e' } });
    expect(m.data.split).toEqual({ by: 'region', train: { column: 'split', value: 'train' } });
    expect(() => parseManifest({ ...base, task: { kind: 'survival', metric: 'c_index' } })).toThrow(/task.time, task.event/);
    expect(() => parseManifest({ ...base, task: { kind: 'survival', metric: 'accuracy', time: 't', event: 'e' } })).toThrow(/does not fit a survival task/);
    expect(() => parseManifest({ ...base, task: { kind: 'classification', metric: 'c_index' } })).toThrow(/does not fit/);
  });
  it('scenarios/tcga-brca.json parses', async () => {
    const { loadManifest } = await import('../../src/scenario/manifest.ts');
    const m = loadManifest('scenarios/tcga-brca.json');
    expect(m.task).toMatchObject({ kind: 'survival', metric: 'c_index', time: 'time_days', event: 'event' });
  });
});
