// The simulator's image path with a consortium intensity z-score (issue 13.1): synthetic PET/CT sites (one per scanner profile)
// agree the PT mean/sd from their training crops with the peers' functions (src/data/intensity-stats.ts), and the report names
// the one agreed standardiser by the hash a real exchange of the same statistics gives.
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { releaseSessions } from '../../src/engine/index.ts';
import { selectSamples } from '../../src/data/samples.ts';
import { agreeStandardiser, combineStats } from '../../src/data/standardiser-stats.ts';
import { consortiumChannelsOf, intensityStats } from '../../src/data/intensity-stats.ts';
import { loadSimData } from '../../src/sim/datasets.ts';
import { runScenarioSim } from '../../src/sim/run.ts';
import { parseManifest } from '../../src/scenario/manifest.ts';

afterAll(releaseSessions);

const preprocessing = {
  modalities: ['PT', 'CT'], size: [32, 32], crop: 'mask', minCount: 2,
  intensity: { PT: { method: 'zscore', scope: 'consortium' }, CT: { method: 'window', level: 40, width: 400 } },
  synthetic: { sites: 2, train: 4, test: 2, seed: 3 },
};

function manifest(extra: Record<string, unknown> = {}) {
  const base = JSON.parse(readFileSync('scenarios/petct-segmentation.json', 'utf8')) as Record<string, any>;
  return parseManifest({ ...base, data: { ...base.data, selector: { ...base.data.selector, source: 'synthetic:petct' }, preprocessing: { ...preprocessing, ...extra },
    split: { by: 'site' } }, simulation: { ...base.simulation, peers: 2 } }, 'petct-sim.json');
}

describe('simulator: consortium intensity z-score on images', () => {
  it('one standardiser from the sites\' training crops, the hash a real exchange of their statistics gives', async () => {
    const report = await runScenarioSim(manifest(), { rounds: 1, baselines: false, seed: 1 });
    const d = loadSimData({ source: 'synthetic:petct' }, preprocessing, 1);
    const cfg = consortiumChannelsOf(preprocessing)!.cfg;
    const stats = ['site-0', 'site-1'].map((s) => intensityStats(selectSamples(d.set, d.sites!.flatMap((x, i) => (x === s && d.inTrain![i] ? [i] : []))), cfg, { minCount: 2 })!);
    const expected = agreeStandardiser(combineStats(stats), { mode: 'consortium' });
    expect(report.standardiser).toEqual({ mode: 'consortium', hashes: [expected.hash], suppressed_sites: 0 });
    expect(Number.isFinite(report.final.mean)).toBe(true);
  }, 300_000);

  it('refuses standardize on top of it when the manifest is read (launch, validate, sim), naming both', () => {
    expect(() => manifest({ standardize: 'consortium' })).toThrow(/consortium z-score \(PT\).*standardize is set too/);
    expect(() => manifest({ standardize: 'site' })).toThrow(/BAD_MANIFEST|standardize/);
  });
});
