// The scenario manifest (v1): every shipped scenario parses; bad manifests fail with the path of what is wrong; the plot helper.
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadManifest, parseManifest } from '../../src/scenario/manifest.ts';
import { linePlot, niceTicks } from '../../src/util/plot.ts';
import { CohortError } from '../../src/util/errors.ts';

const wdbc = () => JSON.parse(JSON.stringify(loadManifest('scenarios/wdbc-radiomics.json'))) as Record<string, unknown>;

describe('scenario manifest', () => {
  it('every scenarios/*.json is a valid manifest, one per algorithm family', () => {
    const files = readdirSync('scenarios').filter((f) => f.endsWith('.json'));
    const algorithms = new Set<string>();
    for (const f of files) algorithms.add(loadManifest(`scenarios/${f}`).averaging.algorithm);
    for (const a of ['dpsgd', 'pushsum', 'epidemic', 'gossip', 'choco']) expect(algorithms.has(a)).toBe(true);
  });

  it('fills defaults', () => {
    const m = parseManifest({
      version: 1, name: 'x', title: 'x', task: { kind: 'classification', metric: 'accuracy' }, data: { selector: { dataset: 'wdbc' } },
      model: { type: 'mlp', classes: 2 }, optimizer: { type: 'sgd' }, averaging: { algorithm: 'gossip' }, rounds: { max: 5 },
    });
    expect(m.compression.codec).toBe('f32');
    expect(m.training.localEpochs).toBe(1);
    expect(m.simulation.partition).toEqual({ kind: 'dirichlet', alpha: 0.5 });
    expect(m.averaging.topology).toEqual({ kind: 'random-regular', degree: 4 });
  });

  it('names what is wrong', () => {
    const bad = wdbc();
    (bad['averaging'] as Record<string, unknown>)['algorithm'] = 'telepathy';
    (bad['rounds'] as Record<string, unknown>)['max'] = -1;
    try {
      parseManifest(bad, 'x.json');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(CohortError);
      expect((e as CohortError).code).toBe('BAD_MANIFEST');
      expect((e as Error).message).toMatch(/averaging\.algorithm/);
      expect((e as Error).message).toMatch(/rounds\.max/);
    }
    expect(() => parseManifest({ ...wdbc(), version: 2 })).toThrow(/version 2 is not supported/);
    expect(() => parseManifest({ ...wdbc(), compression: { codec: 'topk' } })).toThrow(/top-k compression needs/);
    expect(() => parseManifest({ ...wdbc(), surprise: 1 })).toThrow(/surprise|Unrecognized/);
    expect(() => loadManifest('scenarios/none.json')).toThrow(/cannot read/);
  });
});

describe('SVG line plot', () => {
  it('draws each series with a legend and readable ticks', () => {
    const svg = linePlot({ title: 'acc <vs> round', xLabel: 'round', yLabel: 'accuracy', series: [
      { name: 'dpsgd', points: [[1, 0.5], [2, 0.7], [3, Number.NaN], [4, 0.9]] },
      { name: 'centralised', points: [[1, 0.8], [4, 0.95]], dashed: true },
    ] });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<polyline/g)!.length).toBe(2);
    expect(svg).toContain('acc &lt;vs&gt; round');
    expect(svg).toContain('stroke-dasharray');
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
  });
});
