/**
 * The CLI's side of the admin API: finds the running daemon of a peer directory (admin.json, admin.token) and calls it.
 *   const c = AdminClient.forPeer(dirOrConfigFile);  await c.get('/status');  await c.post('/scenarios', { manifest });
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CohortError } from '../util/errors.ts';
import { adminFiles } from './admin.ts';

export class AdminClient {
  private constructor(private readonly base: string, private readonly token: string) {}

  /** `target` is a peer directory or its config file. */
  static forPeer(target: string): AdminClient {
    const dir = existsSync(target) && statSync(target).isFile() ? dirname(resolve(target)) : resolve(target);
    const files = adminFiles(dir);
    if (!existsSync(files.info) || !existsSync(files.token)) {
      throw new CohortError('DAEMON_NOT_RUNNING', `no running peer daemon for ${dir}`, `start it with: cohort peer start --config ${dir}/cohort.json`);
    }
    const info = JSON.parse(readFileSync(files.info, 'utf8')) as { port: number };
    return new AdminClient(`http://127.0.0.1:${info.port}`, readFileSync(files.token, 'utf8').trim());
  }

  get<T = unknown>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  post<T = unknown>(path: string, body: unknown = {}): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new CohortError('DAEMON_UNREACHABLE', `the peer daemon at ${this.base} does not answer`, 'is it still running? see its log; restart it with `cohort peer start`', { cause: e });
    }
    const json = (await res.json()) as { error?: string; message?: string; hint?: string };
    if (!res.ok) throw new CohortError(json.error ?? 'ADMIN_ERROR', json.message ?? `HTTP ${res.status}`, json.hint);
    return json as T;
  }
}
