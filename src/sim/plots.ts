/**
 * SVG curves of simulated runs (src/util/plot.ts): metric vs round, metric vs bytes sent per peer, consensus distance vs round;
 * every algorithm as a solid line and every baseline dashed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { linePlot, type Series } from '../util/plot.ts';
import type { CurvePoint } from './run.ts';

const BASELINES = new Set(['centralised', 'local_only', 'fedavg']);

export function writeCurvePlots(curves: Readonly<Record<string, readonly CurvePoint[]>>, metric: string, dir: string, prefix = 'sim'): string[] {
  mkdirSync(dir, { recursive: true });
  const entries = Object.entries(curves);
  const series = (f: (p: CurvePoint) => [number, number] | null, skipBaselinesWithoutBytes = false): Series[] =>
    entries
      .filter(([name, c]) => !(skipBaselinesWithoutBytes && BASELINES.has(name) && c.every((p) => p.bytesPerPeer === 0)))
      .map(([name, c]) => ({ name, dashed: BASELINES.has(name), points: c.map(f).filter((p): p is [number, number] => p !== null) }));
  const files: [string, string][] = [
    [`${prefix}-${metric}-vs-round.svg`, linePlot({ title: `${metric} vs round`, xLabel: 'round', yLabel: metric, series: series((p) => [p.round, p.metric]) })],
    [`${prefix}-${metric}-vs-bytes.svg`, linePlot({
      title: `${metric} vs bytes sent per peer`, xLabel: 'bytes sent per peer (log)', yLabel: metric, logX: true,
      series: series((p) => (p.bytesPerPeer > 0 ? [p.bytesPerPeer, p.metric] : null), true),
    })],
    [`${prefix}-consensus-vs-round.svg`, linePlot({
      title: 'consensus distance vs round', xLabel: 'round', yLabel: 'consensus distance (log)', logY: true,
      series: series((p) => (p.consensus !== undefined && p.consensus > 0 ? [p.round, p.consensus] : null)).filter((s) => s.points.length),
    })],
  ];
  return files.map(([name, svg]) => {
    const path = join(dir, name);
    writeFileSync(path, svg);
    return path;
  });
}
