/**
 * The web dashboard in a real browser (Debian's chromium driven by playwright-core) against four real peer processes: sign in
 * with the token, see the four sites, approve by hand on the manual-approval peer (site-d), reject another scenario with a reason
 * full of HTML (shown as text, never run), watch the scenario finish with its plots, see the edges between the other sites (from
 * their heartbeats) and non-zero bytes per edge and per peer, verify the audit chain, download the model.
 * Without the token the pages and the API answer 401 with no data; an unknown scenario's page is 404.
 * Screenshots go to test/artifacts/ (git-ignored). Skipped, with the reason printed, only when no chromium is installed
 * (.ci/run installs it with apt-get).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { client, provisionCluster, ROOT, startDaemon, stopCluster, waitConnected, waitFor, wdbcManifest, type Cluster } from './daemon-harness.ts';

const CHROMIUM = process.env.COHORT_CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!CHROMIUM) process.stderr.write('dashboard browser test skipped: no chromium at /usr/bin/chromium (apt-get install chromium; .ci/run does)\n');
const ARTIFACTS = join(ROOT, 'test', 'artifacts');
const A = 0, B = 1, D = 3;
const HTML_REASON = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>not</b> for our ethics board';

let c: Cluster;
let browser: Browser;

const port = (i: number): number => (JSON.parse(readFileSync(join(c.sites[i]!.dir, 'admin.json'), 'utf8')) as { port: number }).port;
const token = (i: number): string => readFileSync(join(c.sites[i]!.dir, 'admin.token'), 'utf8').trim();
const base = (i: number): string => `http://127.0.0.1:${port(i)}`;

/** `cohort scenario launch FILE --follow [--json] --peer SITE` as a real process; resolves with what it printed where, once it ends. */
function launchFollowing(i: number, manifest: Record<string, unknown>, json: boolean): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const file = join(c.dir, `${String(manifest.name)}.json`);
  writeFileSync(file, JSON.stringify(manifest));
  const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'scenario', 'launch', file, '--follow', '--peer', c.sites[i]!.dir, ...(json ? ['--json'] : [])],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COHORT_LOG_LEVEL: 'info' } });
  let stdout = '', stderr = '';
  p.stdout.setEncoding('utf8').on('data', (x: string) => { stdout += x; });
  p.stderr.setEncoding('utf8').on('data', (x: string) => { stderr += x; });
  followers.push(p);
  return new Promise((done) => p.once('exit', (code) => done({ code, stdout, stderr })));
}
const followers: ChildProcess[] = [];
const shot = (page: Page, name: string): Promise<Buffer> => page.screenshot({ path: join(ARTIFACTS, `dashboard-${name}.png`), fullPage: true });

