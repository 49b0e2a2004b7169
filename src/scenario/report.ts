/**
 * Scenario reports for researchers: from what a peer knows at the end (manifest, merged view with per-site progress, the history
 * of every progress point it heard, its final model), the files `cohort scenario export` writes:
 *   metrics.json      per-site final metric, local-only baseline, rounds, bytes sent; and the full history
 *   convergence.svg   metric per round and site (src/util/plot.ts), local-only baselines dashed
 *   report.md         a summary a paper can cite: what ran, who took part, results beside local-only training
 */
import { linePlot, type Series } from '../util/plot.ts';
import type { ScenarioView, SiteProgress } from './lifecycle.ts';
import { participantsOf } from './participants.ts';

export interface ReportInput {
  readonly id: string;
  readonly manifest: Readonly<Record<string, unknown>>;
  readonly view: ScenarioView;
  readonly names: Readonly<Record<string, string>>;
  readonly history: readonly (SiteProgress & { site: string })[];
  readonly authorName?: string;
  readonly launchedAt?: string;
  readonly exportedBy: string;
  /** The exporting site's data for this scenario is generated (synthetic phantoms), not patients. */
  readonly synthetic?: boolean;
}

export interface SiteResult {
  name: string; peerId: string; metric: number | null; local_only: number | null; rounds: number; bytes_sent: number; done: boolean;
  /** Held-out samples behind the metric (one sample moves it by 1/held_out). */
  held_out: number | null;
  /** Set when the site came back after the end and took the final model: the last round it trained in. */
  last_trained_round: number | null;
  failed: string | null;
  /** Rounds in which this site's local training really ran (fewer than `rounds` when its worker was late or it restarted). */
  rounds_trained: number | null;
}

/** Per-site results of the run's participants only (progress from anyone else never enters a view: src/peer/gossip.ts). */
export function siteResults(r: Pick<ReportInput, 'view' | 'names'>): SiteResult[] {
  const inRun = new Set(participantsOf(r.view));
  return Object.entries(r.view.progress).filter(([peer]) => !r.view.run || inRun.has(peer)).map(([peer, p]) => ({
    name: r.names[peer] ?? peer.slice(-8), peerId: peer, metric: p.metric ?? null, local_only: p.localOnly ?? null,
    rounds: (p.lastTrainedRound ?? p.round) + 1, bytes_sent: p.bytesSent ?? 0, done: Boolean(p.done), held_out: p.heldOut ?? null,
    last_trained_round: p.lastTrainedRound ?? null, failed: p.failed ? `${p.failed.code}: ${p.failed.message}` : null,
    rounds_trained: p.roundsTrained ?? null,
  })).sort((a, b) => a.name.localeCompare(b.name));
}

export function metricsJson(r: ReportInput): Record<string, unknown> {
  return { scenario: r.id, name: r.manifest.name, state: r.view.state, metric: metricName(r), synthetic: Boolean(r.synthetic), sites: siteResults(r),
    history: r.history.map((h) => ({ site: r.names[h.site] ?? h.site, round: h.round, loss: h.loss ?? null, metric: h.metric ?? null })) };
}

function metricName(r: Pick<ReportInput, 'manifest'>): string {
  const task = r.manifest.task as { metric?: string } | undefined;
  return task?.metric ?? 'metric';
}

export function convergenceSvg(r: ReportInput): string {
  const bySite = new Map<string, [number, number][]>();
  for (const h of r.history) {
    if (h.metric === undefined) continue;
    const name = r.names[h.site] ?? h.site.slice(-8);
    bySite.set(name, [...(bySite.get(name) ?? []), [h.round, h.metric]]);
  }
  const series: Series[] = [...bySite.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, pts]) => ({ name, points: pts.sort((a, b) => a[0] - b[0]) }));
  const lastRound = Math.max(0, ...r.history.map((h) => h.round));
  for (const s of siteResults(r)) {
    if (s.local_only !== null) series.push({ name: `${s.name} local-only`, dashed: true, points: [[0, s.local_only], [lastRound, s.local_only]] });
  }
  return linePlot({ title: `${String(r.manifest.name)}: ${metricName(r)} per round`, xLabel: 'round', yLabel: metricName(r), series });
}

