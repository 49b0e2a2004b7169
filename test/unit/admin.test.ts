import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAdminApi, type AdminApi } from '../../src/peer/admin.ts';
import { AdminClient } from '../../src/peer/client.ts';
import { CohortError } from '../../src/util/errors.ts';

const dirs: string[] = [];
let api: AdminApi | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function serve(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-admin-'));
  dirs.push(dir);
  api = await startAdminApi(dir, [
    { method: 'GET', path: /^\/hello$/, handle: async () => ({ hi: 1 }) },
    { method: 'POST', path: /^\/echo\/(?<id>\w+)$/, handle: async ({ params, body }) => ({ id: params.id, body }) },
    { method: 'GET', path: /^\/fail$/, handle: async () => { throw new CohortError('NOPE', 'no such thing', 'do this instead'); } },
  ]);
  return dir;
}

describe('admin API', () => {
  it('listens on 127.0.0.1 only, writes a 0600 token, and refuses requests without it', async () => {
    const dir = await serve();
    expect(statSync(join(dir, 'admin.token')).mode & 0o777).toBe(0o600);
    const { port } = JSON.parse(readFileSync(join(dir, 'admin.json'), 'utf8')) as { port: number };
    expect((await fetch(`http://127.0.0.1:${port}/hello`)).status).toBe(401);
    expect((await fetch(`http://127.0.0.1:${port}/hello`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
    expect((await fetch(`http://127.0.0.1:${port}/hello`, { headers: { authorization: `Token ${token}` } })).status).toBe(401);
    expect(await (await fetch(`http://127.0.0.1:${port}/hello`, { headers: { authorization: `Bearer ${token}` } })).json()).toEqual({ hi: 1 });
  });

  it('the client routes, posts JSON, and turns errors back into CohortErrors', async () => {
    const dir = await serve();
    const c = AdminClient.forPeer(dir);
    expect(await c.post('/echo/abc', { x: [1, 2] })).toEqual({ id: 'abc', body: { x: [1, 2] } });
    await expect(c.get('/fail')).rejects.toMatchObject({ code: 'NOPE', hint: 'do this instead' });
    await expect(c.get('/missing')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('close() removes the token; a client then says the daemon is not running', async () => {
    const dir = await serve();
    await api!.close();
    api = undefined;
    expect(existsSync(join(dir, 'admin.token'))).toBe(false);
    expect(() => AdminClient.forPeer(dir)).toThrow(/no running peer daemon/);
  });
});
