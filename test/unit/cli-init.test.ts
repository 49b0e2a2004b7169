/** `cohort init` writes a complete, commented config (every daemon section) that loads, on a free port when 4001 is taken. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadDaemonConfig } from '../../src/peer/config.ts';

const run = promisify(execFile);

describe('cohort init', () => {
  it('writes every section with comments, and listens on a free port when 4001 is taken', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-init-'));
    // hold 4001 for the duration (if something else already holds it, the point stands)
    const blocker: Server | undefined = await new Promise((res) => { const s = createServer(); s.once('error', () => res(undefined)); s.listen(4001, '0.0.0.0', () => res(s)); });
    try {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'init', '--dir', join(dir, 'p'), '--name', 'Hospital Z', '--json']);
      const out = JSON.parse(stdout) as { config: string; listen: string[] };
      const port = Number(/\/tcp\/(\d+)$/.exec(out.listen[0] ?? '')?.[1]);
      expect(port).toBeGreaterThan(0);
      expect(port).not.toBe(4001);
      const raw = JSON.parse(readFileSync(out.config, 'utf8')) as Record<string, unknown> & { '//': string[] };
      expect(Object.keys(raw)).toEqual(['//', 'name', 'net', 'approval', 'data', 'compute', 'admission', 'admin', 'heartbeatMs', 'store']);
      for (const section of ['approval', 'data', 'compute', 'admission', 'admin', 'store']) expect(raw['//'].some((c) => c.includes(`${section}`)), section).toBe(true);
      const cfg = loadDaemonConfig(out.config);
      expect(cfg.name).toBe('Hospital Z');
      expect(cfg.compute.providers).toEqual(['cuda', 'webgpu', 'cpu']);
      // the provider fallback is written out and explained like the other compute keys (issue 14.1)
      expect((raw.compute as { providerFallback?: string }).providerFallback).toBe('cpu');
      expect(raw['//'].some((c) => c.includes('providerFallback') && c.includes('PROVIDER_UNAVAILABLE'))).toBe(true);
      expect(cfg.compute.providerFallback).toBe('cpu');
      expect(cfg.net.listen).toEqual([`/ip4/0.0.0.0/tcp/${port}`]);
    } finally {
      blocker?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
