/**
 * Execution-provider selection. ORT does not fall back by itself (a list ['cuda','cpu'] throws when cuda is missing),
 * so each provider is tried alone, in the configured order, in try/catch; the first that creates the session wins.
 * What happens when a wanted provider cannot run is a setting, never silent (issue 14.1):
 *   fallback 'cpu'   (default) try the list in order and end with cpu even when the list omits it; each refusal is logged
 *                    (warn when the list was chosen by the user, info for the default preference cuda > webgpu > cpu, where
 *                    a CPU-only machine is the normal case) and returned, so `cohort train --json` / `cohort status` show it;
 *   fallback 'error' only the first provider of the list is tried; if it cannot run, CohortError('PROVIDER_UNAVAILABLE').
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { CohortError } from '../util/errors.ts';
import { blockSizeProbeModel, lowerConvsToNchwc, nchwcConfig } from './graph/nchwc.ts';
import { logger } from '../util/log.ts';

export type ExecutionProviderName = 'cuda' | 'webgpu' | 'cpu';
export const DEFAULT_PROVIDERS: readonly ExecutionProviderName[] = ['cuda', 'webgpu', 'cpu'];
export type ProviderFallback = 'cpu' | 'error';
export const PROVIDER_FALLBACKS: readonly ProviderFallback[] = ['cpu', 'error'];

/** Extra session options a caller may ask for (device-resident outputs, a profile for node placement). */
export interface SessionExtras {
  /** Outputs kept on the device (webgpu 'gpu-buffer'); ignored by the cpu and cuda providers (onnxruntime-node exposes no CUDA binding). */
  deviceOutputs?: readonly string[];
  /** Write ORT's profile under this prefix (node placement: which provider ran each node; src/engine/placement.ts). */
  profilePrefix?: string;
}

const log = logger('engine:providers');
/** Providers that already failed once in this process, with the reason: not retried (each attempt costs time and log noise). */
const refused = new Map<ExecutionProviderName, string>();

export function sessionOptions(provider: ExecutionProviderName, threads: number, extras: SessionExtras = {}): ort.InferenceSession.SessionOptions {
  const profile = extras.profilePrefix ?? process.env.COHORT_ORT_PROFILE;
  const device = provider === 'webgpu' && extras.deviceOutputs?.length
    ? { preferredOutputLocation: Object.fromEntries(extras.deviceOutputs.map((n) => [n, 'gpu-buffer' as const])) } : {};
  return {
    executionProviders: [provider],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    // Spinning threads on a 2-vCPU machine make timings flip between two speeds 2.5x apart (notes/onnx-train-step.md).
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    // COHORT_ORT_PROFILE=prefix writes ORT's per-node profile (JSON) of every session: where a step's time goes.
    ...(profile ? { enableProfiling: true, profileFilePrefix: profile } : {}),
    ...device,
  };
}

/**
 * Providers named by an environment variable (comma list), for runs that have no provider option of their own (the simulator:
 * COHORT_SIM_PROVIDERS=cuda runs all simulated peers on one GPU). Named explicitly, a provider that cannot run is an error;
 * unset, `dflt` with the cpu fallback.
 */
export function providersFromEnv(variable: string, dflt: readonly ExecutionProviderName[]): { providers: ExecutionProviderName[]; providerFallback: ProviderFallback } {
  const raw = process.env[variable];
  if (!raw) return { providers: [...dflt], providerFallback: 'cpu' };
  const names = raw.split(',').map((p) => p.trim()).filter(Boolean);
  const bad = names.find((p) => !(DEFAULT_PROVIDERS as readonly string[]).includes(p));
  if (bad || !names.length) {
    throw new CohortError('BAD_PROVIDER', `${variable}: unknown execution provider '${bad ?? raw}'`, `use a comma-separated list of ${DEFAULT_PROVIDERS.join(', ')}`);
  }
  return { providers: names as ExecutionProviderName[], providerFallback: 'error' };
}

export function defaultThreads(): number {
  const env = Number(process.env.COHORT_THREADS);
  return Number.isInteger(env) && env > 0 ? env : 2;
}

/**
 * Why a provider cannot work here, found without asking onnxruntime (which prints a red "Failed to load library" for cuda, and
 * Dawn a Vulkan warning for webgpu, straight to stderr): cuda needs the provider library `npm run setup:gpu` installs, webgpu on
 * Linux needs a Vulkan loader, a driver and a GPU device (a software Vulkan device only when asked for: vulkanKind below).
 * undefined: worth trying.
 */
