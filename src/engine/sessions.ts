/**
 * Process-wide cache of ORT sessions, keyed by what determines the graph (variant, model/loss/optimizer spec, batch
 * shape, providers, threads). Parameters are graph inputs, so 100 simulated peers training the same model share one
 * session per batch shape instead of building 100. A failed build is not cached.
 */
import type * as ort from 'onnxruntime-node';
import { logger } from '../util/log.ts';
import { createSession, type ExecutionProviderName } from './providers.ts';

export interface CachedSession { session: ort.InferenceSession; provider: ExecutionProviderName }

const cache = new Map<string, Promise<CachedSession>>();
const log = logger('engine:sessions');

export function cachedSession(key: string, build: () => Uint8Array, providers: readonly ExecutionProviderName[],
  threads: number): Promise<CachedSession> {
  const full = JSON.stringify([key, providers, threads]);
  let hit = cache.get(full);
  if (!hit) {
    hit = (async () => {
      const t0 = performance.now();
      const bytes = build();
      const s = await createSession(bytes, providers, threads);
      log.debug({ provider: s.provider, ms: Math.round(performance.now() - t0), bytes: bytes.length }, 'session ready');
      return s;
    })();
    cache.set(full, hit);
    hit.catch(() => cache.delete(full));
  }
  return hit;
}

export function sessionCacheSize(): number {
  return cache.size;
}

/** Release every cached session (end of a CLI run or a test file). */
export async function releaseSessions(): Promise<void> {
  const all = [...cache.values()];
  cache.clear();
  for (const p of all) {
    try { await (await p).session.release(); } catch { /* a failed build has nothing to release */ }
  }
}
