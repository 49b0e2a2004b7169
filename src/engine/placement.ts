/**
 * Node placement: which execution provider ran each node of a session (issue 14.1). onnxruntime-node has no API for it, but
 * ORT's profile records every kernel run as a "Node" event whose args name the provider. A session created with a profile
 * prefix runs once, endProfiling() writes the JSON, and this module counts the distinct nodes per provider. On a GPU provider the
 * nodes ORT placed on CPUExecutionProvider are the CPU fallback (ops without a GPU kernel, plus shape ops ORT keeps on the host).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import type { ExecutionProviderName } from './providers.ts';

export interface NodePlacement {
  /** Distinct nodes that ran a kernel in the profiled run. */
  nodes: number;
  /** Node count per ORT provider name (CPUExecutionProvider, CUDAExecutionProvider, WebGpuExecutionProvider). */
  byProvider: Record<string, number>;
}

interface ProfileEvent { cat?: string; name?: string; args?: { provider?: string } }

/** Count the distinct nodes per provider in an ORT profile (the parsed JSON array). */
export function placementFromProfile(events: unknown): NodePlacement {
  const providerOf = new Map<string, string>();
  for (const e of Array.isArray(events) ? (events as ProfileEvent[]) : []) {
    if (e?.cat !== 'Node' || typeof e.name !== 'string' || !e.name.endsWith('_kernel_time')) continue;
    const provider = e.args?.provider;
    if (typeof provider === 'string') providerOf.set(e.name.slice(0, -'_kernel_time'.length), provider);
  }
  const byProvider: Record<string, number> = {};
  for (const p of providerOf.values()) byProvider[p] = (byProvider[p] ?? 0) + 1;
  return { nodes: providerOf.size, byProvider };
}

/** Nodes that ran on the CPU although the session's provider is a GPU one (0 on the cpu provider by definition). */
export function cpuFallbackNodes(provider: ExecutionProviderName, p: NodePlacement): number {
  return provider === 'cpu' ? 0 : p.byProvider.CPUExecutionProvider ?? 0;
}

/** A fresh folder for one session's profile (the prefix to pass as SessionExtras.profilePrefix). */
export function profilePrefix(): string {
  return join(mkdtempSync(join(tmpdir(), 'cohort-placement-')), 'profile');
}

/** After the session's first run: stop its profiler, read the profile it wrote under `prefix`, remove the folder. */
export function readPlacement(session: ort.InferenceSession, prefix: string): NodePlacement {
  session.endProfiling();
  const dir = join(prefix, '..');
  try {
    const file = readdirSync(dir).filter((f) => f.endsWith('.json')).sort().pop();
    return file ? placementFromProfile(JSON.parse(readFileSync(join(dir, file), 'utf8'))) : { nodes: 0, byProvider: {} };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