export function quietProbe(p: ExecutionProviderName): string | undefined {
  if (p === 'cpu') return undefined;
  // COHORT_PROBE_PROVIDERS=ort asks onnxruntime/Dawn for their own reasons; a software device stays a policy refusal even then
  if (process.env.COHORT_PROBE_PROVIDERS === 'ort') return p === 'webgpu' && process.platform === 'linux' && vulkanKind() === 'software' ? softwareRefusal() : undefined;
  if (p === 'cuda') {
    let bin: string;
    try { bin = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', process.platform, process.arch); } catch { return undefined; }
    const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
    return existsSync(join(bin, lib)) ? undefined : 'the CUDA provider is not installed (npm run setup:gpu on a machine with CUDA 12)';
  }
  if (p === 'webgpu' && process.platform === 'linux') return webgpuProbe();
  return undefined;
}

/** Set to 1 to let webgpu run on a software Vulkan device (lavapipe): correctness checks only (gpu-check, tests). */
export const WEBGPU_SOFTWARE_ENV = 'COHORT_WEBGPU_SOFTWARE';

/** What the Vulkan side of this Linux machine offers WebGPU (Dawn): no loader, no driver, only a software device, or hardware. */
export type VulkanKind = 'no-loader' | 'no-driver' | 'software' | 'hardware';

const VULKAN_LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/usr/local/lib'];
const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];

/**
 * Classified from files only (asking Dawn prints warnings and costs a second): a loader, at least one driver manifest (ICD), and a
 * GPU device node. Without /dev/nvidia0 or a /dev/dri render node no hardware driver can open a device, so the only Vulkan
 * device Dawn can find is a CPU one (Mesa's lavapipe, or SwiftShader).
 */
export function vulkanKind(): VulkanKind {
  const libDirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...VULKAN_LIB_DIRS];
  if (!libDirs.some((d) => existsSync(join(d, 'libvulkan.so.1')))) return 'no-loader';
  const listed = (process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES ?? '').split(':').filter(Boolean);
  const hasIcd = listed.length ? listed.some((f) => existsSync(f))
    : ICD_DIRS.some((d) => { try { return readdirSync(d).some((f) => f.endsWith('.json')); } catch { return false; } });
  if (!hasIcd) return 'no-driver';
  let render = false;
  try { render = readdirSync('/dev/dri').some((f) => f.startsWith('renderD')); } catch { /* no DRM devices */ }
  return render || existsSync('/dev/nvidia0') ? 'hardware' : 'software';
}

function webgpuProbe(): string | undefined {
  switch (vulkanKind()) {
    case 'no-loader': return 'no Vulkan loader (libvulkan.so.1)';
    case 'no-driver': return 'a Vulkan loader but no Vulkan driver (no ICD manifest in /usr/share/vulkan/icd.d)';
    case 'software': return softwareRefusal();
    default: return undefined;
  }
}

function softwareRefusal(): string | undefined {
  return process.env[WEBGPU_SOFTWARE_ENV] === '1' ? undefined
    : `only a software Vulkan device (no GPU device node: lavapipe would emulate the GPU on the CPU, slower than the cpu provider); set ${WEBGPU_SOFTWARE_ENV}=1 to use it for correctness checks`;
}

/** The session, the provider that runs it, and why each provider before it was refused ("cuda: <reason>"). */
export interface ProviderSession { session: ort.InferenceSession; provider: ExecutionProviderName; refused: string[] }

const HINTS: Record<ExecutionProviderName, string> = {
  cuda: 'cuda needs an NVIDIA driver, CUDA 12 + cuDNN 9 and `npm run setup:gpu` (docs/engine.md, GPU); or set the provider fallback to cpu',
  webgpu: 'webgpu needs a Vulkan driver on Linux (libvulkan.so.1 and a GPU driver; lavapipe from Mesa >= 23 with COHORT_WEBGPU_SOFTWARE=1 for correctness checks); or set the provider fallback to cpu',
  cpu: 'the CPU provider is built into onnxruntime-node: reinstall it (npm ci)',
};

let blockSize: Promise<number> | undefined;
/**
 * ORT's NCHWc block size on this CPU (16 with AVX-512, 8 with AVX2), read from its own ReorderInput (a [1, 4, 1, 1] input comes
 * back with the block's channel count); 0 where the contrib kernels are missing. Probed once per process.
 */
