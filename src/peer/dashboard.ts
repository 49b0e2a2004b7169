/**
 * The local web dashboard, served by each peer on its admin listener (127.0.0.1, the same token as the CLI):
 *   GET  /  or /ui                 the app, or (no valid token) the login page with status 401 and no data
 *   POST /ui/login  token=...      checks the token, sets the cookie `cohort_admin_<port>` (HttpOnly, SameSite=Strict), 303 to /ui
 *   POST /ui/logout                clears it
 *   GET  /ui/scenario/:id          the app on one scenario; 404 when this peer knows no such scenario; 401 without the token
 *   GET  /ui/static/:file          the page's script and styles, and uPlot (served from node_modules: no CDN, no external call)
 *   GET  /ui/api/overview          this peer, the roster, the network's edges (own + heard in heartbeats) with bytes per edge,
 *                                  per-peer model bytes (audit log) and wire bytes (net counters), scenarios
 *   GET  /ui/api/scenarios/:id     manifest, view, participants, history (metric per round per site), audit entries of it
 *   POST /ui/api/scenarios/:id/approve|reject|cancel {hash, reason?}   only when `hash` is the full manifest hash shown
 *   GET  /ui/api/scenarios/:id/model.onnx | report.md   downloads (the model's export is audited, as `cohort scenario export`)
 * The audit log and its chain check come from the ordinary routes (/audit?limit=, /audit/verify).
 * Everything the page shows is written with textContent / DOM nodes, never as HTML (names and reasons are peer-supplied text).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CohortError } from '../util/errors.ts';
import { reportMarkdown } from '../scenario/report.ts';
import { participantsOf } from '../scenario/participants.ts';
import type { RawContext, Route } from './admin.ts';
import type { Daemon } from './daemon.ts';
import { resolveId } from './routes.ts';
import { liveLinks, networkEdges, TransferLedger } from './topology.ts';

// dashboard/ sits at the repository root: two levels up from src/peer/ and from dist/peer/ alike
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const STATIC: Readonly<Record<string, { file: string; type: string }>> = {
  'app.js': { file: join(ROOT, 'dashboard', 'app.js'), type: 'text/javascript; charset=utf-8' },
  'app.css': { file: join(ROOT, 'dashboard', 'app.css'), type: 'text/css; charset=utf-8' },
  'uPlot.js': { file: join(ROOT, 'node_modules', 'uplot', 'dist', 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uPlot.css': { file: join(ROOT, 'node_modules', 'uplot', 'dist', 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
};
const cache = new Map<string, Buffer>();

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
  'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'cache-control': 'no-store', connection: 'close',
};

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string | string[]> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><link rel="stylesheet" href="/ui/static/uPlot.css"><link rel="stylesheet" href="/ui/static/app.css"></head>
<body>${body}</body></html>`;
}

function loginPage(name: string, message?: string): string {
  return page(`Cohort · ${name} · sign in`, `<main class="login"><h1>Cohort</h1><p>Dashboard of the peer <b>${escapeHtml(name)}</b>.</p>
<form method="post" action="/ui/login"><label>Admin token<br><input name="token" type="password" autocomplete="off" autofocus required></label>
<button type="submit">Sign in</button></form>${message ? `<p class="error" role="alert">${escapeHtml(message)}</p>` : ''}
<p class="hint">The token is in <code>admin.token</code> in the peer's directory (readable by the operator only). It changes at every start.</p></main>`);
}

function appPage(name: string): string {
  return page(`Cohort · ${name}`, `<div id="app" data-peer="${escapeHtml(name)}"><p>loading…</p></div><script src="/ui/static/uPlot.js"></script><script type="module" src="/ui/static/app.js"></script>`);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 64 * 1024) break;
    chunks.push(c as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function cookieName(ctx: RawContext): string {
  return `cohort_admin_${ctx.req.socket.localPort ?? 0}`;
}

/** The scenario id from a path, or undefined when this peer knows no such scenario. */
function knownScenario(d: Daemon, given: string): string | undefined {
  try { return resolveId(d, given); } catch { return undefined; }
}

