/**
 * The admin API's routes (all behind the bearer token, on 127.0.0.1): what the CLI's `cohort status|scenario|audit` call.
 *   GET  /status                      peer, connections, scenarios, device, disk
 *   GET  /scenarios                   list;  GET /scenarios/:id  manifest + view + participants, standing, refused senders + this peer's run
 *   POST /scenarios {manifest}        launch (researchers only)
 *   POST /scenarios/:id/approve|reject|cancel {reason?}
 *   GET  /scenarios/:id/export        final model (base64 ONNX, this peer's), per-site metrics and history
 *   GET  /audit?scenario=&since=&limit=   the audit log (+ chain verification); limit: the most recent N
 *   GET  /rejected                    announcements this peer refused (forged, tampered, not a researcher)
 *   POST /dial {addr}                 connect to a member by multiaddr
 * Scenario ids may be given as a unique prefix (at least 6 characters).
 */
import { z } from 'zod';
import { CohortError } from '../util/errors.ts';
import type { Route } from './admin.ts';
import type { Daemon } from './daemon.ts';
import { runPlanOf } from './plan.ts';
import { participantsOf, standing } from '../scenario/participants.ts';

const ReasonBody = z.object({ reason: z.string().max(2000).optional() }).passthrough();
const LaunchBody = z.object({ manifest: z.record(z.string(), z.unknown()) }).strict();
const DialBody = z.object({ addr: z.string().min(1) }).strict();

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) throw new CohortError('BAD_REQUEST', `bad request body: ${r.error.issues[0]?.message ?? ''}`, 'use the cohort CLI');
  return r.data;
}

export function resolveId(d: Daemon, given: string): string {
  const ids = d.book.list().map((e) => e.signed.id).filter((id) => id.startsWith(given));
  if (given.length < 6 || ids.length === 0) throw new CohortError('UNKNOWN_SCENARIO', `no scenario ${given}`, 'list them with `cohort scenario list` (ids may be shortened to 6+ characters)');
  if (ids.length > 1) throw new CohortError('AMBIGUOUS_ID', `${given} matches ${ids.length} scenarios`, 'give more characters of the id');
  return ids[0] as string;
}

/**
 * One scenario as this peer sees it: manifest, merged view, and the participant rule applied to it (who takes part, who is
 * done, failed or dropped as silent, who was refused and why).
 */
function scenarioDetail(d: Daemon, id: string): Record<string, unknown> {
  const entry = d.book.get(id);
  if (!entry) throw new CohortError('UNKNOWN_SCENARIO', `no scenario ${id}`, 'list them with `cohort scenario list`');
  const names = Object.fromEntries(d.node.roster.current.members.map((m) => [m.peerId, m.name]));
  let clockRound = -1;
  let dropAfterRounds = 3;
  try {
    const plan = runPlanOf(entry.signed.manifest);
    dropAfterRounds = plan.launch.dropAfterRounds;
    if (entry.view.run) clockRound = Math.floor((Date.now() - entry.view.run.startAt) / plan.manifest.averaging.roundMs);
  } catch { /* a manifest this peer cannot run: no standing beyond the view */ }
  return { id, author: entry.signed.author, authorName: names[entry.signed.author], launchedAt: entry.signed.launchedAt,
    manifest: entry.signed.manifest, view: entry.view, names, run: d.runs.get(id)?.status,
    participants: participantsOf(entry.view), standing: standing(entry.view, { clockRound, dropAfterRounds }),
    refused: d.refusals.list(id).map((r) => ({ ...r, name: names[r.peer] ?? null })) };
}

export function adminRoutes(d: Daemon): Route[] {
  return [
    { method: 'GET', path: /^\/status$/, handle: async () => d.statusReport() },
    { method: 'GET', path: /^\/scenarios$/, handle: async () => d.book.list().map(({ signed, view }) => ({
      id: signed.id, name: signed.manifest.name, state: view.state, author: signed.author, launchedAt: signed.launchedAt,
      approvals: Object.keys(view.approvals).length, participants: participantsOf(view).length, mine: view.approvals[d.self] ? 'approved' : view.rejections[d.self] ? 'rejected' : view.declines[d.self] ? 'declined' : 'pending' })) },
    { method: 'GET', path: /^\/scenarios\/(?<id>[0-9a-f]+)$/, handle: async ({ params }) => scenarioDetail(d, resolveId(d, params.id ?? '')) },
    { method: 'POST', path: /^\/scenarios$/, handle: async ({ body }) => {
      const signed = await d.coordinator.launch(parse(LaunchBody, body).manifest);
      return { id: signed.id };
    } },
    ...(['approve', 'reject'] as const).map((op): Route => ({ method: 'POST', path: new RegExp(`^/scenarios/(?<id>[0-9a-f]+)/${op}$`), handle: async ({ params, body }) => {
      const view = await d.coordinator.answer(resolveId(d, params.id ?? ''), op, parse(ReasonBody, body).reason);
      return { id: view.id, state: view.state };
    } })),
    { method: 'POST', path: /^\/scenarios\/(?<id>[0-9a-f]+)\/cancel$/, handle: async ({ params, body }) => {
      const view = await d.coordinator.cancel(resolveId(d, params.id ?? ''), parse(ReasonBody, body).reason);
      return { id: view.id, state: view.state };
    } },
    { method: 'GET', path: /^\/scenarios\/(?<id>[0-9a-f]+)\/export$/, handle: async ({ params }) => {
      const id = resolveId(d, params.id ?? '');
      const model = await d.store.checkpoints.get(`final/${id}/model.onnx`);
      await d.audit.append({ kind: 'export', to: 'local', what: 'exported the final model and metrics', scenario: id, bytes: model?.byteLength ?? 0 });
      const dataset = (d.book.get(id)?.signed.manifest.data as { selector?: { dataset?: string } } | undefined)?.selector?.dataset;
      return { ...scenarioDetail(d, id), exportedBy: d.cfg.name, synthetic: Boolean(dataset && (await d.data.get(dataset))?.synthetic), history: await d.book.history(id), final: await d.store.scenarios.get(`final/${id}`),
        modelOnnxBase64: model ? Buffer.from(model).toString('base64') : undefined };
    } },
    { method: 'GET', path: /^\/audit$/, handle: async ({ query }) => {
      const scenario = query.get('scenario') ?? undefined;
      const all = await d.audit.list({ scenario: scenario ? resolveId(d, scenario) : undefined, since: Number(query.get('since') ?? 0) });
      const limit = Number(query.get('limit') ?? 0);
      return { verify: await d.audit.verify(), total: all.length, entries: limit > 0 ? all.slice(-limit) : all };
    } },
    { method: 'GET', path: /^\/rejected$/, handle: async () => d.coordinator.rejected },
    { method: 'POST', path: /^\/dial$/, handle: async ({ body }) => {
      await d.dial(parse(DialBody, body).addr);
      return { ok: true };
    } },
  ];
}
