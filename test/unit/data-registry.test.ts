import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/db.ts';
import { DatasetRegistry } from '../../src/store/datasets.ts';
import { catalogueEntry } from '../../src/data/catalogue.ts';
import { describeDataset } from '../../src/data/register.ts';
import { writeSynthSite } from '../../src/data/synth.ts';
import { CohortError } from '../../src/util/errors.ts';

const run = promisify(execFile);
const cli = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'data', ...args],
  { env: { ...process.env, COHORT_LOG_LEVEL: 'warn' } });

const tmp = mkdtempSync(join(tmpdir(), 'cohort-reg-'));
const site = join(tmp, 'site3');
let store: Store;

beforeAll(async () => {
  writeSynthSite(site, { site: 3, cases: 12, twoD: true });
  store = await openStore(join(tmp, 'peer'), { create: true });
});
afterAll(async () => { await store.close(); });

describe('dataset registry (real LevelDB)', () => {
  it('adds, lists, gets, refuses duplicates, replaces and removes', async () => {
    const reg = new DatasetRegistry(store.datasets);
    const wdbc = describeDataset('data/wdbc.csv', { label: 'diagnosis', tags: ['breast'] });
    expect(wdbc).toMatchObject({ id: 'wdbc', kind: 'tabular', samples: 569, labelBalance: { benign: 357, malignant: 212 } });
    await reg.add(wdbc);
    const folder = describeDataset(site, { id: 'site3', label: 'outcome' });
    expect(folder).toMatchObject({ kind: 'folder', modalities: ['CT', 'PT'], samples: 12 });
    expect(folder.details).toMatchObject({ subjects: 12, withMasks: 12 });
    await reg.add(folder);
    expect((await reg.list()).map((d) => d.id)).toEqual(['site3', 'wdbc']);
    await expect(reg.add(wdbc)).rejects.toThrow(/already registered/);
    await reg.add({ ...wdbc, tags: ['x'] }, { replace: true });
    expect((await reg.get('wdbc'))?.tags).toEqual(['x']);
    await reg.remove('wdbc');
    expect(await reg.get('wdbc')).toBeUndefined();
    const e = await reg.require('nope').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CohortError);
    expect((e as CohortError).hint).toContain('site3');
  });

  it('checks masks against their image at registration', () => {
    const G = 'test/fixtures/data/generated';
    const rec = describeDataset(`${G}/ct-series`, { id: 'ct', masks: [`${G}/seg.dcm`, `${G}/mask.nii.gz`] });
    expect(rec).toMatchObject({ kind: 'dicom', modalities: ['CT'], samples: 1 });
    expect(() => describeDataset(`${G}/ct-las.nii.gz`, { masks: ['test/fixtures/data/ibsi-digital-phantom/mask.nii.gz'] })).toThrow(/ibsi-digital-phantom\/mask\.nii\.gz.*(does not match|does not lie on)/);
  });

  it('the content hash changes when the data changes', () => {
    const a = describeDataset('data/wdbc.csv'), b = describeDataset('test/fixtures/data/clinical.tsv');
    expect(a.contentHash).toMatch(/^[0-9a-f]{64}$/);
    expect(a.contentHash).toBe(describeDataset('data/wdbc.csv').contentHash);
    expect(a.contentHash).not.toBe(b.contentHash);
  });
});

describe('catalogue entries (what peers may learn)', () => {
  it('hold counts, modalities and label balance only; small counts suppressed', () => {
    const rec = describeDataset(site, { id: 'site3', label: 'outcome' });
    const entry = catalogueEntry(rec);
    const text = JSON.stringify(entry);
    expect(text).not.toContain(tmp);
    expect(text).not.toContain(rec.contentHash);
    expect(text).not.toMatch(/s3-00/); // no subject ids
    expect(Object.keys(entry).sort()).toEqual(['id', 'kind', 'labelBalance', 'modalities', 'samples', 'tags']);
    expect(entry.samples).toBe(10); // 12 rounded down to a multiple of 5
    for (const v of Object.values(entry.labelBalance ?? {})) expect(typeof v === 'string' ? v : v >= 10).toBeTruthy();
    expect(Object.values(entry.labelBalance ?? {})).toContain('<10');
    const tiny = catalogueEntry({ ...rec, samples: 4 });
    expect(tiny.samples).toBe('<10');
  });
});

describe('cohort data CLI', () => {
  it('synth, add, list --catalogue, inspect FILE, radiomics --json', async () => {
    const out = join(tmp, 'cli-site');
    const s = JSON.parse((await cli(['synth', '--site', '1', '--cases', '2', '--out', out, '--fov', '48,48,32', '--json'])).stdout);
    expect(s.subjects).toBe(2);
    const peer = join(tmp, 'cli-peer');
    const added = JSON.parse((await cli(['add', out, '--id', 'synth1', '--store', peer, '--json'])).stdout);
    expect(added).toMatchObject({ id: 'synth1', kind: 'folder', samples: 2 });
    const cat = JSON.parse((await cli(['list', '--catalogue', '--store', peer, '--json'])).stdout);
    expect(cat).toEqual([{ id: 'synth1', kind: 'folder', modalities: ['CT', 'PT'], samples: '<10', tags: [] }]);
    const info = JSON.parse((await cli(['inspect', join(out, 's1-0000', 'PT', 'pet.nii.gz'), '--json'])).stdout);
    expect(info).toMatchObject({ format: 'nifti', dims: [19, 19, 16], spacing: [2.5, 2.5, 2], orientation: 'RAS' });
    const f = JSON.parse((await cli(['radiomics', '--image', join(out, 's1-0000', 'PT', 'pet.nii.gz'), '--mask', join(out, 's1-0000', 'SEG', 'mask.nii.gz'), '--json'])).stdout);
    expect(f.morph_volume).toBeGreaterThan(0);
    expect(Object.keys(f).length).toBe(56);
  });
});