const fmt = (v: number | null): string => (v === null ? '–' : v.toFixed(3));

export function reportMarkdown(r: ReportInput): string {
  const sites = siteResults(r);
  const m = r.manifest as { title?: string; model?: { type?: string }; averaging?: { algorithm?: string }; rounds?: { max?: number } };
  const lines = [
    `# ${m.title ?? String(r.manifest.name)}`,
    '',
    ...(r.synthetic ? ['> **SYNTHETIC DATA.** The sites trained on generated phantoms (src/data/synth.ts), not on patients.', ''] : []),
    `Scenario \`${r.id}\` (content hash of the signed manifest), launched by ${r.authorName ?? 'unknown'}${r.launchedAt ? ` at ${r.launchedAt}` : ''}; state **${r.view.state}**${r.view.reason ? ` (${r.view.reason})` : ''}.`,
    `Model ${m.model?.type ?? '?'}, averaging ${m.averaging?.algorithm ?? '?'}, ${m.rounds?.max ?? '?'} rounds, decentralised (no server); no patient data left any site — only model parameters, each transfer recorded in the sender's audit log.`,
    '',
    `| site | ${metricName(r)} (federated) | ${metricName(r)} (local only) | held-out n | rounds trained | bytes sent |`,
    '|---|---|---|---|---|---|',
    ...sites.map((s) => `| ${s.name} | ${fmt(s.metric)} | ${fmt(s.local_only)} | ${s.held_out ?? '–'} | ${s.rounds} | ${s.bytes_sent} |`),
    '',
    'Metrics are measured by each site on its own held-out data (one sample moves a site\'s metric by 1/n). Local-only: the same model and local work per round, trained on the site\'s data alone.',
    ...participationNotes(r, sites),
    '',
    '![convergence](convergence.svg)',
    '',
    `Participants (signed approvals in the launcher's run plan): ${participantsOf(r.view).map((p) => r.names[p] ?? p).sort().join(', ') || 'none'}.` +
      (lateApprovers(r).length ? ` Approved after the start, not admitted: ${lateApprovers(r).join(', ')}.` : '') +
      (Object.keys(r.view.rejections).length ? ` Rejected by: ${Object.keys(r.view.rejections).map((p) => r.names[p] ?? p).join(', ')}.` : '') +
      (Object.keys(r.view.declines).length ? ` Declined (no matching data): ${Object.keys(r.view.declines).map((p) => r.names[p] ?? p).join(', ')}.` : ''),
    '',
    `Exported by ${r.exportedBy}. Files: model.onnx (this site's final model, ONNX opset 18), metrics.json, convergence.svg.`,
    '',
  ];
  return lines.join('\n');
}

function lateApprovers(r: Pick<ReportInput, 'view' | 'names'>): string[] {
  if (!r.view.run) return [];
  const inRun = new Set(participantsOf(r.view));
  return Object.keys(r.view.approvals).filter((p) => !inRun.has(p)).map((p) => r.names[p] ?? p).sort();
}

/** Who did not take part to the end, in words: back after the end, failed, or silent. */
function participationNotes(r: Pick<ReportInput, 'view' | 'names'>, sites: readonly SiteResult[]): string[] {
  const notes: string[] = [];
  for (const s of sites) {
    if (s.last_trained_round !== null) notes.push(`- ${s.name} was away at the end: it trained until round ${s.last_trained_round} and took the final model from a participant afterwards (its metric is that model on its data).`);
    if (s.failed) notes.push(`- ${s.name} failed (${s.failed}); the others went on without it.`);
  }
  for (const p of participantsOf(r.view)) {
    const prog = r.view.progress[p];
    if (r.view.state === 'finished' && !prog?.done && !prog?.failed) notes.push(`- ${r.names[p] ?? p} was dropped as silent (last round heard: ${prog?.round ?? 'none'}); the others finished without it.`);
  }
  return notes.length ? ['', ...notes] : [];
}
