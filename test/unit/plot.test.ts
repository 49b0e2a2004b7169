import { describe, expect, it } from 'vitest';
import { intervalPlot, linePlot } from '../../src/util/plot.ts';

const count = (svg: string, what: string) => svg.split(what).length - 1;

describe('linePlot bands', () => {
  it('draws one shaded polygon per series with a band and widens the y range to hold it', () => {
    const svg = linePlot({
      title: 't', xLabel: 'round', yLabel: 'acc', series: [
        { name: 'a', points: [[1, 0.5], [2, 0.6], [3, 0.7]], band: [[1, 0.4, 0.6], [2, 0.5, 0.7], [3, 0.1, 0.9]] },
        { name: 'b', points: [[1, 0.5], [2, 0.55]] },
      ],
    });
    expect(count(svg, '<polygon')).toBe(1);
    expect(count(svg, '<polyline')).toBe(2);
    // the band reaches 0.1 and 0.9: ticks at those ends exist only if the range was widened beyond the lines' 0.5-0.7
    expect(svg).toContain('>0.2<');
    expect(svg).toContain('>0.8<');
  });
  it('without bands draws no polygon', () => {
    expect(count(linePlot({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[0, 1], [1, 2]] }] }), '<polygon')).toBe(0);
  });
});

describe('intervalPlot', () => {
  it('draws a marker and a bar with caps per finite value, skips nulls, and draws reference lines with a legend', () => {
    const svg = intervalPlot({
      title: 'final', yLabel: 'accuracy', categories: ['dpsgd', 'epidemic', 'fedavg'],
      groups: [
        { name: 'mean model', values: [{ mean: 0.96, lo: 0.95, hi: 0.97 }, null, { mean: 0.95, lo: 0.94, hi: 0.96 }] },
        { name: 'own models', values: [{ mean: 0.94, lo: 0.92, hi: 0.96 }, { mean: 0.95, lo: Number.NaN, hi: Number.NaN }, null] },
      ],
      lines: [{ name: 'centralised', y: 0.97 }, { name: 'target', y: 0.96 }],
    });
    expect(count(svg, '<circle')).toBe(4);
    // three values with an interval: one bar and two caps each; the NaN interval gets a marker only
    expect(count(svg, 'stroke-width="1.8"')).toBe(3);
    expect(count(svg, 'stroke-width="1.5"')).toBe(6);
    expect(count(svg, 'stroke-dasharray="6 4"')).toBe(4); // two reference lines and their legend entries
    for (const label of ['dpsgd', 'epidemic', 'fedavg', 'mean model', 'own models', 'centralised', 'target']) expect(svg).toContain(`>${label}<`);
  });
});

describe('linePlot colours, log axes and tick formats (issue 13.5)', () => {
  const stroke = (svg: string, name: string): string => {
    // the legend entry of a series: its line's stroke precedes its label
    const at = svg.indexOf(`>${name}<`);
    const before = svg.slice(0, at);
    return before.slice(before.lastIndexOf('stroke="') + 8).split('"')[0]!;
  };
  it('a site and its local-only baseline share a colour; different sites differ', () => {
    const svg = linePlot({ title: 't', xLabel: 'round', yLabel: 'acc', series: [
      { name: 'site-a', colourKey: 'site-a', points: [[0, 0.5], [1, 0.6]] },
      { name: 'site-b', colourKey: 'site-b', points: [[0, 0.4], [1, 0.7]] },
      { name: 'site-a local-only', colourKey: 'site-a', dashed: true, points: [[0, 0.55], [1, 0.55]] },
      { name: 'site-b local-only', colourKey: 'site-b', dashed: true, points: [[0, 0.45], [1, 0.45]] },
    ] });
    expect(stroke(svg, 'site-a local-only')).toBe(stroke(svg, 'site-a'));
    expect(stroke(svg, 'site-b local-only')).toBe(stroke(svg, 'site-b'));
    expect(stroke(svg, 'site-a')).not.toBe(stroke(svg, 'site-b'));
  });
  it('log axes say so in their labels and tick at powers of ten in one format', () => {
    const svg = linePlot({ title: 't', xLabel: 'round', yLabel: 'distance', logY: true, series: [{ name: 'a', points: [[1, 1e-4], [2, 1e-2], [3, 1]] }] });
    expect(svg).toContain('>distance (log scale)<');
    expect(svg).toContain('>round<');
    for (const t of ['1e-4', '1e-3', '1e-2', '1e-1', '1e0']) expect(svg).toContain(`>${t}<`);
  });
  it('tick labels of one axis share their decimals', async () => {
    const { tickLabels } = await import('../../src/util/plot.ts');
    expect(tickLabels([0.9, 0.925, 0.95, 0.975, 1])).toEqual(['0.900', '0.925', '0.950', '0.975', '1.000']);
    expect(tickLabels([0, 5, 10])).toEqual(['0', '5', '10']);
    expect(tickLabels([1e-4, 2.5e-4])).toEqual(['1.0e-4', '2.5e-4']);
  });
});