function requireHash(id: string, body: unknown): string | undefined {
  const b = (body ?? {}) as { hash?: unknown; reason?: unknown };
  if (b.hash !== id) throw new CohortError('MANIFEST_CHANGED', 'the decision names another manifest hash than this scenario\'s', 'reload the page and decide on the manifest shown');
  if (b.reason !== undefined && (typeof b.reason !== 'string' || b.reason.length > 2000)) throw new CohortError('BAD_REQUEST', 'reason must be a string of at most 2000 characters', 'shorten the reason');
  return typeof b.reason === 'string' && b.reason.trim() ? b.reason.trim() : undefined;
}

/**
 * This peer, the roster, the network's edges (own live links and those other members announce in their heartbeats) with bytes
 * per edge, and per peer: model bytes from the audit log (durable) and wire bytes from the net counters (since this start).
 */
async function overview(d: Daemon, ledger: TransferLedger): Promise<Record<string, unknown>> {
  const net = d.node.metrics();
  const members = d.node.roster.current.members;
  const memberIds = new Set(members.map((m) => m.peerId));
  const conns = d.node.libp2p.getConnections();
  const own = liveLinks(d.node, d.self);
  const connected = new Set(own.map((l) => l.peer));
  const models = await ledger.totals();
  // a heartbeat is fresh for three intervals (at least 30 s: a loaded machine publishes late); older ones drop their links
  const edges = networkEdges(d.self, own, d.coordinator.heartbeats, memberIds, Date.now(), Math.max(30_000, 3 * d.cfg.heartbeatMs));
  return {
    self: { name: d.cfg.name, peerId: d.self, device: d.deviceInUse(), roles: d.node.roster.current.roles(d.self) },
    consortium: d.node.roster.current.consortium, rosterVersion: d.node.roster.current.version,
    members: members.map((m) => {
      const hb = d.coordinator.heartbeats.get(m.peerId);
      const t = net.byPeer[m.peerId];
      const mt = models.get(m.peerId);
      return { name: m.name, peerId: m.peerId, roles: m.roles, self: m.peerId === d.self, connected: m.peerId === d.self || connected.has(m.peerId),
        lastHeartbeatSecondsAgo: hb ? Math.round((Date.now() - hb.at) / 1000) : null, load: hb?.load ?? null, device: hb?.device ?? null,
        bytesIn: t?.bytesIn ?? 0, bytesOut: t?.bytesOut ?? 0, messagesIn: t?.messagesIn ?? 0, messagesOut: t?.messagesOut ?? 0,
        modelBytesSent: mt?.modelBytesSent ?? 0, modelBytesReceived: mt?.modelBytesReceived ?? 0, modelsSent: mt?.modelsSent ?? 0, modelsReceived: mt?.modelsReceived ?? 0 };
    }),
    edges: edges.map((e) => ({ ...e, addrs: e.seen === 'self' ? conns.filter((c) => c.remotePeer.toString() === e.to).map((c) => c.remoteAddr.toString()) : [] })),
    // gossip is published to the mesh, not to one peer: what this peer broadcast, by message kind
    broadcast: net.byPeer['*'] ?? null,
    byProtocol: net.byProtocol,
    scenarios: d.book.list().map(({ signed, view }) => ({ id: signed.id, name: signed.manifest.name, state: view.state, launchedAt: signed.launchedAt,
      approvals: Object.keys(view.approvals).length, participants: participantsOf(view).length,
      mine: view.approvals[d.self] ? 'approved' : view.rejections[d.self] ? 'rejected' : view.declines[d.self] ? 'declined' : 'pending' })),
    // the privacy ledger per dataset (src/privacy/peer-ledger.ts), as `cohort status` shows it
    privacy: await d.coordinator.ledger?.summary(await d.data.names()) ?? [],
  };
}

