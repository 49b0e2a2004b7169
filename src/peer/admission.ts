/**
 * Admission control: what a scenario would cost this peer, estimated from the manifest and the local data's shapes before anything
 * is allocated, and checked against the peer's policy (the `admission` section of cohort.json, with `compute.maxConcurrentScenarios`).
 *
 *   const local = localShapes(plan, dataset)          // per-sample input shapes + sample count, from the CSV / the preprocessing block
 *   const est = estimateScenario(plan, local, { peers })
 *   const verdict = checkLimits(policy, est)         // { ok, reasons }
 *   evaluateManifest(cfg, rawManifest, { author? })   // the whole decision offline: `cohort scenario check MANIFEST --peer DIR`
 *
 * The parameter count and the activation sizes come from building the model's forward pass on a throwaway graph with batch
 * `training.batchSize`: shapes only (parameters are graph inputs, never arrays), so a 10-billion-parameter spec costs a few
 * kilobytes to judge. Memory is an upper estimate of one training worker plus the copies the averaging node keeps.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { readTabular } from '../data/tabular.ts';
import { PreprocessConfigSchema } from '../data/preprocess.ts';
import { GraphBuilder, type Tensor } from '../engine/graph/index.ts';
import { EVAL_MODE, ParamScope } from '../engine/params.ts';
import { buildModel } from '../engine/zoo/index.ts';
import { parseModelSpec } from '../engine/spec.ts';
import { CohortError } from '../util/errors.ts';
import { expanderDegree } from '../averaging/mixing.ts';
import type { LocalDataset } from './config.ts';
import type { RunnablePlan } from './plan.ts';

export const AdmissionPolicySchema = z.object({
  /** Trainable parameters of the model (a 25M-parameter model is ~100 MB per copy in float32). */
  maxParameters: z.number().int().positive().default(25_000_000),
  /** Estimated memory of one scenario on this peer: worker (parameters, gradients, optimizer state, activations, data) + copies
   *  held by the averaging node. */
  maxMemoryBytes: z.number().int().positive().default(2 * 1024 ** 3),
  /** rounds.max x local epochs per round (local steps count as steps / steps-per-epoch). */
  maxRoundsTimesEpochs: z.number().positive().default(20_000),
  /** Wall-clock budget: rounds.max x roundMs (+ the start delay). Default 7 days. */
  maxDurationMs: z.number().int().positive().default(7 * 24 * 3600_000),
  /** Approved scenarios that wait for a compute slot (beyond compute.maxConcurrentScenarios running): further ones are declined. */
  maxQueuedScenarios: z.number().int().min(0).default(2),
  /** An announced scenario that has not started this long after its launch expires on this peer (its prepared worker is let go,
   *  it no longer counts as queued; the launcher marks it failed). */
  startWithinMs: z.number().int().positive().default(10 * 60_000),
  /** The training worker's JavaScript heap limit (MiB; worker resourceLimits): above it the worker stops, the run fails on this
   *  peer and the daemon keeps running. 0: memory estimate x 2, at least 512. */
  workerHeapMiB: z.number().int().min(0).default(0),
  /** A scenario whose worker failed or died this many times on this peer is not resumed at the next start (crash-loop guard). */
  maxWorkerFailures: z.number().int().positive().default(2),
}).strict();
export type AdmissionPolicy = z.infer<typeof AdmissionPolicySchema>;
export const DEFAULT_ADMISSION: AdmissionPolicy = AdmissionPolicySchema.parse({});

/** The largest signed announcement this peer gossips: gossipsub drops messages above ~4 MiB without an error. */
export const MAX_ANNOUNCE_BYTES = 1024 * 1024;

/** The exit code of a training worker that stopped itself over its memory budget (runner.ts reports WORKER_MEMORY_LIMIT). */
export const MEMORY_EXIT_CODE = 75;

/** A training worker's fixed cost (V8 isolate, onnxruntime session and arena) before any model or data. */
export const WORKER_BASE_BYTES = 64 * 1024 ** 2;

export interface LocalShapes {
  /** Per-sample input shapes by SampleSet input name. */
  readonly inputs: Readonly<Record<string, readonly number[]>>;
  /** Local samples (all, before the held-out split). */
  readonly samples: number;
}

export interface Estimate {
  readonly parameters: number;
  readonly buffers: number;
  readonly memory_bytes: number;
  readonly parameter_bytes: number;
  readonly optimizer_bytes: number;
  readonly activation_bytes: number;
  readonly data_bytes: number;
  readonly bytes_per_round: number;
  readonly rounds: number;
  readonly epochs_per_round: number;
  readonly rounds_x_epochs: number;
  readonly steps_per_round: number;
  readonly duration_ms: number;
  readonly batch_size: number;
  readonly samples: number;
  readonly input_shapes: Readonly<Record<string, readonly number[]>>;
}

