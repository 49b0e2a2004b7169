/**
 * Process-wide cache of ORT sessions, keyed by what determines the graph (variant, model/loss/optimizer spec, batch
 * shape, providers, threads). Parameters are graph inputs, so 100 simulated peers training the same model share one
 * session per batch shape instead of building 100. A failed build is not cached.
 */
import type * as ort from 'onnxruntime-node';
import { logger } from '../util/log.ts';
import { createSession, type ExecutionProviderName, type ProviderFallback } from './providers.ts';
import { profilePrefix, readPlacement, type NodePlacement } from './placement.ts';

export interface CachedSession {
  session: ort.InferenceSession;
  provider: ExecutionProviderName;
  /** Providers tried before `provider` and why they could not run ("cuda: <reason>"). */
  refused: string[];
  /** Node placement, measured after the first run when the session was created with `measurePlacement`. */
  placement?: NodePlacement;
  /** Profile prefix until the placement is read. */
  profile?: string;
}

/** Options beyond provider and threads. */
export interface SessionWants {
  /** Graph outputs to keep on the device where the provider allows it (webgpu); src/engine/device.ts. */
  deviceOutputs?: readonly string[];
  /** Profile the first run to learn which provider ran each node (src/engine/placement.ts). */
  measurePlacement?: boolean;
}

/** How a session is placed: the provider list, the fallback policy, threads and extra options (all part of the cache key). */
export interface Placement { providers: readonly ExecutionProviderName[]; fallback: ProviderFallback; threads: number; extras?: SessionWants }

const cache = new Map<string, Promise<CachedSession>>();
const log = logger('engine:sessions');

export function cachedSession(key: string, build: () => Uint8Array, where: Placement): Promise<CachedSession> {
  const { providers, fallback, threads, extras } = where;
  const full = JSON.stringify([key, providers, fallback, threads, extras ?? {}]);
  let hit = cache.get(full);
  if (!hit) {
    hit = (async () => {
      const t0 = performance.now();
      const bytes = build();
      const profile = extras?.measurePlacement ? profilePrefix() : undefined;
      const s = await createSession(bytes, providers, threads, fallback, { deviceOutputs: extras?.deviceOutputs, profilePrefix: profile });
      log.debug({ provider: s.provider, ms: Math.round(performance.now() - t0), bytes: bytes.length }, 'session ready');
      return { ...s, ...(profile ? { profile } : {}) };
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

/** Call after a run of `c`: the first time, reads the node placement its profile recorded (later runs are not profiled). */
export function notePlacement(c: CachedSession): NodePlacement | undefined {
  if (c.profile && !c.placement) {
    const prefix = c.profile;
    c.profile = undefined;
    c.placement = readPlacement(c.session, prefix);
  }
  return c.placement;
}
