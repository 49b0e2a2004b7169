/**
 * What the daemon runs: a scenario manifest (src/scenario/manifest.ts, parsed with its defaults) plus the daemon's launch terms,
 * an optional `launch` block in the same signed document (the manifest schema is strict, so the block is taken off before parsing):
 *   launch: { minPeers (2), approvalWindowMs (3000), startDelayMs (4000), deadlineMs (0), dropAfterRounds (3), startWithinMs (600000),
 *             readyTimeoutMs (60000), run (a label) }
 *   runPlanOf(signedManifest) -> { manifest, launch }   (CohortError BAD_MANIFEST on a manifest the daemon cannot run)
 */
import { z } from 'zod';
import { parseManifest, type ScenarioManifest } from '../scenario/manifest.ts';
import { CohortError } from '../util/errors.ts';

export const LaunchTermsSchema = z.object({
  /** Approvals needed before the launcher starts the run. */
  minPeers: z.number().int().min(1).default(2),
  /** After minPeers approved, how long the launcher waits for the other members' answers. */
  approvalWindowMs: z.number().int().nonnegative().default(3000),
  /** Delay between the start decision and round 0, so that every participant hears it and starts its training worker in time. */
  startDelayMs: z.number().int().nonnegative().default(4000),
  /** The launcher marks the scenario failed when it has not finished this long after launch (0: no deadline). */
  deadlineMs: z.number().int().nonnegative().default(0),
  /** A participant silent for this many rounds is dropped: the others no longer wait for it to finish (docs/daemon.md). */
  dropAfterRounds: z.number().int().min(1).default(3),
  /** Readiness barrier: after the approvals, the launcher waits for every participant's training worker to be ready (their
   *  heartbeats say so) before it fixes round 0, at most this long; a worker ready later joins late. */
  readyTimeoutMs: z.number().int().nonnegative().default(60_000),
  /** A scenario that has not started this long after its launch expires: the launcher marks it failed, every peer lets its
   *  prepared worker go (each peer also caps it with its own admission.startWithinMs). */
  startWithinMs: z.number().int().positive().default(600_000),
  /** Ids are content hashes: change this label to run the same manifest again as a new scenario. */
  run: z.union([z.string().max(100), z.number()]).optional(),
}).strict();
export type LaunchTerms = z.infer<typeof LaunchTermsSchema>;

export interface RunnablePlan {
  readonly manifest: ScenarioManifest;
  readonly launch: LaunchTerms;
  /** The dataset name a peer must offer in its config's `data` section. */
  readonly dataset: string;
}

export function runPlanOf(raw: Readonly<Record<string, unknown>>, source = 'manifest'): RunnablePlan {
  const { launch, ...rest } = raw;
  const terms = LaunchTermsSchema.safeParse(launch ?? {});
  if (!terms.success) {
    const i = terms.error.issues[0];
    throw new CohortError('BAD_MANIFEST', `${source}: launch.${i?.path.join('.') ?? ''}: ${i?.message ?? ''}`, 'launch takes minPeers, approvalWindowMs, startDelayMs');
  }
  const manifest = parseManifest(rest, source);
  const dataset = manifest.data.selector.dataset;
  if (!dataset) {
    throw new CohortError('BAD_MANIFEST', `${source}: data.selector.dataset is missing`, 'real peers match scenarios to their data by dataset name; set data.selector.dataset');
  }
  return { manifest, launch: terms.data, dataset };
}
