/**
 * `cohort scenario launch FILE [--follow] | list | status ID | approve ID | reject ID --reason R | cancel ID | export ID --out DIR`
 * Every subcommand talks to the running peer daemon through its admin API (`--peer DIR|CONFIG`, default $COHORT_PEER or .),
 * except `check FILE` (the peer's admission decision and cost estimate worked out offline: src/peer/admission.ts), `validate FILE`
 * (schema, run plan and manifest hash) and `new --template NAME` (a manifest from scenarios/), which need no daemon.
 * `launch` warns (stderr) when the launcher's own peer will not take part (its approval policy or data); `export` writes the report
 * in any case and exits 2 (NO_FINAL_MODEL) when this peer holds no final model; the site table shows held-out n and 95% intervals.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { AdminClient } from '../../peer/client.ts';
import type { ScenarioView } from '../../scenario/lifecycle.ts';
import type { Standing } from '../../scenario/participants.ts';
import { answersOf, convergenceSvg, finalParticipants, metricsJson, reportMarkdown, siteResults, withInterval, type ReportInput, type SiteResult } from '../../scenario/report.ts';
import { CohortError } from '../../util/errors.ts';

export interface Detail {
  id: string; manifest: Record<string, unknown>; view: ScenarioView; names: Record<string, string>; authorName?: string; launchedAt?: string; run?: unknown;
  participants?: string[]; standing?: Standing;
  refused?: { peer: string; name: string | null; channel: string; reason: string; count: number }[];
}
interface PeerOpt { peer: string; json?: boolean }

const peerOption = (c: Command): Command => c.option('--peer <dir>', 'peer directory or its cohort.json', process.env.COHORT_PEER ?? '.').option('--json', 'print JSON on stdout');
const client = (o: PeerOpt): AdminClient => AdminClient.forPeer(o.peer);
const out = (o: PeerOpt, value: unknown, human: () => string): void => {
  process.stdout.write(o.json ? JSON.stringify(value) + '\n' : human() + '\n');
};

// scenarios/ is three levels up from src/cli/commands/ and from dist/cli/commands/ alike
const SCENARIOS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'scenarios');
function templates(): string[] {
  try { return readdirSync(SCENARIOS_DIR).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort(); } catch { return []; }
}

function readManifest(file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new CohortError('MANIFEST_READ', `cannot read manifest ${file}: ${(e as Error).message}`, 'pass a JSON file such as scenarios/wdbc-radiomics.json');
  }
}

/** The other scores a site reported beside its metric (classification: AUC and balanced accuracy), with their intervals. */
function besideMetric(s: SiteResult, metric: string): string {
  const label: Record<string, string> = { auc: 'AUC', balancedAccuracy: 'bal.acc' };
  return Object.keys(label).filter((k) => k !== metric && s.scores?.[k]).map((k) => `  ${label[k]} ${withInterval(s.scores![k]!.value, s.scores![k])}`).join('');
}

