/** `cohort scenario validate FILE` and `cohort scenario new --template NAME` work without any daemon. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { scenarioId } from '../../src/scenario/signing.ts';

const run = promisify(execFile);
const cli = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'scenario', ...args], { env: { ...process.env, COHORT_PEER: '/nonexistent' } })
  .then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e);
const dir = mkdtempSync(join(tmpdir(), 'cohort-scenario-offline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('scenario validate / new, offline', () => {
  it('validate: a good manifest gives its hash; a bad one exits 2 naming the field', async () => {
    const ok = await cli(['validate', 'scenarios/wdbc-radiomics.json', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const doc = JSON.parse(ok.stdout) as { valid: boolean; hash: string; name: string };
    expect(doc.valid).toBe(true);
    expect(doc.hash).toBe(scenarioId(JSON.parse(readFileSync('scenarios/wdbc-radiomics.json', 'utf8')) as Record<string, unknown>));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...JSON.parse(readFileSync('scenarios/wdbc-radiomics.json', 'utf8')) as object, name: 'Not Valid' }));
    const e = await cli(['validate', bad]);
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(/name/);
  });

  it('new: writes a template under a new name that validates; an unknown template lists the ones there are', async () => {
    const out = join(dir, 'mine.json');
    const w = await cli(['new', '--template', 'wdbc-radiomics', '--name', 'my-study', '--out', out]);
    expect(w.code, w.stderr).toBe(0);
    expect((JSON.parse(readFileSync(out, 'utf8')) as { name: string }).name).toBe('my-study');
    expect((await cli(['validate', out])).stdout).toMatch(/valid scenario "my-study"/);
    const u = await cli(['new', '--template', 'nope']);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/wdbc-radiomics/);
  });
});
