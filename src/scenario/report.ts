/**
 * Scenario reports for researchers: from what a peer knows at the end (manifest, merged view with per-site progress, the history
 * of every progress point it heard, its final model), the files `cohort scenario export` writes:
 *   metrics.json      per-site final metric with held-out n and 95% interval, local-only baseline, rounds, bytes sent; answers
 *                     (in time / late / declined); participants at the end; whether the exporting peer holds a final model; history
 *   convergence.svg   metric per round and site (src/util/plot.ts), each site's local-only baseline dashed in the site's colour
 *   report.md         a summary a paper can cite: what ran, who took part, results beside local-only training, with their n and
 *                     intervals (computed at each site: src/engine/evaluate.ts), and what the exporting peer does not hold
 */
import { linePlot, type Series } from '../util/plot.ts';
import type { ScoreInterval } from '../util/stats.ts';
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
  /** Roster name of the peer writing the report. */
  readonly exportedBy: string;
  /** The exporting site's data for this scenario is generated (synthetic phantoms), not patients. */
  readonly synthetic?: boolean;
  /** Whether the exporting peer holds a final model of this scenario (undefined: not known to the caller; no file is named). */
  readonly finalModel?: boolean;
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
  /** The final model's metrics on this site's held-out data with 95% intervals (Wilson for accuracy, bootstrap otherwise). */
  scores: Readonly<Record<string, ScoreInterval>> | null;
  local_only_scores: Readonly<Record<string, ScoreInterval>> | null;
  /** Trained up to the last round (done, not back after the end): a participant in the final model. */
  trained_to_end: boolean;
  /** sha256 of the standardiser the site's inputs were scaled with (the same at every site when consortium-wide). */
  standardiser: string | null;
  /** DP-SGD: the epsilon the site spent on its own patients (its accountant); null without privacy.dp. */
  epsilon_spent: number | null;
}

/** Per-site results of the run's participants only (progress from anyone else never enters a view: src/peer/gossip.ts). */
export function siteResults(r: Pick<ReportInput, 'view' | 'names'>): SiteResult[] {
  const inRun = new Set(participantsOf(r.view));
  return Object.entries(r.view.progress).filter(([peer]) => !r.view.run || inRun.has(peer)).map(([peer, p]) => ({
    name: r.names[peer] ?? peer.slice(-8), peerId: peer, metric: p.metric ?? null, local_only: p.localOnly ?? null,
    rounds: (p.lastTrainedRound ?? p.round) + 1, bytes_sent: p.bytesSent ?? 0, done: Boolean(p.done), held_out: p.heldOut ?? null,
    last_trained_round: p.lastTrainedRound ?? null, failed: p.failed ? `${p.failed.code}: ${p.failed.message}` : null,
    rounds_trained: p.roundsTrained ?? null, scores: p.scores ?? null, local_only_scores: p.localOnlyScores ?? null,
    trained_to_end: trainedToEnd(p), standardiser: p.standardiser ?? null, epsilon_spent: p.epsilon ?? null,
  })).sort((a, b) => a.name.localeCompare(b.name));
}

const trainedToEnd = (p: SiteProgress | undefined): boolean =>
  Boolean(p?.done && p.lastTrainedRound === undefined && !p.failed && (p.roundsTrained === undefined || p.roundsTrained > 0));

/** Peers whose models make up the final model: they trained up to the last round (not dropped, failed, or back after the end). */
export function finalParticipants(view: Pick<ScenarioView, 'run' | 'progress'>): string[] {
  return participantsOf(view).filter((p) => trainedToEnd(view.progress[p]));
}

export interface Answers {
  /** Signed approvals in the launcher's run plan at the start. */
  readonly in_time: string[];
  /** Approved after the run plan was made: admitted from a later round, or not admitted (too few rounds left). */
  readonly late: { name: string; admitted_from_round: number | null }[];
  /** Declined by the approval policy (no matching data, limits, privacy) or rejected by the operator, with the reason. */
  readonly declined: { name: string; reason: string | null; by: 'policy' | 'operator' }[];
  /** Roster members with no answer this peer heard of. */
  readonly no_answer: string[];
}