async function scenario(d: Daemon, id: string): Promise<Record<string, unknown>> {
  const entry = d.book.get(id);
  if (!entry) throw new CohortError('UNKNOWN_SCENARIO', `no scenario ${id}`, 'list them with `cohort scenario list`');
  const names = Object.fromEntries(d.node.roster.current.members.map((m) => [m.peerId, m.name]));
  const audit = await d.audit.list({ scenario: id });
  const run = d.runs.get(id)?.status as Record<string, unknown> | undefined;
  return { id, hash: id, author: entry.signed.author, authorName: names[entry.signed.author] ?? null, launchedAt: entry.signed.launchedAt,
    manifest: entry.signed.manifest, view: entry.view, names, self: d.self, participants: participantsOf(entry.view),
    history: await d.book.history(id), run: run ?? null, canCancel: entry.signed.author === d.self,
    privacy: privacyOf(entry.signed.manifest, run), audit: audit.slice(-200) };
}

/** The privacy budget, when the scenario has one: the manifest's target and what this peer's run reports as spent. */
function privacyOf(manifest: Record<string, unknown>, run: Record<string, unknown> | undefined): Record<string, unknown> | null {
  const find = (o: unknown, depth = 0): Record<string, unknown> | undefined => {
    if (!o || typeof o !== 'object' || depth > 3) return undefined;
    for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
      if (/^(privacy|dp)$/i.test(k) && v && typeof v === 'object') return v as Record<string, unknown>;
      const inner = find(v, depth + 1);
      if (inner) return inner;
    }
    return undefined;
  };
  const target = find(manifest), spent = find(run);
  return target || spent ? { target: target ?? null, spent: spent ?? null } : null;
}

