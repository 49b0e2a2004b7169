/**
 * The admin API's routes (all behind the bearer token, on 127.0.0.1): what the CLI's `cohort status|scenario|audit` call.
 *   GET  /status                      peer, connections, scenarios, device, disk
 *   GET  /scenarios                   list;  GET /scenarios/:id  manifest + view + participants, standing, refused senders + this peer's run
 *   POST /scenarios {manifest}        launch (researchers only); idempotent by manifest hash: the same manifest (in flight or
 *                                     launched before) answers the same id ({ id, existing: true } when it was there before)
 *   POST /scenarios/:id/approve|reject|cancel {reason?}
 *   GET  /scenarios/:id/export        final model (base64 ONNX, this peer's), per-site metrics and history
 *   GET  /audit?scenario=&limit=&before=   the audit log, newest page first (O(page): a scenario index, never the whole log);
 *                                     `next` is the `before` of the older page; no limit: all (oldest first); verify: the live verdict
 *   GET  /audit/verify                the whole chain against the signed head: intact, or intact up to N and M missing after it
 *   GET  /audit/witnessed             the signed audit heads neighbours announced (what this peer can attest for them)
 *   GET  /rejected                    announcements this peer refused (forged, tampered, not a researcher)
 *   POST /dial {addr}                 connect to a member by multiaddr
 *   GET  /metrics                     Prometheus exposition (text/plain; src/peer/metrics.ts)
 * Scenario ids may be given as a unique prefix (at least 6 characters).
 */
import { z } from 'zod';
import { CohortError } from '../util/errors.ts';
import { RawReply, type Route } from './admin.ts';
import type { Daemon } from './daemon.ts';
import { runPlanOf } from './plan.ts';
import { clockRound, participantsOf, standing } from '../scenario/participants.ts';
import { witnessed } from '../store/head.ts';
import { scenarioId } from '../scenario/signing.ts';
import { dashboardRoutes } from './dashboard.ts';

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
  let round = -1;
  let dropAfterRounds = 3;
  try {
    const plan = runPlanOf(entry.signed.manifest);
    dropAfterRounds = plan.launch.dropAfterRounds;
    if (entry.view.run) round = clockRound(entry.view.run, plan.manifest.averaging.roundMs);
  } catch { /* a manifest this peer cannot run: no standing beyond the view */ }
  return { id, author: entry.signed.author, authorName: names[entry.signed.author], launchedAt: entry.signed.launchedAt,
    manifest: entry.signed.manifest, view: entry.view, names, run: d.runs.get(id)?.status,
    participants: participantsOf(entry.view), standing: standing(entry.view, { clockRound: round, dropAfterRounds }),
    refused: d.refusals.list(id).map((r) => ({ ...r, name: names[r.peer] ?? null })) };
}

export function adminRoutes(d: Daemon): Route[] {
  // launch is idempotent by manifest hash: identical launches in flight share one (one scenario, one answer for all)
  const launching = new Map<string, Promise<{ id: string }>>();
  return [
    { method: 'GET', path: /^\/status$/, handle: async () => d.statusReport() },
    { method: 'GET', path: /^\/scenarios$/, handle: async () => d.book.list().map(({ signed, view }) => ({
      id: signed.id, name: signed.manifest.name, state: view.state, author: signed.author, launchedAt: signed.launchedAt,
      approvals: Object.keys(view.approvals).length, participants: participantsOf(view).length, mine: view.approvals[d.self] ? 'approved' : view.rejections[d.self] ? 'rejected' : view.declines[d.self] ? 'declined' : 'pending' })) },
    { method: 'GET', path: /^\/scenarios\/(?<id>[0-9a-f]+)$/, handle: async ({ params }) => scenarioDetail(d, resolveId(d, params.id ?? '')) },
    { method: 'POST', path: /^\/scenarios$/, handle: async ({ body }) => {
      const manifest = parse(LaunchBody, body).manifest;
      const key = scenarioId(manifest);
      // the same manifest again is the same scenario: its id, not a second launch (a new run needs a new `launch.run` label)
      if (d.book.has(key)) return { id: key, existing: true };
      let p = launching.get(key);
      if (!p) {
        p = d.coordinator.launch(manifest).then((s) => ({ id: s.id }));
        launching.set(key, p);
        void p.catch(() => undefined).finally(() => launching.delete(key));
      }
      return p;
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
      const given = query.get('scenario');
      const scenario = given ? resolveId(d, given) : undefined;
      const limit = Number(query.get('limit') ?? 0);
      const before = query.get('before') === null ? undefined : Number(query.get('before'));
      if (!(limit > 0)) {
        const all = await d.audit.list({ scenario, since: Number(query.get('since') ?? 0) });
        return { verify: await d.audit.verifyCached(), total: all.length, entries: all };
      }
      const page = await d.audit.page({ scenario, limit, before });
      // oldest first within the page, as the whole-log listing
      return { verify: await d.audit.verifyCached(), total: scenario ? undefined : page.head + 1, entries: page.entries.reverse(), next: page.next, damaged_ranges: page.damaged_ranges };
    } },
    { method: 'GET', path: /^\/audit\/verify$/, handle: async () => d.audit.verify() },
    { method: 'GET', path: /^\/audit\/witnessed$/, handle: async () => witnessed(d.store) },
    { method: 'GET', path: /^\/rejected$/, handle: async () => d.coordinator.rejected },
    { method: 'GET', path: /^\/metrics$/, handle: async () => new RawReply(d.metrics.contentType, await d.metrics.render()) },
    { method: 'POST', path: /^\/dial$/, handle: async ({ body }) => {
      await d.dial(parse(DialBody, body).addr);
      return { ok: true };
    } },
    ...dashboardRoutes(d), // the web dashboard: its pages, static files and JSON (src/peer/dashboard.ts)
  ];
}