/** Per-sample input shapes and the sample count of a local dataset, as the training worker will see them (no model built). */
export function localShapes(plan: RunnablePlan, ds: LocalDataset): LocalShapes {
  if (!ds.path) throw new CohortError('NO_MATCHING_DATA', `local dataset "${plan.dataset}" has no path`, 'set data.<name>.path in the peer config');
  const m = plan.manifest;
  if (statSync(ds.path).isDirectory()) {
    const pre = PreprocessConfigSchema.parse(m.data.preprocessing);
    const size = pre.size;
    const spatial = size.length === 2 ? [size[1]!, size[0]!] : [size[2]!, size[1]!, size[0]!];
    const inputs: Record<string, number[]> = { image: [pre.modalities.length, ...spatial] };
    if (pre.tabular) inputs.clinical = [pre.tabular.columns.length];
    const subjects = readdirSync(ds.path).filter((e) => statSync(join(ds.path!, e)).isDirectory()).length;
    return { inputs, samples: subjects * (pre.patches?.count ?? 1) * (pre.augment?.copies ?? 1) };
  }
  const label = (ds.options.label as string | undefined) ?? m.data.selector.label ?? 'label';
  const classNames = m.data.selector.classNames;
  const { set } = readTabular(ds.path, classNames ? { label, classNames } : { label });
  return { inputs: Object.fromEntries(Object.entries(set.inputs).map(([k, t]) => [k, t.shape])), samples: set.size };
}

const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** Bytes of one model on the wire with the manifest's codec. */
function bytesPerParameter(plan: RunnablePlan): number {
  const c = plan.manifest.compression;
  switch (c.codec) {
    case 'f64': return 8;
    case 'f32': return 4;
    case 'fp16': return 2;
    case 'int8': return 1 + 8 / c.blockSize;
    case 'topk': return c.topkFraction * 8;
    default: return 4;
  }
}

/** Out-neighbours per round from the topology (complete: everyone else of `peers`). */
function neighbours(plan: RunnablePlan, peers: number): number {
  const t = plan.manifest.averaging.topology;
  const others = Math.max(1, peers - 1);
  if (t.kind === 'complete') return others;
  if (t.kind === 'ring') return Math.min(2, others);
  if (t.kind === 'dumbbell') return Math.min(Math.ceil(peers / 2), others);
  if (t.kind === 'expander') return Math.min(expanderDegree(peers), others);
  return Math.min(t.degree, others);
}

export function estimateScenario(plan: RunnablePlan, local: LocalShapes, opts: { peers: number }): Estimate {
  const m = plan.manifest;
  const batch = Math.max(1, Math.min(m.training.batchSize, local.samples || m.training.batchSize));
  // shapes only: parameters are graph inputs here, never arrays
  const g = new GraphBuilder('admission');
  const scope = new ParamScope((d) => g.input(`p_${d.name}`, d.shape), (d) => g.input(`b_${d.name}`, d.shape));
  const model = buildModel(parseModelSpec(m.model), local.inputs);
  const x = Object.fromEntries(Object.entries(model.info.inputs).map(([k, s]) => [k, g.input(`in_${k}`, [batch, ...s])])) as Record<string, Tensor>;
  model.forward(g, scope, x, EVAL_MODE);
  const parameters = scope.decls.reduce((a, d) => a + prod(d.shape), 0);
  const buffers = scope.buffers.reduce((a, d) => a + prod(d.shape), 0);
  const activations = g.nodes.reduce((a, n) => a + n.outputs.reduce((b, t) => b + (t.dtype === 'float32' ? prod(t.shape) : 0), 0), 0);
  const slots = m.optimizer.type === 'sgd' ? (m.optimizer.momentum > 0 ? 1 : 0) : 2;
  const parameter_bytes = parameters * 4;
  const optimizer_bytes = parameter_bytes * slots;
  // forward values kept for the backward pass and their gradients, with the arena's slack
  const activation_bytes = activations * 4 * 3;
  const perSample = Object.values(local.inputs).reduce((a, s) => a + prod(s), 0);
  const data_bytes = local.samples * perSample * 4 * 2;
  const nb = neighbours(plan, opts.peers);
  // worker: parameters in/out + gradients + optimizer state in/out; main thread: the averaging node's copies + one per neighbour
  const memory_bytes = Math.round(WORKER_BASE_BYTES + parameter_bytes * (3 + 2 * slots) + buffers * 8 + activation_bytes + data_bytes + parameter_bytes * (4 + nb));
  const perEpoch = Math.ceil(Math.max(1, local.samples) / batch);
  const epochs_per_round = m.training.localSteps !== undefined ? m.training.localSteps / perEpoch : m.training.localEpochs;
  const steps_per_round = m.training.localSteps ?? Math.max(1, Math.round(m.training.localEpochs * perEpoch));
  const rounds = m.rounds.max;
  return {
    parameters, buffers, memory_bytes, parameter_bytes, optimizer_bytes, activation_bytes, data_bytes,
    bytes_per_round: Math.round(parameters * bytesPerParameter(plan) * nb),
    rounds, epochs_per_round, rounds_x_epochs: rounds * epochs_per_round, steps_per_round,
    duration_ms: rounds * m.averaging.roundMs + plan.launch.startDelayMs,
    batch_size: batch, samples: local.samples, input_shapes: local.inputs,
  };
}

