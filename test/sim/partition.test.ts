// Partitioners: IID, Dirichlet label skew, quantity skew, feature shift; every peer can train; deterministic.
import { describe, expect, it } from 'vitest';
import { partitionIndices, partitionSamples, stratifiedSplit } from '../../src/sim/partition.ts';
import { loadSimData } from '../../src/sim/datasets.ts';

const labels = Float32Array.from({ length: 600 }, (_, i) => i % 3);

/** Mean over peers of the total-variation distance between a peer's label mix and the global one. */
function skew(parts: number[][]): number {
  return parts.reduce((acc, p) => {
    const counts = [0, 0, 0];
    for (const i of p) counts[labels[i]!]!++;
    return acc + counts.reduce((s, c) => s + Math.abs(c / p.length - 1 / 3), 0) / 2;
  }, 0) / parts.length;
}

describe('partitioners', () => {
  it('cover every sample exactly once and give each peer at least two', () => {
    for (const spec of [{ kind: 'iid' }, { kind: 'dirichlet', alpha: 0.1 }, { kind: 'quantity', alpha: 0.3 }] as const) {
      const parts = partitionIndices(labels, 20, spec, 1);
      const all = parts.flat().sort((a, b) => a - b);
      expect(all).toEqual(Array.from({ length: 600 }, (_, i) => i));
      expect(Math.min(...parts.map((p) => p.length))).toBeGreaterThanOrEqual(2);
    }
  });

  it('Dirichlet skew grows as alpha shrinks; IID stays balanced; quantity skew varies sizes only', () => {
    const iid = partitionIndices(labels, 10, { kind: 'iid' }, 2);
    const mild = partitionIndices(labels, 10, { kind: 'dirichlet', alpha: 10 }, 2);
    const harsh = partitionIndices(labels, 10, { kind: 'dirichlet', alpha: 0.1 }, 2);
    expect(skew(iid)).toBeLessThan(0.05);
    expect(skew(harsh)).toBeGreaterThan(skew(mild) + 0.2);
    const q = partitionIndices(labels, 10, { kind: 'quantity', alpha: 0.5 }, 2);
    const sizes = q.map((p) => p.length);
    expect(Math.max(...sizes)).toBeGreaterThan(3 * Math.min(...sizes));
    expect(skew(q)).toBeLessThan(0.2);
    expect(partitionIndices(labels, 10, { kind: 'dirichlet', alpha: 0.1 }, 2)).toEqual(harsh);
  });

  it('feature shift gives each site its own scanner transform of the same kind of data', () => {
    const { set } = loadSimData({ source: 'data/wdbc.csv', label: 'diagnosis' }, {}, 1);
    expect(set.size).toBe(569);
    expect(set.inputs['features']!.shape).toEqual([30]);
    const sites = partitionSamples(set, 'label', 4, { kind: 'feature-shift', strength: 1 }, 3);
    const firstFeatureMean = sites.map((s) => s.inputs['features']!.data.filter((_, i) => i % 30 === 0).reduce((a, b) => a + b, 0) / s.size);
    expect(Math.max(...firstFeatureMean) - Math.min(...firstFeatureMean)).toBeGreaterThan(0.3);
    const { train, test } = stratifiedSplit(set, 'label', 0.2, 1);
    expect(train.size + test.size).toBe(569);
    expect(test.size).toBe(113); // round(0.2 * 357) + round(0.2 * 212)
  });

  it('refuses too little data for the peers', () => {
    expect(() => partitionIndices(labels.slice(0, 10), 8, { kind: 'iid' }, 1)).toThrow(/cannot give 8 peers/);
  });
});