describe.skipIf(!CHROMIUM)('dashboard', () => {
  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    c = await provisionCluster([], (s) => s.name === 'site-d' ? { ...s, config: { ...s.config, approval: { autoApprove: { families: [], authors: [], manifests: [] } } } } : s);
    for (const i of [0, 1, 2, 3]) startDaemon(c, i);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    await waitConnected(c, [0, 1, 2, 3]);
  }, 180_000);

  afterAll(async () => {
    for (const p of followers) if (p.exitCode === null) p.kill('SIGTERM');
    await browser?.close();
    if (!c) return;
    await stopCluster(c);
    if (!process.env.COHORT_KEEP_E2E) rmSync(c.dir, { recursive: true, force: true });
  });

  it('without the token: 401 and no data, on the pages and on the API; the login refuses a wrong token', async () => {
    const secret = c.sites[A]!.peerId;
    for (const path of ['/', '/ui', '/ui/scenario/abcdef012345', '/ui/api/overview', '/ui/api/scenarios/abcdef012345/model.onnx', '/ui/api/scenarios/abcdef012345/report.md', '/status', '/audit']) {
      const variants: Record<string, string>[] = [{}, { authorization: 'Bearer 00ff' }, { cookie: `cohort_admin_${port(A)}=00ff` }];
      for (const headers of variants) {
        const r = await fetch(base(A) + path, { headers });
        expect(r.status, `${path} ${JSON.stringify(headers)}`).toBe(401);
        const body = await r.text();
        expect(body).not.toContain(secret);
        expect(body).not.toContain('site-b');
      }
    }
    const login = await fetch(`${base(A)}/ui/login`, { method: 'POST', body: new URLSearchParams({ token: 'ab'.repeat(32) }), redirect: 'manual' });
    expect(login.status).toBe(401);
    expect(login.headers.get('set-cookie')).toBeNull();
    // the cookie alone may not change anything without the dashboard's header (a cross-site form cannot send it)
    const csrf = await fetch(`${base(A)}/ui/api/overview`, { method: 'GET', headers: { cookie: `cohort_admin_${port(A)}=${token(A)}` } });
    expect(csrf.status).toBe(200);
    const post = await fetch(`${base(A)}/scenarios`, { method: 'POST', headers: { cookie: `cohort_admin_${port(A)}=${token(A)}`, 'content-type': 'application/json' }, body: JSON.stringify({ manifest: wdbcManifest({ name: 'csrf' }) }) });
    expect(post.status).toBe(401);
    const notFound = await fetch(`${base(A)}/ui/scenario/abcdef012345`, { headers: { authorization: `Bearer ${token(A)}` } });
    expect(notFound.status).toBe(404);
    expect(await notFound.text()).toContain('No such scenario');
  });

  it('site-d\'s operator signs in, sees the four sites, approves by hand, rejects with a reason in HTML; the scenario finishes', async () => {
    // both are launched with `cohort scenario launch --follow` (issue 12.6: the result on stdout, logs on stderr): the run with
    // --json (one document at the end), the one site-d rejects in words (the site table on stdout as it changes; it cannot reach
    // four approvals, so its launcher marks it failed once it has not started within 90 s, and the follow ends)
    const runFollow = launchFollowing(A, wdbcManifest({ name: 'wdbc-dashboard', rounds: 4, roundMs: 4000, launch: { minPeers: 4, approvalWindowMs: 120_000, startDelayMs: 10_000 } }), true);
    const rejectFollow = launchFollowing(B, wdbcManifest({ name: 'wdbc-dashboard-rejected', launch: { minPeers: 4, approvalWindowMs: 30_000, startWithinMs: 90_000 } }), false);
    const idOf = async (name: string): Promise<string | false> => (await client(c, D).get<{ id: string; name: string }[]>('/scenarios')).find((s) => s.name === name)?.id ?? false;
    const runId = await waitFor('site-d hears the run', () => idOf('wdbc-dashboard'), 90_000);
    const rejectId = await waitFor('site-d hears the other', () => idOf('wdbc-dashboard-rejected'), 90_000);

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const external: string[] = [];
    page.on('request', (r) => { if (!r.url().startsWith(base(D))) external.push(r.url()); });
    const first = await page.goto(`${base(D)}/ui`);
    expect(first?.status()).toBe(401);
    await shot(page, 'login');
    await page.fill('input[name=token]', 'wrong');
    await page.click('button[type=submit]');
    await page.getByText('Wrong token.').waitFor();
    await page.fill('input[name=token]', token(D));
    await page.click('button[type=submit]');
    await page.getByTestId('topology').waitFor();
    await expect.poll(async () => page.getByTestId('topology-node').count(), { timeout: 30_000 }).toBe(4);
    expect((await page.getByTestId('topology-node').evaluateAll((n) => n.map((x) => x.getAttribute('data-name')))).sort()).toEqual(['site-a', 'site-b', 'site-c', 'site-d']);
    // site-d's live connections (a loaded machine may drop and redial one: give it time)
    await expect.poll(async () => page.locator('.topology .edge.self').count(), { timeout: 90_000, interval: 1000 }).toBe(3);
    await shot(page, 'overview');

    // approve the run by hand, bound to the manifest hash the page shows
    await page.locator(`[data-testid=scenario-row][data-id="${runId}"] a`).click();
    await expect.poll(() => page.getByTestId('scenario-name').textContent(), { timeout: 20_000 }).toBe('wdbc-dashboard');
    await page.getByTestId('approve').click();
    await expect.poll(() => page.getByTestId('my-decision').textContent(), { timeout: 30_000 }).toBe('this peer: approved');

    // reject the other with a reason full of HTML: shown as text, nothing injected, nothing run
    await page.locator(`[data-testid=scenario-row][data-id="${rejectId}"] a`).click();
    await expect.poll(() => page.getByTestId('scenario-name').textContent(), { timeout: 20_000 }).toBe('wdbc-dashboard-rejected');
    await page.getByTestId('reason').fill(HTML_REASON);
    // the page re-renders every 1.5 s: what the operator typed must outlive a re-render (it used to be wiped, and Reject then sent
    // no reason: 400 REASON_REQUIRED, the decision stayed 'pending'); wait for one re-render (the old decision line is replaced)
    const shown = await page.getByTestId('my-decision').elementHandle();
    await page.waitForFunction((el) => !el?.isConnected, shown, { timeout: 30_000 });
    expect(await page.getByTestId('reason').inputValue()).toBe(HTML_REASON);
    expect(await page.getByTestId('reason').evaluate((el) => el === (globalThis as unknown as { document: { activeElement: unknown } }).document.activeElement)).toBe(true); // still focused for typing on
    await page.getByTestId('reject').click();
    // the page's error line rides along, so a refused request says why instead of just 'pending'
    const decisionAndError = async () => [await page.getByTestId('my-decision').textContent(), await page.locator('#errors').textContent()].filter(Boolean).join(' | ');
    await expect.poll(decisionAndError, { timeout: 30_000 }).toBe('this peer: rejected');
    const stored = (await client(c, D).get<{ view: { rejections: Record<string, { reason?: string }> } }>(`/scenarios/${rejectId}`)).view.rejections[c.sites[D]!.peerId]?.reason ?? '';
    expect(stored).toContain('<img src=x onerror='); // redaction rewrites path-like parts (</b>), the markup stays
    const cell = page.locator('[data-testid=approval-row][data-peer="site-d"] td.reason');
    await expect.poll(() => cell.textContent(), { timeout: 20_000 }).toBe(stored);
    expect(await cell.locator('b, img, script').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss)).toBeUndefined();
    await shot(page, 'rejected-with-html-reason');

    // the run finishes: every site approved, plots drawn, downloads work
    await page.goto(`${base(D)}/ui/scenario/${runId}`);
    await expect.poll(() => page.getByTestId('detail-state').textContent(), { timeout: 240_000, interval: 1000 }).toBe('finished');
    await expect.poll(async () => page.getByTestId('decision').allTextContents(), { timeout: 20_000 }).toEqual(['approved', 'approved', 'approved', 'approved']);
    await expect.poll(async () => page.locator('[data-testid=plots] canvas').count(), { timeout: 20_000 }).toBeGreaterThanOrEqual(3);
    await shot(page, 'finished');
    // 'finished' can be heard from the others before this peer has stored its own final model: wait for the download
    const model = await waitFor('model.onnx', async () => { const r = await page.request.get(`${base(D)}/ui/api/scenarios/${runId}/model.onnx`); return r.status() === 200 ? r : false; }, 60_000);
    expect((await model.body()).length).toBeGreaterThan(1000);
    const report = await page.request.get(`${base(D)}/ui/api/scenarios/${runId}/report.md`);
    expect(report.status()).toBe(200);
    const md = await report.text();
    expect(md).toContain(runId);
    expect(md).toMatch(/state \*\*(finished|failed)\*\*/); // the report is this peer's merged view, written as it stands

    // the whole network: the edges between the other sites come from their heartbeats (dashed, 'heard'), with bytes; site-d's
    // own edges and per-peer model bytes (audit log) are non-zero once the run has exchanged models
    await page.goto(`${base(D)}/ui`);
    const others = ['site-a site-b', 'site-a site-c', 'site-b site-c'];
    const edges = async () => page.getByTestId('edge').evaluateAll((n) => n.map((x) => ({ ends: x.getAttribute('data-ends'), seen: x.getAttribute('data-seen'), bytes: Number(x.getAttribute('data-bytes')) })));
    await expect.poll(async () => (await edges()).filter((e) => e.seen === 'heard' && e.bytes > 0).map((e) => e.ends).sort(), { timeout: 60_000, interval: 1000 }).toEqual(others);
    expect((await edges()).filter((e) => e.seen === 'self').every((e) => e.bytes > 0 && e.ends!.includes('site-d'))).toBe(true);
    const modelBytes = async (col: string) => page.locator(`[data-testid=member-row] [data-testid=${col}]`).evaluateAll((n) => n.map((x) => Number(x.getAttribute('data-bytes'))));
    // the round tallies reach the audit log at the next heartbeat after the run ends
    await expect.poll(async () => (await modelBytes('model-sent')).filter((b) => b > 0).length, { timeout: 30_000, interval: 1000 }).toBe(3);
    expect((await modelBytes('model-received')).filter((b) => b > 0).length).toBe(3);
    expect((await modelBytes('wire-out')).filter((b) => b > 0).length).toBe(3);
    await shot(page, 'network');

    // the audit chain verifies, and the manual approval is in it
    await page.getByTestId('verify-chain').click();
    await expect.poll(() => page.getByTestId('verify-result').textContent(), { timeout: 20_000 }).toMatch(/^chain verifies: \d+ entries intact$/);
    const mine = await client(c, D).get<{ entries: { kind: string; what: string }[] }>(`/audit?scenario=${runId}`);
    expect(mine.entries.some((e) => e.kind === 'approval' && e.what === 'approve (operator)')).toBe(true);
    await shot(page, 'audit');

    // the CLIs that followed both scenarios: results on stdout only, nothing of the site table on stderr
    const run = await runFollow;
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ id: runId, state: 'finished', sites: expect.any(Array) });
    const rejected = await rejectFollow;
    expect(rejected.code, rejected.stderr).toBe(0);
    expect(rejected.stdout).toContain(`launched ${rejectId}`);
    expect(rejected.stdout).toMatch(new RegExp(`^${rejectId.slice(0, 12)} wdbc-dashboard-rejected: `, 'm'));
    expect(rejected.stdout).toMatch(/scenario (failed|cancelled)\n$/);
    expect(rejected.stderr).not.toMatch(/wdbc-dashboard-rejected: |^\s+site-[a-d]\s+round/m);
    expect(run.stderr).not.toMatch(/wdbc-dashboard: |^\s+site-[a-d]\s+round/m);

    const missing = await page.goto(`${base(D)}/ui/scenario/abcdef012345`);
    expect(missing?.status()).toBe(404);
    expect(external).toEqual([]);
    await page.close();
  }, 420_000);
});