export function nchwcBlockSize(): Promise<number> {
  blockSize ??= (async () => {
    try {
      const s = await ort.InferenceSession.create(blockSizeProbeModel(), { ...sessionOptions('cpu', 1), enableProfiling: false });
      try {
        const y = (await s.run({ x: new ort.Tensor('float32', new Float32Array(4), [1, 4, 1, 1]) })).y;
        return y.dims.length === 4 ? Number(y.dims[1]) : 0;
      } finally { await s.release(); }
    } catch (e) {
      log.debug({ err: e instanceof Error ? e.message : String(e) }, 'no NCHWc kernels: convolutions with weight inputs stay on the generic path');
      return 0;
    }
  })();
  return blockSize;
}

/** The model as the CPU provider runs it: convolutions whose weights are inputs on ORT's NCHWc kernels (graph/nchwc.ts). */
async function forCpu(model: Uint8Array): Promise<Uint8Array> {
  // a model without the op name "Conv" anywhere in its bytes has no Conv node: skip decoding it (MLPs, large DP-SGD graphs)
  if (!nchwcConfig.convs || Buffer.from(model.buffer, model.byteOffset, model.byteLength).indexOf('Conv') < 0) return model;
  const block = await nchwcBlockSize();
  return (block > 1 ? lowerConvsToNchwc(model, block) : null) ?? model;
}

/** Why provider p cannot create this session, or undefined with the session when it can. */
async function tryProvider(model: Uint8Array, p: ExecutionProviderName, threads: number, extras: SessionExtras):
  Promise<{ session?: ort.InferenceSession; why?: string }> {
  // the quiet probe is a few file checks and depends on the environment (COHORT_WEBGPU_SOFTWARE): not cached
  const quiet = quietProbe(p);
  if (quiet) return { why: quiet };
  if (refused.has(p)) return { why: refused.get(p) };
  try {
    const bytes = p === 'cpu' ? await forCpu(model) : model;
    return { session: await ort.InferenceSession.create(bytes, sessionOptions(p, threads, extras)) };
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    refused.set(p, why);
    return { why };
  }
}

/** Create a session on the first provider that works, under the fallback policy (see the top of this file). */
export async function createSession(model: Uint8Array, providers: readonly ExecutionProviderName[], threads: number,
  fallback: ProviderFallback = 'cpu', extras: SessionExtras = {}): Promise<ProviderSession> {
  if (!providers.length) throw new CohortError('BAD_PROVIDER', 'the execution provider list is empty', 'name at least one of cuda, webgpu, cpu');
  const order = fallback === 'error' ? [providers[0]] : [...new Set([...providers, 'cpu' as const])];
  const errors: string[] = [];
  for (const p of order) {
    const { session, why } = await tryProvider(model, p, threads, extras);
    if (session) {
      if (errors.length) noteFallback(providers, p, errors);
      return { session, provider: p, refused: errors };
    }
    errors.push(`${p}: ${why}`);
  }
  if (fallback === 'error') {
    throw new CohortError('PROVIDER_UNAVAILABLE', `execution provider ${providers[0]} is unavailable here (${errors.join('; ')}) and the provider fallback is 'error'`,
      HINTS[providers[0]]);
  }
  throw new CohortError('NO_EXECUTION_PROVIDER', `no execution provider could run the model (${errors.join('; ')})`, HINTS.cpu);
}

/** One log line per (list, provider) per process: a fallback is never silent, and 100 simulated peers make one line, not 100. */
const noted = new Set<string>();
function noteFallback(asked: readonly ExecutionProviderName[], used: ExecutionProviderName, errors: string[]): void {
  const key = `${asked.join(',')}>${used}`;
  if (noted.has(key)) return;
  noted.add(key);
  const skipped = errors.map((e) => e.slice(0, e.indexOf(':')));
  const msg = `execution provider ${skipped.join(', ')} ${skipped.length > 1 ? 'are' : 'is'} unavailable; falling back to ${used} (${errors.join('; ')})`;
  const byDefault = asked.length === DEFAULT_PROVIDERS.length && asked.every((p, i) => p === DEFAULT_PROVIDERS[i]);
  if (byDefault) log.info({ provider: used, skipped: errors }, msg);
  else log.warn({ provider: used, skipped: errors }, msg);
}
