/**
 * Small dependency-free SVG line plots: several series, axes with ticks, a legend. Used by `cohort sim --plot`, the averaging
 * benchmark, and the daemon's reports.
 *
 *   linePlot({ title, xLabel, yLabel, series: [{ name, points: [[x, y], ...], band?: [[x, lo, hi], ...] }], logX?, logY?, width?, height? })
 *   intervalPlot({ title, yLabel, categories, groups: [{ name, values: [{ mean, lo, hi } | null per category] }], lines? })
 *     -> SVG string: per category one marker with a vertical interval bar per group, side by side; lines: dashed horizontal references
 * Non-finite points are skipped; a series with one point is drawn as a marker. Series with the same `colourKey` share a colour (a
 * site's federated line and its dashed local-only baseline); a log axis says so in its label; the tick labels of one axis share
 * one number format (same decimals, or all in exponent form).
 */
export interface Series {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
  /** Draw dashed (e.g. baselines). */
  readonly dashed?: boolean;
  /** A shaded band in the series' colour: [x, lo, hi] per point (e.g. a 95% interval over seeds). */
  readonly band?: readonly (readonly [number, number, number])[];
  /** Series with the same key get the same colour (default: each series its own). */
  readonly colourKey?: string;
}

export interface PlotOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly width?: number;
  readonly height?: number;
  readonly logX?: boolean;
  readonly logY?: boolean;
  /** Fix the y range (else from the data). */
  readonly yRange?: readonly [number, number];
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round, readable tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * Labels for the ticks of one axis in one format: fixed with the decimals the finest tick needs (0.90, 0.95, 1.00), or, when a
 * tick is very large or small, exponent form with one mantissa precision for all (1e-4, 1e-3).
 */
export function tickLabels(values: readonly number[]): string[] {
  const exp = values.some((v) => v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3));
  if (exp) {
    const digits = Math.max(0, ...values.map((v) => mantissaDigits(v)));
    return values.map((v) => v.toExponential(digits).replace('e+', 'e'));
  }
  const decimals = Math.max(0, ...values.map((v) => decimalsOf(v)));
  return values.map((v) => v.toFixed(decimals));
}

/** Decimals v needs at 6 significant digits (0.25 -> 2, 3 -> 0). */
function decimalsOf(v: number): number {
  const s = Number(v.toPrecision(6)).toString();
  return s.includes('.') ? s.length - s.indexOf('.') - 1 : 0;
}

/** Mantissa decimals v needs in exponent form at 6 significant digits (2.5e-4 -> 1). */
function mantissaDigits(v: number): number {
  const m = Number(v.toExponential(5).split('e')[0]).toString();
  return m.includes('.') ? m.length - m.indexOf('.') - 1 : 0;
}

/** One colour per series, or per colourKey in order of first appearance. */
function seriesColours(series: readonly Series[]): string[] {
  const keys = new Map<string, number>();
  return series.map((s, i) => {
    if (s.colourKey === undefined) return COLOURS[(keys.size + i) % COLOURS.length]!;
    if (!keys.has(s.colourKey)) keys.set(s.colourKey, keys.size);
    return COLOURS[keys.get(s.colourKey)! % COLOURS.length]!;
  });
}