export function siteTable(d: Detail): string {
  const rows = siteResults(d).map((s) => {
    const p = d.view.progress[s.peerId];
    const metric = p?.metricName ?? 'metric';
    return `  ${s.name.padEnd(12)} round ${String(s.rounds - 1).padStart(3)}  loss ${p?.loss?.toFixed(4) ?? '  –   '}  ${metric.padEnd(8)} ${withInterval(s.metric, s.scores?.[metric]).padEnd(5)}` +
      `${besideMetric(s, metric)}  n ${s.held_out ?? '–'}  ${s.local_only !== null ? `local-only ${withInterval(s.local_only, s.local_only_scores?.[metric])}  ` : ''}${(s.bytes_sent / 1024).toFixed(0).padStart(6)} KiB${s.done ? '  done' : ''}`;
  });
  const name = (p: string): string => d.names[p] ?? p.slice(-8);
  const extra: string[] = [];
  // once the run is over, participants are the peers that trained to the end; the rest of the plan is named apart
  const ended = ['finished', 'failed', 'cancelled'].includes(d.view.state);
  const shown = ended && d.view.run ? finalParticipants(d.view) : d.participants ?? [];
  if (shown.length) extra.push(`  participants: ${shown.map(name).sort().join(', ')}`);
  const notToEnd = ended ? (d.participants ?? []).filter((p) => !shown.includes(p)) : [];
  if (notToEnd.length) extra.push(`  in the run plan, not trained to the end: ${notToEnd.map(name).sort().join(', ')}`);
  const answers = answersOf(d);
  if (answers.late.length) extra.push(`  approved late: ${answers.late.map((l) => `${l.name} (${l.admitted_from_round === null ? 'not admitted' : `admitted from round ${l.admitted_from_round}`})`).join(', ')}`);
  if (d.standing?.dropped.length) extra.push(`  dropped (silent): ${d.standing.dropped.map((x) => `${name(x.peer)} after round ${x.lastRound}`).join(', ')}`);
  if (d.standing?.failed.length) extra.push(`  failed: ${d.standing.failed.map((p) => `${name(p)} (${d.view.progress[p]?.failed?.code ?? '?'}: ${d.view.progress[p]?.failed?.message ?? ''})`).join(', ')}`);
  const trained = Object.entries(d.view.progress).filter(([, p]) => p.roundsTrained !== undefined);
  if (trained.length) extra.push(`  rounds trained: ${trained.map(([p, x]) => `${name(p)} ${x.roundsTrained}`).join(', ')}`);
  const declines = Object.entries(d.view.declines);
  if (declines.length) extra.push(`  declined: ${declines.map(([p, a]) => `${name(p)} (${a.reason ?? 'no reason given'})`).join('; ')}`);
  const reports = Object.entries(d.view.progress).filter(([, x]) => x.suspicion);
  if (reports.length) extra.push(`  suspicion reports: ${reports.map(([p, x]) => `${name(p)} names ${x.suspicion!.report.suspects.map((s) => `${name(s.peer)} (${s.outliers}/${s.observed} ${x.suspicion!.report.aggregator === 'clipped' ? 'clipped' : 'trimmed'})`).join(', ')} after round ${x.suspicion!.report.round}`).join('; ')}`);
  if (d.refused?.length) extra.push(`  refused: ${d.refused.map((r) => `${r.name ?? r.peer.slice(-8)} ${r.channel} ${r.reason} x${r.count}`).join('; ')}`);
  // privacy (docs/privacy.md): each site's epsilon spent (its accountant) and secure averaging's counters
  const eps = Object.entries(d.view.progress).filter(([, x]) => x.epsilon !== undefined);
  if (eps.length) extra.push(`  epsilon spent: ${eps.map(([p, x]) => `${name(p)} ${x.epsilon!.toFixed(3)}`).join(', ')}`);
  const sec = Object.entries(d.view.progress).filter(([, x]) => x.secure);
  if (sec.length) extra.push(`  secure averaging: ${sec.map(([p, x]) => `${name(p)} ${x.secure!.maskedSent} masked sent, ${x.secure!.recovered} dropped rebuilt, ${x.secure!.roundsNotMixed} rounds not mixed, ${x.secure!.keyBurnt ?? 0} keys burnt, refused ${x.secure!.sharesRefused} shares / ${x.secure!.maskedRefused} masked / ${x.secure!.refusedSetup} setup`).join('; ')}`);
  const approvals = `approvals ${answers.in_time.length} in time${answers.late.length ? `, ${answers.late.length} late` : ''}`;
  return [`${d.id.slice(0, 12)} ${String(d.manifest.name)}: ${d.view.state}${d.view.reason ? ` (${d.view.reason})` : ''}, ${approvals}, participants ${shown.length}`, ...rows, ...extra].join('\n');
}

/**
 * Poll a scenario until it ends, redrawing the site table on `to` when it changes (in place on a terminal); silent with `json`.
 * Shared by `cohort scenario launch --follow` (stderr, so --json stays clean) and `npm run demo` (stdout).
 */
