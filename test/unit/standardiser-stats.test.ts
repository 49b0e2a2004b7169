/**
 * Consortium-wide standardisation (issue 13.1): the statistics combination is exact against a pooled computation, missing values
 * are counted per feature, small counts never leave a site, the hash pins the standardiser, and the simulator builds it with the
 * same functions from its sites' training parts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/scenario/manifest.ts';
import { delta, emptyView, merge } from '../../src/scenario/lifecycle.ts';
import { metricsJson, reportMarkdown, type ReportInput } from '../../src/scenario/report.ts';
import type { SampleSet } from '../../src/data/samples.ts';
import {
  agreeStandardiser, applyAgreed, combineStats, exportStandardiser, minCountOf, parseAgreed, siteStats, standardizeMode, SMALL_COUNT,
} from '../../src/data/standardiser-stats.ts';
import { consortiumStandardiser } from '../../src/sim/datasets.ts';
import { Rng } from '../../src/util/random.ts';

/** n rows of F features at a site-specific offset and scale; feature 2 missing in ~30% of rows; labels 0/1 alternate. */
function site(n: number, F: number, seed: number, offset: number, scale: number): SampleSet {
  const rng = new Rng(seed);
  const data = new Float32Array(n * F);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < F; j++) data[i * F + j] = j === 2 && rng.next() < 0.3 ? Number.NaN : offset + scale * rng.normal() + 100 * j;
  }
  return { size: n, inputs: { features: { shape: [F], data } }, targets: { label: { shape: [], data: Float32Array.from({ length: n }, (_, i) => i % 2) } } };
}

/** Mean and sample std of column j over several sets, in float64, NaN ignored: the pooled-data reference. */
function pooled(sets: SampleSet[], j: number): { mean: number; std: number; n: number } {
  const vals: number[] = [];
  for (const s of sets) {
    const F = s.inputs['features']!.shape[0]!;
    for (let i = 0; i < s.size; i++) {
      const v = s.inputs['features']!.data[i * F + j]!;
      if (!Number.isNaN(v)) vals.push(v);
    }
  }
  const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
  const variance = vals.reduce((a, v) => a + (v - mean) ** 2, 0) / (vals.length - 1);
  return { mean, std: Math.sqrt(variance), n: vals.length };
}