export function linePlot(o: PlotOptions): string {
  const W = o.width ?? 640;
  const H = o.height ?? 400;
  const m = { l: 64, r: 16, t: 36, b: 48 };
  const legendW = 150;
  const pw = W - m.l - m.r - legendW;
  const ph = H - m.t - m.b;
  const tx = (v: number) => (o.logX ? Math.log10(v) : v);
  const ty = (v: number) => (o.logY ? Math.log10(v) : v);
  const ok = (x: number, y: number) => Number.isFinite(tx(x)) && Number.isFinite(ty(y));
  const bandPts = o.series.flatMap((s) => (s.band ?? []).flatMap(([x, lo, hi]) => [[x, lo], [x, hi]] as [number, number][]));
  const pts = [...o.series.flatMap((s) => s.points), ...bandPts].filter(([x, y]) => ok(x, y));
  let [x0, x1] = pts.length ? [Math.min(...pts.map((p) => tx(p[0]))), Math.max(...pts.map((p) => tx(p[0])))] : [0, 1];
  let [y0, y1] = o.yRange ? [ty(o.yRange[0]), ty(o.yRange[1])] : pts.length ? [Math.min(...pts.map((p) => ty(p[1]))), Math.max(...pts.map((p) => ty(p[1])))] : [0, 1];
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { y0 -= Math.abs(y0) * 0.05 || 1; y1 += Math.abs(y1) * 0.05 || 1; }
  const pad = (y1 - y0) * 0.05;
  if (!o.yRange) { y0 -= pad; y1 += pad; }
  const sx = (v: number) => m.l + ((tx(v) - x0) / (x1 - x0)) * pw;
  const sy = (v: number) => m.t + ph - ((ty(v) - y0) / (y1 - y0)) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="20" text-anchor="middle" font-size="14">${esc(o.title)}</text>`);
  // log axes: ticks at the powers of ten in range (at least the two ends when the range spans less than a decade)
  const logTicks = (a: number, b: number): number[] => { const t = niceTicks(a, b).filter(Number.isInteger); return t.length >= 2 ? t : niceTicks(a, b); };
  const xv = (o.logX ? logTicks(x0, x1) : niceTicks(x0, x1)).map((t) => (o.logX ? 10 ** t : t));
  const yv = (o.logY ? logTicks(y0, y1) : niceTicks(y0, y1)).map((t) => (o.logY ? 10 ** t : t));
  const xl = tickLabels(xv);
  const yl = tickLabels(yv);
  xv.forEach((v, k) => {
    const X = sx(v).toFixed(1);
    out.push(`<line x1="${X}" y1="${m.t}" x2="${X}" y2="${m.t + ph}" stroke="#eee"/>`);
    out.push(`<text x="${X}" y="${m.t + ph + 16}" text-anchor="middle">${xl[k]!}</text>`);
  });
  yv.forEach((v, k) => {
    const Y = sy(v).toFixed(1);
    out.push(`<line x1="${m.l}" y1="${Y}" x2="${m.l + pw}" y2="${Y}" stroke="#eee"/>`);
    out.push(`<text x="${m.l - 6}" y="${Y}" text-anchor="end" dominant-baseline="middle">${yl[k]!}</text>`);
  });
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel + (o.logX ? ' (log scale)' : ''))}</text>`);
  out.push(`<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel + (o.logY ? ' (log scale)' : ''))}</text>`);
  const colours = seriesColours(o.series);
  o.series.forEach((s, i) => {
    const band = (s.band ?? []).filter(([x, lo, hi]) => ok(x, lo) && ok(x, hi));
    if (band.length < 2) return;
    const upper = band.map(([x, , hi]) => `${sx(x).toFixed(1)},${sy(hi).toFixed(1)}`);
    const lower = band.map(([x, lo]) => `${sx(x).toFixed(1)},${sy(lo).toFixed(1)}`).reverse();
    out.push(`<polygon points="${[...upper, ...lower].join(' ')}" fill="${colours[i]!}" fill-opacity="0.15" stroke="none"/>`);
  });
  o.series.forEach((s, i) => {
    const c = colours[i]!;
    const p = s.points.filter(([x, y]) => ok(x, y)).map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    if (p.length === 1) out.push(`<circle cx="${p[0]!.split(',')[0]}" cy="${p[0]!.split(',')[1]}" r="3" fill="${c}"/>`);
    else if (p.length > 1) out.push(`<polyline points="${p.join(' ')}" fill="none" stroke="${c}" stroke-width="1.8"${dash}/>`);
    const ly = m.t + 10 + i * 18;
    const lx = m.l + pw + 12;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${c}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${lx + 28}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export interface IntervalValue { readonly mean: number; readonly lo: number; readonly hi: number }

export interface IntervalPlotOptions {
  readonly title: string;
  readonly yLabel: string;
  /** One slot on the x axis each (e.g. the rules). */
  readonly categories: readonly string[];
  /** Side by side within each category (e.g. "mean model", "own models"); null or non-finite: nothing drawn there. */
  readonly groups: readonly { readonly name: string; readonly values: readonly (IntervalValue | null)[] }[];
  /** Horizontal dashed reference lines (e.g. centralised, the target). */
  readonly lines?: readonly { readonly name: string; readonly y: number }[];
  readonly width?: number;
  readonly height?: number;
}

/** Means with interval bars per category and group, and dashed reference lines (a summary of several runs side by side). */
export function intervalPlot(o: IntervalPlotOptions): string {
  const W = o.width ?? 720;
  const H = o.height ?? 400;
  const m = { l: 64, r: 16, t: 36, b: 64 };
  const legendW = 170;
  const pw = W - m.l - m.r - legendW;
  const ph = H - m.t - m.b;
  const K = Math.max(1, o.categories.length);
  const G = Math.max(1, o.groups.length);
  const finite = (v: IntervalValue | null): v is IntervalValue => v !== null && Number.isFinite(v.mean);
  const ys = [
    ...o.groups.flatMap((g) => g.values.filter(finite).flatMap((v) => [v.mean, v.lo, v.hi])),
    ...(o.lines ?? []).map((l) => l.y),
  ].filter(Number.isFinite);
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (y1 === y0) { y0 -= Math.abs(y0) * 0.05 || 1; y1 += Math.abs(y1) * 0.05 || 1; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  const slot = pw / K;
  const sx = (k: number, g: number) => m.l + slot * (k + 0.5) + (G > 1 ? ((g / (G - 1)) - 0.5) * slot * 0.5 : 0);
  const sy = (v: number) => m.t + ph - ((v - y0) / (y1 - y0)) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="20" text-anchor="middle" font-size="14">${esc(o.title)}</text>`);
  const ticks = niceTicks(y0, y1);
  const labels = tickLabels(ticks);
  ticks.forEach((t, k) => {
    const Y = sy(t).toFixed(1);
    out.push(`<line x1="${m.l}" y1="${Y}" x2="${m.l + pw}" y2="${Y}" stroke="#eee"/>`);
    out.push(`<text x="${m.l - 6}" y="${Y}" text-anchor="end" dominant-baseline="middle">${labels[k]!}</text>`);
  });
  o.categories.forEach((c, k) => {
    const X = (m.l + slot * (k + 0.5)).toFixed(1);
    out.push(`<text x="${X}" y="${m.t + ph + 16}" text-anchor="middle">${esc(c)}</text>`);
  });
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  const lx = m.l + pw + 12;
  let row = 0;
  const legend = (colour: string, name: string, dashed: boolean) => {
    const ly = m.t + 10 + row++ * 18;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${colour}" stroke-width="2"${dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${lx + 28}" y="${ly}" dominant-baseline="middle">${esc(name)}</text>`);
  };
  (o.lines ?? []).forEach((l, i) => {
    if (!Number.isFinite(l.y)) return;
    const c = COLOURS[(COLOURS.length - 1 - i) % COLOURS.length]!;
    const Y = sy(l.y).toFixed(1);
    out.push(`<line x1="${m.l}" y1="${Y}" x2="${m.l + pw}" y2="${Y}" stroke="${c}" stroke-width="1.2" stroke-dasharray="6 4"/>`);
    legend(c, l.name, true);
  });
  o.groups.forEach((g, gi) => {
    const c = COLOURS[gi % COLOURS.length]!;
    g.values.forEach((v, k) => {
      if (!finite(v)) return;
      const X = sx(k, gi).toFixed(1);
      if (Number.isFinite(v.lo) && Number.isFinite(v.hi)) {
        out.push(`<line x1="${X}" y1="${sy(v.lo).toFixed(1)}" x2="${X}" y2="${sy(v.hi).toFixed(1)}" stroke="${c}" stroke-width="1.8"/>`);
        for (const e of [v.lo, v.hi]) out.push(`<line x1="${(Number(X) - 4).toFixed(1)}" y1="${sy(e).toFixed(1)}" x2="${(Number(X) + 4).toFixed(1)}" y2="${sy(e).toFixed(1)}" stroke="${c}" stroke-width="1.5"/>`);
      }
      out.push(`<circle cx="${X}" cy="${sy(v.mean).toFixed(1)}" r="3.5" fill="${c}"/>`);
    });
    legend(c, g.name, false);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