export async function followScenario(c: AdminClient, id: string, opts: { json: boolean; to: NodeJS.WriteStream }): Promise<Detail> {
  let last = '';
  for (;;) {
    const d = await c.get<Detail>(`/scenarios/${id}`);
    const text = siteTable(d);
    if (text !== last && !opts.json) opts.to.write(`${opts.to.isTTY && last ? `\x1b[${last.split('\n').length}A\x1b[J` : ''}${text}\n`);
    last = text;
    if (['finished', 'failed', 'cancelled'].includes(d.view.state)) return d;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function noFinalModel(peer: string, why: string, participants: readonly string[]): CohortError {
  return new CohortError('NO_FINAL_MODEL', `${peer} holds no final model of this scenario. ${why} The report (report.md, metrics.json, convergence.svg) was written without it.`,
    participants.length ? `export the model at a peer that trained to the end (${participants.join(', ')}): cohort scenario export ID --out DIR --peer <its folder>` : 'no peer trained to the end of this scenario');
}

/**
 * Before a launch: will this peer (the launcher's own) take part? Its approval policy and data decide it as they would on receipt
 * (src/peer/admission.ts: evaluateManifest). A warning, never a refusal: a researcher may launch for others on purpose.
 */
async function selfParticipation(peer: string, manifest: Record<string, unknown>): Promise<{ decision: string; warning?: string } | undefined> {
  try {
    const { evaluateManifest } = await import('../../peer/admission.ts');
    const dir = resolve(peer);
    const config = existsSync(dir) && statSync(dir).isDirectory() ? join(dir, 'cohort.json') : dir;
    const r = await evaluateManifest(config, manifest);
    if (r.decision === 'approve') return { decision: r.decision };
    const why = r.reasons.join('; ');
    return { decision: r.decision, warning: r.decision === 'manual'
      ? `this peer (${r.peer}) will not take part unless its operator approves before the run starts (${why}): cohort scenario approve ID; otherwise it will hold no final model of its own`
      : `this peer (${r.peer}) will not take part (${why}); it will hold no final model: export one from a participant` };
  } catch {
    return undefined; // the config cannot be read here (a remote --peer): the daemon still decides as usual
  }
}

export function registerScenario(program: Command): void {
  const sc = program.command('scenario').description('launch, approve and follow training scenarios (talks to the running peer daemon)');
  peerOption(sc.command('launch').description('sign a manifest with this peer\'s key and announce it (researchers only)').argument('<file>', 'scenario manifest (JSON)'))
    .option('--follow', 'follow progress until the scenario ends')
    .option('--min-peers <n>', 'approvals needed before the run starts')
    .option('--run <label>', 'run an already launched manifest again as a new scenario')
    .action(async (file: string, o: PeerOpt & { follow?: boolean; minPeers?: string; run?: string }) => {
      const manifest = readManifest(file);
      const launch = { ...(manifest.launch as Record<string, unknown> | undefined), ...(o.minPeers ? { minPeers: Number(o.minPeers) } : {}), ...(o.run ? { run: o.run } : {}) };
      const c = client(o);
      const signed = Object.keys(launch).length ? { ...manifest, launch } : manifest;
      const { id } = await c.post<{ id: string }>('/scenarios', { manifest: signed });
      const self = await selfParticipation(o.peer, signed);
      if (self?.warning) process.stderr.write(`cohort: warning: ${self.warning.replace('approve ID', `approve ${id.slice(0, 12)}`)}\n`);
      if (!o.follow) return out(o, { id, ...(self ? { this_peer: self } : {}) }, () => `launched ${id}`);
      // the site table is the command's result: stdout (with --json only the final document is printed)
      if (!o.json) process.stdout.write(`launched ${id}\n`);
      const d = await followScenario(c, id, { json: Boolean(o.json), to: process.stdout });
      out(o, { id, state: d.view.state, sites: siteResults(d) }, () => `scenario ${d.view.state}`);
    });
  sc.command('validate').description('check a manifest offline (no daemon): schema, run plan, and its manifest hash').argument('<file>', 'scenario manifest (JSON)')
    .option('--json', 'print JSON on stdout')
    .action(async (file: string, o: { json?: boolean }) => {
      const [{ parseManifest }, { scenarioId }] = await Promise.all([import('../../scenario/manifest.ts'), import('../../scenario/signing.ts')]);
      const raw = readManifest(file);
      const m = parseManifest(raw, file);
      const { runPlanOf } = await import('../../peer/plan.ts');
      const plan = runPlanOf(raw);
      const doc = { file, valid: true, name: m.name, hash: scenarioId(raw), model: (m.model as { type?: string }).type ?? null, algorithm: m.averaging.algorithm, rounds: m.rounds.max, dataset: plan.dataset };
      out({ peer: '.', json: o.json }, doc, () => `${file}: valid scenario "${doc.name}" (${doc.model ?? 'model'}, ${doc.algorithm}, ${doc.rounds} rounds, dataset ${doc.dataset}); manifest hash ${doc.hash}`);
    });
  sc.command('new').description('write a new manifest from a template (offline): the examples in scenarios/')
    .requiredOption('--template <name>', `template: ${templates().join(', ')}`)
    .option('--name <name>', 'the new scenario\'s name (lower-case letters, digits, dashes)')
    .option('--out <file>', 'write here (default: print on stdout)')
    .option('--json', 'print JSON on stdout: {template, out, manifest}')
    .action(async (o: { template: string; name?: string; out?: string; json?: boolean }) => {
      const file = join(SCENARIOS_DIR, `${o.template.replace(/\.json$/, '')}.json`);
      if (!/^[a-z0-9-]+(\.json)?$/.test(o.template) || !existsSync(file)) throw new CohortError('UNKNOWN_TEMPLATE', `no template "${o.template}"`, `templates: ${templates().join(', ')}`);
      const m = { ...readManifest(file), ...(o.name ? { name: o.name } : {}) };
      const { parseManifest } = await import('../../scenario/manifest.ts');
      parseManifest(m, o.name ? `--name ${o.name}` : file);
      const text = JSON.stringify(m, null, 2) + '\n';
      if (o.out && existsSync(o.out)) throw new CohortError('FILE_EXISTS', `${o.out} already exists`, 'choose another --out');
      if (o.out) writeFileSync(o.out, text);
      if (o.json) return void process.stdout.write(JSON.stringify({ template: o.template, out: o.out ?? null, manifest: m }) + '\n');
      process.stdout.write(o.out ? `wrote ${o.out} from template ${o.template}; check it with \`cohort scenario validate ${o.out}\`\n` : text);
    });
  peerOption(sc.command('check').description('would this peer take part? its admission decision and cost estimate for a manifest, offline').argument('<file>', 'scenario manifest (JSON)'))
    .option('--author <peer>', 'the launcher (peer ID or roster name; default: this peer)')
    .action(async (file: string, o: PeerOpt & { author?: string }) => {
      const { evaluateManifest } = await import('../../peer/admission.ts');
      const dir = resolve(o.peer);
      const config = existsSync(dir) && statSync(dir).isDirectory() ? join(dir, 'cohort.json') : dir;
      const r = await evaluateManifest(config, readManifest(file), o.author ? { author: o.author } : {});
      const e = r.estimate;
      out(o, r, () => [`${r.peer}: ${r.decision} (scenario ${r.scenario.slice(0, 12)})`, ...r.reasons.map((x) => `  - ${x}`),
        ...(e ? [`  estimate: ${e.parameters} parameters, ${(e.memory_bytes / 1024 ** 2).toFixed(1)} MiB memory, ${(e.bytes_per_round / 1024).toFixed(0)} KiB sent per round, ${e.rounds} rounds x ${e.epochs_per_round} epochs, ${(e.duration_ms / 60_000).toFixed(1)} min`] : [])].join('\n'));
    });
  peerOption(sc.command('list').description('every scenario this peer knows')).action(async (o: PeerOpt) => {
    const rows = await client(o).get<{ id: string; name: string; state: string; approvals: number; participants: number; mine: string }[]>('/scenarios');
    out(o, rows, () => rows.map((r) => `${r.id.slice(0, 12)}  ${r.name.padEnd(28)} ${r.state.padEnd(10)} approvals ${r.approvals}  participants ${r.participants}  this peer: ${r.mine}`).join('\n') || 'no scenarios');
  });
  peerOption(sc.command('status').description('per-site round, loss, metric and bytes of one scenario').argument('<id>')).action(async (id: string, o: PeerOpt) => {
    const d = await client(o).get<Detail>(`/scenarios/${id}`);
    out(o, d, () => siteTable(d));
  });
  for (const op of ['approve', 'reject', 'cancel'] as const) {
    peerOption(sc.command(op).description(op === 'cancel' ? 'cancel a scenario (its launcher only)' : `${op} a scenario on this peer (bound to its exact manifest)`).argument('<id>')).option('--reason <text>', 'why (recorded in the audit log and sent to peers)')
      .action(async (id: string, o: PeerOpt & { reason?: string }) => {
        if (op === 'reject' && !o.reason) throw new CohortError('REASON_REQUIRED', 'a rejection needs a reason', 'add --reason "..."');
        const r = await client(o).post<{ id: string; state: string }>(`/scenarios/${id}/${op}`, o.reason ? { reason: o.reason } : {});
        out(o, r, () => `${op}: ${r.id.slice(0, 12)} (${r.state})`);
      });
  }
  peerOption(sc.command('export').description('write this peer\'s final model and the scenario report').argument('<id>')).requiredOption('--out <dir>', 'folder for model.onnx, metrics.json, report.md, convergence.svg')
    .action(async (id: string, o: PeerOpt & { out: string }) => {
      const d = await client(o).get<Detail & { history: ReportInput['history']; modelOnnxBase64?: string; exportedBy: string; synthetic?: boolean }>(`/scenarios/${id}/export`);
      const dir = resolve(o.out);
      mkdirSync(dir, { recursive: true });
      const input: ReportInput = { ...d, finalModel: Boolean(d.modelOnnxBase64) };
      const files: string[] = [];
      if (d.modelOnnxBase64) {
        writeFileSync(join(dir, 'model.onnx'), Buffer.from(d.modelOnnxBase64, 'base64'));
        files.push('model.onnx');
      }
      const metrics = metricsJson(input);
      writeFileSync(join(dir, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
      writeFileSync(join(dir, 'convergence.svg'), convergenceSvg(input));
      writeFileSync(join(dir, 'report.md'), reportMarkdown(input));
      files.push('metrics.json', 'convergence.svg', 'report.md');
      out(o, { dir, files, final_model: input.finalModel }, () => `wrote ${files.map((f) => join(dir, f)).join(', ')}`);
      // the report is written (it says why), but an export without the model is not what was asked for: exit non-zero
      if (!d.modelOnnxBase64) throw noFinalModel(d.exportedBy, String(metrics.no_final_model ?? ''), finalParticipants(d.view).map((p) => d.names[p] ?? p).sort());
    });
}