/** Every roster member's answer to the scenario, as this peer's merged view knows it. */
export function answersOf(r: Pick<ReportInput, 'view' | 'names'>): Answers {
  const name = (p: string): string => r.names[p] ?? p.slice(-8);
  const run = r.view.run;
  const inPlan = new Set(run?.participants ?? []);
  const admitted = run?.admitted ?? {};
  const late = Object.keys(r.view.approvals).filter((p) => run && !inPlan.has(p))
    .map((p) => ({ name: name(p), admitted_from_round: admitted[p]?.fromRound ?? null }));
  for (const [p, a] of Object.entries(admitted)) if (!r.view.approvals[p] && !inPlan.has(p)) late.push({ name: name(p), admitted_from_round: a.fromRound });
  const declined = [
    ...Object.entries(r.view.declines).map(([p, a]) => ({ name: name(p), reason: a.reason ?? null, by: 'policy' as const })),
    ...Object.entries(r.view.rejections).map(([p, a]) => ({ name: name(p), reason: a.reason ?? null, by: 'operator' as const })),
  ];
  const answered = new Set([...Object.keys(r.view.approvals), ...Object.keys(r.view.declines), ...Object.keys(r.view.rejections), ...inPlan, ...Object.keys(admitted)]);
  const inTime = run ? [...inPlan] : Object.keys(r.view.approvals);
  return {
    in_time: inTime.map(name).sort(), late: late.sort((a, b) => a.name.localeCompare(b.name)),
    declined: declined.sort((a, b) => a.name.localeCompare(b.name)), no_answer: Object.keys(r.names).filter((p) => !answered.has(p)).map(name).sort(),
  };
}

export function metricsJson(r: ReportInput): Record<string, unknown> {
  return { scenario: r.id, name: r.manifest.name, state: r.view.state, metric: metricName(r), synthetic: Boolean(r.synthetic),
    exported_by: r.exportedBy, final_model: r.finalModel ?? null, ...(r.finalModel === false ? { no_final_model: noModelReason(r) } : {}),
    participants: finalParticipants(r.view).map((p) => r.names[p] ?? p).sort(), answers: answersOf(r), sites: siteResults(r),
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
  const series: Series[] = [...bySite.entries()].sort(([a], [b]) => a.localeCompare(b))
    .map(([name, pts]) => ({ name, colourKey: name, points: pts.sort((a, b) => a[0] - b[0]) }));
  const lastRound = Math.max(0, ...r.history.map((h) => h.round));
  for (const s of siteResults(r)) {
    if (s.local_only !== null) series.push({ name: `${s.name} local-only`, colourKey: s.name, dashed: true, points: [[0, s.local_only], [lastRound, s.local_only]] });
  }
  return linePlot({ title: `${String(r.manifest.name)}: ${metricName(r)} per round`, xLabel: 'round', yLabel: metricName(r), series });
}

const fmt = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(3));

/** "0.941 [0.730, 0.990]": a value with its 95% interval, three decimals throughout; † marks a degenerate bootstrap interval. */
export function withInterval(value: number | null | undefined, s: ScoreInterval | undefined): string {
  if (value === null || value === undefined) return '–';
  if (!s || !Number.isFinite(s.lo) || !Number.isFinite(s.hi)) return fmt(value);
  return `${fmt(value)} [${fmt(s.lo)}, ${fmt(s.hi)}]${degenerate(s) ? '†' : ''}`;
}

/** A bootstrap interval of zero width: every resample scored the same (a perfect score stays perfect on any resample). */
const degenerate = (s: ScoreInterval): boolean => s.method === 'bootstrap' && s.lo === s.hi;

// regression: R2 is the metric, MAE (in the target's units: the training worker scales it back) stands beside it
const SCORE_LABELS: Readonly<Record<string, string>> = { accuracy: 'accuracy', auc: 'AUC', balancedAccuracy: 'balanced accuracy', dice: 'Dice', c_index: 'C-index',
  r2: 'R2', mae: 'MAE (target units)' };

/** The scores beside the task's metric that the sites reported (classification: AUC and balanced accuracy beside accuracy). */
function otherScores(metric: string, sites: readonly SiteResult[]): string[] {
  const keys = new Set(sites.flatMap((s) => Object.keys(s.scores ?? {})));
  return Object.keys(SCORE_LABELS).filter((k) => k !== metric && keys.has(k));
}

