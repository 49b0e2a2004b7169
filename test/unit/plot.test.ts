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
