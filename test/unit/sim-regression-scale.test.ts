// `cohort sim --data --task regression` puts the target on the scale real peers agree (issue 13.1): the target's [n, sum, sumsq] of
// the sites' TRAINING parts travel with the features' as input `target`, and held-out rows never enter its mean or sd.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { releaseSessions } from '../../src/engine/index.ts';
import { siteTable, withTargetInput } from '../../src/data/site-table.ts';
import { selectSamples } from '../../src/data/samples.ts';
import { readTable } from '../../src/data/tabular.ts';
import { consortiumStandardiser } from '../../src/sim/datasets.ts';
import { runScenarioSim } from '../../src/sim/run.ts';
import { tableScenario } from '../../src/scenario/table-scenario.ts';
import type { ScenarioManifest } from '../../src/scenario/manifest.ts';

afterAll(releaseSessions);

const dir = mkdtempSync(join(tmpdir(), 'cohort-sim-regression-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Two hospitals, 20 training and 10 held-out rows each; integer values (sums exact in any order). `shift` moves held-out targets. */
function table(shift: number): string {
  const rows = ['hospital,part,x1,x2,y'];
  for (const h of ['north', 'south']) {
    for (let i = 0; i < 30; i++) {
      const x1 = (i * 7) % 10, x2 = (i * 3 + (h === 'north' ? 1 : 4)) % 6, test = i >= 20;
      rows.push(`${h},${test ? 'test' : 'train'},${x1},${x2},${2 * x1 + x2 + 50 + (test ? shift : 0)}`);
    }
  }
  const path = join(dir, `t${shift}.csv`);
  writeFileSync(path, rows.join('\n') + '\n');
  return path;
}

function manifestFor(path: string): ScenarioManifest {
  const { manifest } = tableScenario({ data: path, label: 'y', task: 'regression', siteColumn: 'hospital' });
  return { ...manifest, data: { ...manifest.data, split: { by: 'hospital', train: { column: 'part', value: 'train' } } } } as ScenarioManifest;
}

describe('simulator regression target scale', () => {
  it('the consortium standardiser carries the training parts\' target statistics, as the peers\' exchange would', async () => {
    const path = table(0);
    const report = await runScenarioSim(manifestFor(path), { rounds: 2, baselines: false, seed: 1 });
    // each hospital's training rows as its peer reads them, with the target as input `target` (src/peer/worker.ts)
    const t = readTable(path);
    const s = siteTable(t, { label: 'y', regression: true, siteColumns: ['hospital', 'part'], ignore: [] }).samples;
    const col = (name: string) => t.columns.find((c) => c.name === name)!.values;
    const parts = ['north', 'south'].map((h) => withTargetInput(selectSamples(s.set,
      s.rowIndex.flatMap((r, i) => (col('hospital')[r] === h && col('part')[r] === 'train' ? [i] : [])))));
    const expected = consortiumStandardiser(parts, { meta: { featureNames: s.featureNames } }).standardiser;
    expect(expected.inputs['target']!.mean[0]).toBeCloseTo(parts.reduce((a, p) => a + p.targets.label!.data.reduce((x, y) => x + y, 0), 0) / 40, 9);
    expect(report.standardiser?.hashes).toEqual([expected.hash]);
  }, 120_000);

  it('held-out targets do not move the scale: shifting them leaves the standardiser and the training as they were', async () => {
    const a = await runScenarioSim(manifestFor(table(0)), { rounds: 2, baselines: false, seed: 1 });
    const b = await runScenarioSim(manifestFor(table(1000)), { rounds: 2, baselines: false, seed: 1 });
    expect(b.standardiser?.hashes).toEqual(a.standardiser?.hashes);
    // the models trained on the same scaled targets (a whole-table z-score would have moved them with the held-out rows)
    expect(b.consensus_distance).toBe(a.consensus_distance);
    expect(a.consensus_distance).toBeGreaterThan(0);
  }, 120_000);
});