function siteTable(metric: string, sites: readonly SiteResult[]): string[] {
  const others = otherScores(metric, sites);
  const label = (k: string): string => SCORE_LABELS[k] ?? k;
  return [
    `| site | ${label(metric)} (federated) [95% CI] | ${others.map((k) => `${label(k)} [95% CI] | `).join('')}${label(metric)} (local only) [95% CI] | held-out n | rounds trained | bytes sent |`,
    `|---|---|${others.map(() => '---|').join('')}---|---|---|---|`,
    ...sites.map((s) => `| ${s.name} | ${withInterval(s.metric, s.scores?.[metric])} | ${others.map((k) => `${withInterval(s.scores?.[k]?.value, s.scores?.[k])} | `).join('')}` +
      `${withInterval(s.local_only, s.local_only_scores?.[metric])} | ${s.held_out ?? '–'} | ${s.rounds_trained ?? s.rounds} | ${s.bytes_sent} |`),
  ];
}

/** DP-SGD: the target and the epsilon each site spent on its own patients (its accountant); secure averaging, if used. */
/** Which standardiser the sites trained with (data.preprocessing.standardize): one hash when consortium-wide, else each site's. */
function inputScaleLines(sites: readonly SiteResult[]): string[] {
  const named = sites.filter((x) => x.standardiser !== null);
  if (!named.length) return [];
  const hashes = [...new Set(named.map((x) => x.standardiser!))];
  if (hashes.length === 1 && named.length === sites.length) {
    return ['', `Input scale: every site standardised its inputs with the same standardiser \`${hashes[0]!.slice(0, 16)}\` (agreed from the sites' counts, sums and sums of squares; no rows left a site).`];
  }
  return ['', `Input scale: ${hashes.length} standardisers among ${named.length} sites (${named.map((x) => `${x.name} \`${x.standardiser!.slice(0, 16)}\``).join(', ')}): per-site harmonisation, or a site that did not take the consortium's.`];
}

function privacyLines(manifest: Record<string, unknown>, sites: readonly SiteResult[]): string[] {
  const p = manifest.privacy as { secure?: boolean; dp?: { epsilon: number; delta?: number } } | undefined;
  if (!p) return [];
  const spent = sites.filter((s) => s.epsilon_spent !== null).map((s) => `${s.name} ${s.epsilon_spent!.toFixed(3)}`);
  return ['', `Privacy: ${p.secure ? 'secure (masked) averaging: no neighbour saw a site\'s model, only sums; ' : ''}` +
    (p.dp ? `DP-SGD at epsilon ${p.dp.epsilon}, delta ${p.dp.delta ?? 1e-5} per site; epsilon spent (each site's accountant): ${spent.join(', ') || 'not reported'}.` : 'no differential privacy.')];
}

export function reportMarkdown(r: ReportInput): string {
  const sites = siteResults(r);
  const m = r.manifest as { title?: string; model?: { type?: string }; averaging?: { algorithm?: string }; rounds?: { max?: number } };
  const lines = [
    `# ${m.title ?? String(r.manifest.name)}`,
    '',
    ...(r.synthetic ? ['> **SYNTHETIC DATA.** The sites trained on generated phantoms (src/data/synth.ts), not on patients.', ''] : []),
    ...(r.finalModel === false ? [`> **${r.exportedBy} holds no final model of this scenario.** ${noModelReason(r)}`, ''] : []),
    `Scenario \`${r.id}\` (content hash of the signed manifest), launched by ${r.authorName ?? 'unknown'}${r.launchedAt ? ` at ${r.launchedAt}` : ''}; state **${r.view.state}**${r.view.reason ? ` (${r.view.reason})` : ''}.`,
    `Model ${m.model?.type ?? '?'}, averaging ${m.averaging?.algorithm ?? '?'}, ${m.rounds?.max ?? '?'} rounds, decentralised (no server); no patient data left any site — only model parameters, each transfer recorded in the sender's audit log.`,
    '',
    ...siteTable(metricName(r), sites),
    ...(sites.some((x) => [...Object.values(x.scores ?? {}), ...Object.values(x.local_only_scores ?? {})].some(degenerate))
      ? ['', '† Zero-width bootstrap interval: every resample of the held-out set scored the same (typically a perfect score on a small set); it does not mean the value is certain — read it with the held-out n.'] : []),
    '',
    'Each site measured the metrics on its own held-out data (n above; one sample moves a site\'s metric by 1/n) and computed the 95% intervals there ' +
      '(accuracy: Wilson score interval; AUC, balanced accuracy, Dice, C-index, R2, MAE: percentile bootstrap, 1000 resamples of the held-out samples, seeded); ' +
      'only these aggregates left the site. Local-only: the same model and local work per round, trained on the site\'s data alone.',
    ...participationNotes(r, sites),
    ...privacyLines(r.manifest, sites),
    ...inputScaleLines(sites),
    '',
    '![convergence](convergence.svg)',
    '',
    ...answerLines(r),
    '',
    `Exported by ${r.exportedBy}. ${filesLine(r)}`,
    '',
  ];
  return lines.join('\n');
}

