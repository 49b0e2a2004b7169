/**
 * Execution-provider selection. ORT does not fall back by itself (a list ['cuda','cpu'] throws when cuda is missing),
 * so each provider is tried alone, in the configured order, in try/catch; the first that creates the session wins,
 * and the choice (and each refusal) is logged.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { CohortError } from '../util/errors.ts';
import { logger } from '../util/log.ts';

export type ExecutionProviderName = 'cuda' | 'webgpu' | 'cpu';
export const DEFAULT_PROVIDERS: readonly ExecutionProviderName[] = ['cuda', 'webgpu', 'cpu'];

const log = logger('engine:providers');
/** Providers that already failed once in this process: not retried (each failed attempt costs time and log noise). */
const refused = new Set<ExecutionProviderName>();

export function sessionOptions(provider: ExecutionProviderName, threads: number): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [provider],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    // Spinning threads on a 2-vCPU machine make timings flip between two speeds 2.5x apart (notes/onnx-train-step.md).
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    // COHORT_ORT_PROFILE=prefix writes ORT's per-node profile (JSON) of every session: where a step's time goes.
    ...(process.env.COHORT_ORT_PROFILE ? { enableProfiling: true, profileFilePrefix: process.env.COHORT_ORT_PROFILE } : {}),
  };
}

export function defaultThreads(): number {
  const env = Number(process.env.COHORT_THREADS);
  return Number.isInteger(env) && env > 0 ? env : 2;
}

/**
 * Why a provider cannot work here, found without asking onnxruntime (which prints a red "Failed to load library" for cuda, and
 * Dawn a Vulkan warning for webgpu, straight to stderr): cuda needs the provider library `npm run setup:gpu` installs, webgpu on
 * Linux needs a Vulkan loader. undefined: worth trying.
 */
export function quietProbe(p: ExecutionProviderName): string | undefined {
  if (p === 'cpu' || process.env.COHORT_PROBE_PROVIDERS === 'ort') return undefined;
  if (p === 'cuda') {
    let bin: string;
    try { bin = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', process.platform, process.arch); } catch { return undefined; }
    const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
    return existsSync(join(bin, lib)) ? undefined : 'the CUDA provider is not installed (npm run setup:gpu on a machine with CUDA 12)';
  }
  if (p === 'webgpu' && process.platform === 'linux') {
    const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/usr/local/lib'];
    return dirs.some((d) => existsSync(join(d, 'libvulkan.so.1'))) ? undefined : 'no Vulkan loader (libvulkan.so.1)';
  }
  return undefined;
}

/** Create a session on the first provider that works. */
export async function createSession(model: Uint8Array, providers: readonly ExecutionProviderName[], threads: number):
  Promise<{ session: ort.InferenceSession; provider: ExecutionProviderName }> {
  const errors: string[] = [];
  const skipped: string[] = [];
  for (const p of providers) {
    if (refused.has(p)) { errors.push(`${p}: unavailable (failed earlier)`); continue; }
    const why = quietProbe(p);
    if (why) {
      refused.add(p);
      errors.push(`${p}: ${why}`);
      skipped.push(p);
      continue;
    }
    try {
      const session = await ort.InferenceSession.create(model, sessionOptions(p, threads));
      // one line for the providers probed quietly (the first session of the process only: later ones skip them silently)
      if (skipped.length) log.info({ provider: p, skipped: errors }, `execution provider ${skipped.join(', ')} ${skipped.length > 1 ? 'are' : 'is'} unavailable; falling back to ${p} (${errors.join('; ')})`);
      return { session, provider: p };
    } catch (e) {
      refused.add(p);
      const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
      errors.push(`${p}: ${why}`);
      const next = providers.slice(providers.indexOf(p) + 1);
      log.warn({ provider: p, error: why }, `execution provider ${p} is unavailable; falling back to ${next[0] ?? 'nothing'}`);
    }
  }
  throw new CohortError('NO_EXECUTION_PROVIDER', `no execution provider could run the model (${errors.join('; ')})`,
    "include 'cpu' in the provider list; for cuda run `npm run setup:gpu` on a machine with CUDA 12");
}