const mib = (b: number): string => `${(b / 1024 ** 2).toFixed(0)} MiB`;
const human = (n: number): string => (n >= 1e9 ? n.toExponential(2) : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : String(Math.round(n * 100) / 100));

/** Every limit the estimate exceeds, as a sentence naming the setting (empty: within the policy). */
export function checkLimits(p: AdmissionPolicy, e: Estimate): string[] {
  const r: string[] = [];
  if (e.parameters > p.maxParameters) r.push(`model has ${human(e.parameters)} parameters, above admission.maxParameters ${human(p.maxParameters)}`);
  if (e.memory_bytes > p.maxMemoryBytes) r.push(`estimated memory ${mib(e.memory_bytes)} is above admission.maxMemoryBytes ${mib(p.maxMemoryBytes)}`);
  if (e.rounds_x_epochs > p.maxRoundsTimesEpochs) r.push(`rounds x local epochs = ${human(e.rounds_x_epochs)} is above admission.maxRoundsTimesEpochs ${human(p.maxRoundsTimesEpochs)}`);
  if (e.duration_ms > p.maxDurationMs) r.push(`wall-clock budget ${human(e.duration_ms / 3600_000)} h is above admission.maxDurationMs (${human(p.maxDurationMs / 3600_000)} h)`);
  return r;
}

export interface CheckResult {
  readonly decision: 'approve' | 'decline' | 'manual';
  readonly reasons: string[];
  readonly estimate?: Estimate;
}

/**
 * The admission part of a peer's answer to a scenario: decline (cannot run it, no data, or over a limit) or pass (with the estimate).
 * `queued`: approved scenarios of this peer that have not ended (running or waiting); checked against the slots + queue.
 */
export function admit(cfg: { admission: AdmissionPolicy; compute: { maxConcurrentScenarios: number } }, plan: RunnablePlan, ds: LocalDataset | undefined,
  opts: { peers: number; queued?: number }): CheckResult {
  if (!ds) return { decision: 'decline', reasons: [`no local dataset "${plan.dataset}"`] };
  let estimate: Estimate;
  try {
    estimate = estimateScenario(plan, localShapes(plan, ds), opts);
  } catch (e) {
    return { decision: 'decline', reasons: [`the model does not fit the local data: ${(e as Error).message}`] };
  }
  const reasons = checkLimits(cfg.admission, estimate);
  const cap = cfg.compute.maxConcurrentScenarios + cfg.admission.maxQueuedScenarios;
  if (opts.queued !== undefined && opts.queued >= cap) {
    reasons.push(`this peer already has ${opts.queued} approved scenarios running or waiting (compute.maxConcurrentScenarios ${cfg.compute.maxConcurrentScenarios} + admission.maxQueuedScenarios ${cfg.admission.maxQueuedScenarios})`);
  }
  return { decision: reasons.length ? 'decline' : 'approve', reasons, estimate };
}

/**
 * `cohort scenario check MANIFEST --peer DIR`: the peer's answer, worked out offline from its config, its roster and its data
 * (datasets of the config's `data` section; no daemon, no store). `decision`: decline (a limit, no data, a manifest it cannot run),
 * approve (within the limits and the approval policy approves automatically) or manual (within the limits; the operator decides).
 * `author`: the launcher's peer ID or roster name (default: this peer, as when its own researcher launches).
 */
export async function evaluateManifest(configFile: string, raw: Record<string, unknown>, opts: { author?: string } = {}): Promise<CheckResult & { scenario: string; peer: string }> {
  const { loadDaemonConfig } = await import('./config.ts');
  const { runPlanOf } = await import('./plan.ts');
  const { Roster, readRosterFile } = await import('../net/roster.ts');
  const { loadIdentity } = await import('../net/identity.ts');
  const { decide } = await import('../scenario/approval.ts');
  const { scenarioId } = await import('../scenario/signing.ts');
  const cfg = loadDaemonConfig(configFile);
  const roster = new Roster(readRosterFile(cfg.net.rosterFile));
  const id = scenarioId(raw);
  const base = { scenario: id, peer: cfg.name };
  let plan: RunnablePlan;
  try {
    plan = runPlanOf(raw);
  } catch (e) {
    return { ...base, decision: 'decline', reasons: [`cannot run this manifest: ${(e as Error).message}`] };
  }
  const peers = roster.members.filter((m) => m.roles.includes('data-provider')).length;
  const verdict = admit(cfg, plan, cfg.data[plan.dataset], { peers });
  if (verdict.decision === 'decline') return { ...base, ...verdict };
  const given = opts.author ?? (await loadIdentity(cfg.net.keyFile)).peerId.toString();
  const author = roster.members.find((m) => m.name === given)?.peerId ?? given;
  const policy = decide(cfg.approval, { id, author, manifest: raw, launchedAt: new Date().toISOString(), sig: '' }, roster);
  return { ...base, ...verdict, decision: policy.auto ? 'approve' : 'manual', reasons: policy.auto ? [`auto-approved: ${policy.rule}`] : ['within the limits; the approval policy leaves it to the operator'] };
}