function filesLine(r: ReportInput): string {
  if (r.finalModel === true) return 'Files: model.onnx (this site\'s final model, ONNX opset 18), metrics.json, convergence.svg.';
  if (r.finalModel === false) return 'Files: metrics.json, convergence.svg (no model: see the note at the top).';
  return 'Files: metrics.json, convergence.svg; the final model is exported by `cohort scenario export` at a peer that trained to the end.';
}

/** Who answered how, and who made up the final model. */
function answerLines(r: ReportInput): string[] {
  const a = answersOf(r);
  const fin = finalParticipants(r.view).map((p) => r.names[p] ?? p).sort();
  const list = (xs: readonly string[]): string => xs.join(', ') || 'none';
  return [
    `Participants (trained up to the last round; their models make up the final model): ${list(fin)}.`,
    '',
    `- Approved in time (signed approvals in the launcher's run plan): ${list(a.in_time)}.`,
    `- Approved late: ${list(a.late.map((l) => (l.admitted_from_round === null ? `${l.name} (after the run plan was made, not admitted)` : `${l.name} (admitted from round ${l.admitted_from_round})`)))}.`,
    `- Declined: ${list(a.declined.map((d) => `${d.name} (${d.by === 'operator' ? 'rejected by its operator' : 'by its policy'}${d.reason ? `: ${d.reason}` : ''})`))}.`,
    ...(a.no_answer.length ? [`- No answer: ${list(a.no_answer)}.`] : []),
  ];
}

/** Why the exporting peer has no final model, from what the view says about it. */
function noModelReason(r: ReportInput): string {
  const self = Object.entries(r.names).find(([, n]) => n === r.exportedBy)?.[0];
  const p = self ? r.view.progress[self] : undefined;
  const a = answersOf(r);
  const others = finalParticipants(r.view).filter((x) => x !== self).map((x) => r.names[x] ?? x).sort();
  const ask = others.length ? ` A participant that trained to the end (${others.join(', ')}) can export it.` : '';
  if (!['finished', 'failed', 'cancelled'].includes(r.view.state)) return `The scenario is ${r.view.state}: the final model exists once it has finished.${ask}`;
  if (p?.failed) return `Its run failed (${p.failed.code}: ${p.failed.message}).${ask}`;
  if (self && finalParticipants(r.view).includes(self)) return 'It trained to the end, but its final model is not stored yet (the run has only just ended here): export again shortly.';
  const late = a.late.find((l) => l.name === r.exportedBy);
  if (late) return `Its approval came after the run plan was made${late.admitted_from_round === null ? ' and was not admitted, so it trained in no round' : ` (admitted from round ${late.admitted_from_round}) and it did not finish`}.${ask}`;
  if (a.declined.some((d) => d.name === r.exportedBy)) return `It declined the scenario and trained in no round.${ask}`;
  if (self && participantsOf(r.view).includes(self)) return `It did not train to the end (dropped or stopped before the last round).${ask}`;
  return `It never approved the scenario, so it trained in no round.${ask}`;
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
