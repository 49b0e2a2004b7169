/**
 * The local admin API: HTTP on 127.0.0.1 only, every request must carry `Authorization: Bearer <token>`. The token is created at
 * daemon start in `<peerDir>/admin.token` (mode 0600: whoever can read it is the peer's operator); `<peerDir>/admin.json` says
 * which port the daemon listens on. The CLI (client.ts) reads both.
 *
 *   const api = await startAdminApi(peerDir, routes, { port });  ...  await api.close();
 * Routes: { method, path: RegExp (named groups become params), handle({ params, body, query }) -> JSON-able value }.
 * A CohortError thrown by a handler becomes 400 { error, message, hint } (a malformed JSON body too: BAD_JSON with the parse
 * error); anything else 500.
 * The dashboard (src/peer/dashboard.ts) signs in by a cookie holding the same token (`cohort_admin_<port>`, HttpOnly,
 * SameSite=Strict); a request authorised by the cookie alone must be a GET or carry `X-Cohort-Dashboard: 1` (a header a
 * cross-site form cannot send). Routes with `raw` write their own response and are reached with or without the token: they are
 * the login page and static files, and check `authorised` themselves before showing anything else.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CohortError, isCohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';

const log = logger('peer:admin');
const MAX_BODY = 16 * 1024 * 1024;

export interface AdminRequest {
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly body: unknown;
}
export interface Route {
  readonly method: 'GET' | 'POST';
  readonly path: RegExp;
  handle(req: AdminRequest): Promise<unknown>;
  /** A page or a download: writes the response itself; reached without the token too (see the header). */
  readonly raw?: (ctx: RawContext) => Promise<void>;
}
export interface RawContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly params: Readonly<Record<string, string>>;
  /** The request carried the token (header or dashboard cookie). */
  readonly authorised: boolean;
  /** Whether `given` is this daemon's token (the login form). */
  isToken(given: string): boolean;
}
/** A handler's reply that is not JSON (the Prometheus exposition at /metrics): sent as is with its content type. */
export class RawReply {
  constructor(readonly contentType: string, readonly body: string) {}
}

export interface AdminApi {
  readonly port: number;
  close(): Promise<void>;
}

export const adminFiles = (peerDir: string) => ({ token: join(peerDir, 'admin.token'), info: join(peerDir, 'admin.json') });

export async function startAdminApi(peerDir: string, routes: readonly Route[], opts: { port?: number } = {}): Promise<AdminApi> {
  const files = adminFiles(peerDir);
  // a fresh token per start: a token copied from an earlier run stops working when the daemon restarts
  const token = randomBytes(32).toString('hex');
  writeFileSync(files.token, token + '\n', { mode: 0o600 });
  chmodSync(files.token, 0o600);
  const server = createServer((req, res) => void serve(req, res, token, routes));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  writeFileSync(files.info, JSON.stringify({ port, pid: process.pid, startedAt: new Date().toISOString() }) + '\n');
  log.info({ port }, 'admin API on 127.0.0.1');
  return { port, close: () => closeServer(server, files) };
}

async function closeServer(server: Server, files: { token: string; info: string }): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(files.info, { force: true });
  rmSync(files.token, { force: true });
}

function sameToken(given: string, token: string): boolean {
  const a = Buffer.from(given), b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function authorised(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
  if (sameToken(header.startsWith('Bearer ') ? header.slice(7).trim() : '', token)) return true;
  const cookies = [...(req.headers.cookie ?? '').matchAll(/(?:^|;\s*)cohort_admin_\d+=([0-9a-f]+)/g)].map((m) => m[1] ?? '');
  return cookies.some((c) => sameToken(c, token)) && (req.method === 'GET' || req.headers['x-cohort-dashboard'] === '1');
}

async function serve(req: IncomingMessage, res: ServerResponse, token: string, routes: readonly Route[]): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const ok = authorised(req, token);
  if (!ok && !routes.some((r) => r.raw && r.method === req.method && r.path.test(url.pathname))) {
    log.warn({ url: req.url }, 'admin request without a valid token refused');
    return reply(res, 401, { error: 'UNAUTHORISED', message: 'missing or wrong bearer token', hint: 'the CLI reads admin.token in the peer directory' });
  }
  for (const route of routes) {
    const m = route.method === req.method ? route.path.exec(url.pathname) : null;
    if (!m) continue;
    try {
      if (route.raw) return await route.raw({ req, res, url, params: m.groups ?? {}, authorised: ok, isToken: (given) => sameToken(given.trim(), token) });
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      const value = await route.handle({ params: m.groups ?? {}, query: url.searchParams, body });
      if (value instanceof RawReply) {
        res.writeHead(200, { 'content-type': value.contentType, 'content-length': Buffer.byteLength(value.body), connection: 'close' });
        return void res.end(value.body);
      }
      return reply(res, 200, value);
    } catch (e) {
      if (isCohortError(e)) return reply(res, 400, { error: e.code, message: e.message, hint: e.hint });
      log.error({ err: e, url: url.pathname }, 'admin handler failed');
      return reply(res, 500, { error: 'INTERNAL', message: e instanceof Error ? e.message : String(e) });
    }
  }
  return reply(res, 404, { error: 'NOT_FOUND', message: `no route ${req.method ?? ''} ${url.pathname}` });
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new CohortError('BODY_TOO_LARGE', `request body over ${MAX_BODY} bytes`, 'send a smaller body');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return text ? JSON.parse(text) : {};
  } catch (e) {
    throw new CohortError('BAD_JSON', `malformed JSON body: ${(e as Error).message}`, 'send a JSON document (the cohort CLI does)');
  }
}

function reply(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value ?? null);
  // one request per connection: a client never reuses a socket the server is about to close (keep-alive race)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body);
}
