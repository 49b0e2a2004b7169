// The peer config's compute.providerFallback (issue 14.1): "cpu" by default (a provider that cannot run falls back, logged and shown
// in `cohort status`), "error" accepted (this peer's run fails with PROVIDER_UNAVAILABLE), anything else a CONFIG_INVALID naming the key.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DaemonSectionsSchema, loadDaemonConfig } from '../../src/peer/config.ts';
import { CohortError } from '../../src/util/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'cohort-config-compute-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A minimal peer config file with the given compute section. */
function configFile(compute: Record<string, unknown> | undefined): string {
  const file = join(dir, `cohort-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ name: 'Hospital Z', net: { listen: ['/ip4/127.0.0.1/tcp/0'], consortium: 'c' }, ...(compute ? { compute } : {}) }));
  return file;
}

describe('compute.providerFallback', () => {
  it('defaults to cpu, with or without a compute section', () => {
    expect(DaemonSectionsSchema.parse({}).compute.providerFallback).toBe('cpu');
    expect(DaemonSectionsSchema.parse({ compute: { providers: ['cuda'] } }).compute).toEqual({ maxConcurrentScenarios: 2, threads: 1, providers: ['cuda'], providerFallback: 'cpu' });
    expect(loadDaemonConfig(configFile(undefined)).compute.providerFallback).toBe('cpu');
  });

  it('accepts error', () => {
    expect(loadDaemonConfig(configFile({ providers: ['cuda'], providerFallback: 'error' })).compute).toMatchObject({ providers: ['cuda'], providerFallback: 'error' });
  });

  it('refuses any other value with CONFIG_INVALID at compute.providerFallback', () => {
    let err: unknown;
    try { loadDaemonConfig(configFile({ providerFallback: 'gpu' })); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(CohortError);
    expect((err as CohortError).code).toBe('CONFIG_INVALID');
    expect((err as CohortError).message).toContain('compute.providerFallback');
  });
});