export function dashboardRoutes(d: Daemon): Route[] {
  const ledger = new TransferLedger((since) => d.audit.entries({ since }));
  const none = async (): Promise<unknown> => undefined;
  const app = async (ctx: RawContext): Promise<void> => {
    if (!ctx.authorised) return send(ctx.res, 401, 'text/html; charset=utf-8', loginPage(d.cfg.name));
    send(ctx.res, 200, 'text/html; charset=utf-8', appPage(d.cfg.name));
  };
  return [
    { method: 'GET', path: /^\/(ui\/?)?$/, handle: none, raw: app },
    { method: 'GET', path: /^\/ui\/scenario\/(?<id>[^/]+)$/, handle: none, raw: async (ctx) => {
      if (!ctx.authorised) return send(ctx.res, 401, 'text/html; charset=utf-8', loginPage(d.cfg.name));
      if (!/^[0-9a-f]{6,64}$/.test(ctx.params.id ?? '') || !knownScenario(d, ctx.params.id ?? '')) {
        return send(ctx.res, 404, 'text/html; charset=utf-8', page('Cohort · not found', `<main class="login"><h1>No such scenario</h1><p>This peer knows no scenario <code>${escapeHtml(ctx.params.id ?? '')}</code>.</p><p><a href="/ui">back to the dashboard</a></p></main>`));
      }
      return app(ctx);
    } },
    { method: 'POST', path: /^\/ui\/login$/, handle: none, raw: async (ctx) => {
      const token = (await readForm(ctx.req)).get('token') ?? '';
      if (!ctx.isToken(token)) return send(ctx.res, 401, 'text/html; charset=utf-8', loginPage(d.cfg.name, 'Wrong token.'));
      send(ctx.res, 303, 'text/plain; charset=utf-8', 'signed in', { location: '/ui', 'set-cookie': `${cookieName(ctx)}=${token.trim()}; HttpOnly; SameSite=Strict; Path=/` });
    } },
    { method: 'POST', path: /^\/ui\/logout$/, handle: none, raw: async (ctx) => {
      send(ctx.res, 303, 'text/plain; charset=utf-8', 'signed out', { location: '/ui', 'set-cookie': `${cookieName(ctx)}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0` });
    } },
    { method: 'GET', path: /^\/ui\/static\/(?<file>[A-Za-z.]+)$/, handle: none, raw: async (ctx) => {
      const s = STATIC[ctx.params.file ?? ''];
      if (!s) return send(ctx.res, 404, 'text/plain; charset=utf-8', 'not found');
      let body = cache.get(s.file);
      if (!body) { body = readFileSync(s.file); cache.set(s.file, body); }
      send(ctx.res, 200, s.type, body);
    } },
    { method: 'GET', path: /^\/ui\/api\/overview$/, handle: async () => overview(d, ledger) },
    { method: 'GET', path: /^\/ui\/api\/scenarios\/(?<id>[0-9a-f]+)$/, handle: async ({ params }) => scenario(d, resolveId(d, params.id ?? '')) },
    ...(['approve', 'reject'] as const).map((op): Route => ({ method: 'POST', path: new RegExp(`^/ui/api/scenarios/(?<id>[0-9a-f]{64})/${op}$`), handle: async ({ params, body }) => {
      const id = resolveId(d, params.id ?? '');
      const reason = requireHash(id, body);
      if (op === 'reject' && !reason) throw new CohortError('REASON_REQUIRED', 'a rejection needs a reason', 'type why in the reason field');
      const view = await d.coordinator.answer(id, op, reason);
      return { id: view.id, state: view.state };
    } })),
    { method: 'POST', path: /^\/ui\/api\/scenarios\/(?<id>[0-9a-f]{64})\/cancel$/, handle: async ({ params, body }) => {
      const id = resolveId(d, params.id ?? '');
      const view = await d.coordinator.cancel(id, requireHash(id, body));
      return { id: view.id, state: view.state };
    } },
    { method: 'GET', path: /^\/ui\/api\/scenarios\/(?<id>[0-9a-f]+)\/model\.onnx$/, handle: none, raw: async (ctx) => {
      if (!ctx.authorised) return send(ctx.res, 401, 'application/json', JSON.stringify({ error: 'UNAUTHORISED', message: 'missing or wrong token' }));
      const id = knownScenario(d, ctx.params.id ?? '');
      const model = id ? await d.store.checkpoints.get(`final/${id}/model.onnx`) : undefined;
      if (!id || !model) return send(ctx.res, 404, 'application/json', JSON.stringify({ error: 'NOT_FOUND', message: 'no final model for this scenario on this peer' }));
      await d.audit.append({ kind: 'export', to: 'local', what: 'downloaded the final model from the dashboard', scenario: id, bytes: model.byteLength });
      send(ctx.res, 200, 'application/octet-stream', Buffer.from(model), { 'content-disposition': `attachment; filename="cohort-${id.slice(0, 12)}-model.onnx"` });
    } },
    { method: 'GET', path: /^\/ui\/api\/scenarios\/(?<id>[0-9a-f]+)\/report\.md$/, handle: none, raw: async (ctx) => {
      if (!ctx.authorised) return send(ctx.res, 401, 'application/json', JSON.stringify({ error: 'UNAUTHORISED', message: 'missing or wrong token' }));
      const id = knownScenario(d, ctx.params.id ?? '');
      const entry = id ? d.book.get(id) : undefined;
      if (!id || !entry) return send(ctx.res, 404, 'application/json', JSON.stringify({ error: 'NOT_FOUND', message: 'no such scenario' }));
      const names = Object.fromEntries(d.node.roster.current.members.map((m) => [m.peerId, m.name]));
      const finalModel = Boolean(await d.store.checkpoints.get(`final/${id}/model.onnx`));
      const md = reportMarkdown({ id, manifest: entry.signed.manifest, view: entry.view, names, history: await d.book.history(id), authorName: names[entry.signed.author], launchedAt: entry.signed.launchedAt, exportedBy: d.cfg.name, finalModel });
      send(ctx.res, 200, 'text/markdown; charset=utf-8', md, { 'content-disposition': `attachment; filename="cohort-${id.slice(0, 12)}-report.md"` });
    } },
  ];
}