describe('standardiser statistics', () => {
  const sites = [site(30, 4, 1, 0, 1), site(55, 4, 2, 5, 3), site(20, 4, 3, -2, 0.5)];

  it('combines sites to the pooled mean and standard deviation, missing values ignored per feature', () => {
    const total = combineStats(sites.map((s) => siteStats(s)!));
    expect(total.rows).toBe(105);
    expect(total.sites).toBe(3);
    const agreed = agreeStandardiser(total);
    for (let j = 0; j < 4; j++) {
      const ref = pooled(sites, j);
      expect(total.inputs['features']!.n[j]).toBe(ref.n);
      expect(agreed.inputs['features']!.mean[j]).toBeCloseTo(ref.mean, 9);
      expect(Math.abs(agreed.inputs['features']!.std[j]! / ref.std - 1)).toBeLessThan(1e-9);
    }
    expect(total.inputs['features']!.n[2]).toBeLessThan(105);   // the missing values are not counted
    // z-scored with it, the pooled training data has mean 0 and std 1 per feature (missing values become 0, the mean)
    const z = sites.map((s) => applyAgreed(s, agreed));
    for (let j = 0; j < 4; j++) {
      const ref = pooled(z, j);
      expect(Math.abs(ref.mean)).toBeLessThan(1e-5);
      if (j !== 2) expect(ref.std).toBeCloseTo(1, 4);
    }
  });

  it('gives bit-identical results (and hash) for the same contributions in any order, and names them by hash', () => {
    const stats = sites.map((s) => siteStats(s)!);
    // through JSON, as on the wire
    const wire = stats.map((s) => JSON.parse(JSON.stringify(s)) as typeof s);
    const a = agreeStandardiser(combineStats(stats), { featureNames: ['a', 'b', 'c', 'd'] });
    const b = agreeStandardiser(combineStats(wire), { featureNames: ['a', 'b', 'c', 'd'] });
    expect(b.hash).toBe(a.hash);
    expect(b.inputs).toEqual(a.inputs);
    // any order of the contributions: the same bits (the order of addition is fixed by content)
    expect(agreeStandardiser(combineStats([...wire].reverse()), { featureNames: ['a', 'b', 'c', 'd'] }).hash).toBe(a.hash);
    expect(parseAgreed(JSON.parse(JSON.stringify(a))).hash).toBe(a.hash);
    const tampered = { ...a, inputs: { features: { ...a.inputs['features']!, mean: a.inputs['features']!.mean.map((m) => m + 1) } } };
    expect(() => parseAgreed(tampered)).toThrow(expect.objectContaining({ code: 'BAD_STANDARDISER' }));
    const out = exportStandardiser(a);
    expect(out.featureNames).toEqual(['a', 'b', 'c', 'd']);
    expect(out.mean).toBeInstanceOf(Float32Array);
    expect(out.mean.length).toBe(4);
  });

  it('refuses to share below the small-count rule: a small site, a rarely seen feature, a small class cell', () => {
    expect(SMALL_COUNT).toBe(10);
    expect(siteStats(site(9, 4, 4, 0, 1))).toBeNull();
    expect(siteStats(site(10, 4, 4, 0, 1))).not.toBeNull();
    // a feature seen in fewer than 10 rows of a site is reported as never seen there
    const s = site(40, 3, 5, 0, 1);
    for (let i = 8; i < 40; i++) s.inputs['features']!.data[i * 3 + 1] = Number.NaN;
    const st = siteStats(s)!;
    expect(st.inputs['features']!.n.slice(0, 2)).toEqual([40, 0]);
    expect(st.inputs['features']!.sum[1]).toBe(0);
    expect(st.inputs['features']!.sumsq[1]).toBe(0);
    // class cells: 37 of class 0, 3 of class 1 -> the 3 is suppressed, and stays suppressed when combined
    const skew = { ...s, targets: { label: { shape: [], data: Float32Array.from({ length: 40 }, (_, i) => (i < 3 ? 1 : 0)) } } };
    const cs = siteStats(skew, { classes: 2 })!;
    expect(cs.classCounts).toEqual([37, null]);
    expect(combineStats([cs, siteStats(site(20, 3, 6, 0, 1), { classes: 2 })!]).classCounts).toEqual([47, null]);
    // the simulator leaves small sites out, and refuses when no site may share
    const small = [site(5, 4, 7, 0, 1), site(6, 4, 8, 0, 1)];
    expect(consortiumStandardiser([...small, sites[0]!]).suppressed).toBe(2);
    expect(() => consortiumStandardiser(small)).toThrow(expect.objectContaining({ code: 'NO_STATISTICS' }));
    expect(consortiumStandardiser(small, { minCount: 5 }).suppressed).toBe(0);
  });

  it('refuses sites that disagree on the inputs', () => {
    expect(() => combineStats([siteStats(sites[0]!)!, siteStats(site(30, 5, 9, 0, 1))!])).toThrow(expect.objectContaining({ code: 'STATISTICS_SHAPE' }));
  });

  it('reads the manifest setting: true and "consortium" agree one standardiser, "site" is explicit, anything else is refused', () => {
    expect(standardizeMode({})).toBe('none');
    expect(standardizeMode({ standardize: false })).toBe('none');
    expect(standardizeMode({ standardize: true })).toBe('consortium');
    expect(standardizeMode({ standardize: 'consortium' })).toBe('consortium');
    expect(standardizeMode({ standardize: 'site' })).toBe('site');
    expect(() => standardizeMode({ standardize: 'global' })).toThrow(expect.objectContaining({ code: 'BAD_MANIFEST' }));
    expect(minCountOf({})).toBe(10);
    expect(minCountOf({ minCount: 5 })).toBe(5);
    expect(() => minCountOf({ minCount: 0 })).toThrow(expect.objectContaining({ code: 'BAD_MANIFEST' }));
    // refused when the manifest is read (launch, validate), not only in every peer's worker
    const m = JSON.parse(readFileSync('scenarios/wdbc-radiomics.json', 'utf8')) as { data: Record<string, unknown> };
    expect(parseManifest(m).data.preprocessing['standardize']).toBe('consortium');
    expect(() => parseManifest({ ...m, data: { ...m.data, preprocessing: { standardize: 'global' } } })).toThrow(expect.objectContaining({ code: 'BAD_MANIFEST' }));
  });
});

describe('the report names the input scale', () => {
  const H1 = 'a'.repeat(64), H2 = 'b'.repeat(64);
  const ans = { hash: 'h', at: 't', sig: 'x' };
  const input = (hashes: Record<string, string>): ReportInput => {
    const run = { startAt: 1000, participants: ['b', 'c'], approvals: { b: ans, c: ans } };
    const view = [delta.approve('sc', 'b', ans), delta.approve('sc', 'c', ans), delta.run('sc', run),
      ...Object.entries(hashes).map(([p, h]) => delta.progress('sc', p, { round: 1, seq: 2, metric: 0.9, done: true, heldOut: 20, standardiser: h })),
      delta.state('sc', 'finished')].reduce(merge, emptyView('sc'));
    return { id: 'sc', manifest: { name: 'd', task: { metric: 'accuracy' } }, view, names: { b: 'site-b', c: 'site-c' }, history: [], exportedBy: 'site-b', finalModel: true };
  };

  it('one standardiser for all sites, or each site\'s when they differ; metrics.json carries the hash per site', () => {
    expect(reportMarkdown(input({ b: H1, c: H1 }))).toContain(`the same standardiser \`${H1.slice(0, 16)}\``);
    const two = reportMarkdown(input({ b: H1, c: H2 }));
    expect(two).toContain('2 standardisers among 2 sites');
    expect(two).toContain(`site-c \`${H2.slice(0, 16)}\``);
    const sites = (metricsJson(input({ b: H1, c: H1 })) as { sites: { standardiser: string }[] }).sites;
    expect(sites.map((x) => x.standardiser)).toEqual([H1, H1]);
  });
});
