/**
 * The simulator's input scale where it must match the real peers' agreement (issue 13.1), with the peers' own functions:
 *
 *   withTarget(set, regression)             the set whose statistics a site shares (a regression target as input `target`)
 *   onScale(set, s, regression)             inputs z-scored with the standardiser; a regression target with the target statistics it carries
 *   targetOnlyScale(parts, others, ...)     standardize off, regression: the target alone on the consortium scale of the training parts
 *   imageIntensityScale(preprocessing, ...) images with intensity { method: zscore, scope: consortium }: the sites' voxel statistics
 *                                           agreed (src/data/intensity-stats.ts) and applied to every part
 *
 * Only training parts contribute, as on real peers: held-out rows never enter a mean or sd.
 */
import type { SampleSet } from '../data/samples.ts';
import { applyAgreedIntensity, checkIntensityScope, consortiumChannelsOf, intensityStats } from '../data/intensity-stats.ts';
import { scaleTarget, targetScaleOf, withTargetInput } from '../data/site-table.ts';
import { agreeStandardiser, applyAgreed, combineStats, type AgreedStandardiser } from '../data/standardiser-stats.ts';
import { CohortError } from '../util/errors.ts';
import { consortiumStandardiser } from './datasets.ts';

export interface ScaledParts {
  readonly parts: SampleSet[];
  /** The held-out sets (and anything else to put on the same scale), in the order given. */
  readonly others: SampleSet[];
  readonly standardiser?: { readonly mode: 'consortium'; readonly hashes: string[]; readonly suppressed_sites: number };
}

export function withTarget(set: SampleSet, regression: boolean): SampleSet {
  return regression ? withTargetInput(set) : set;
}

export function onScale(set: SampleSet, s: AgreedStandardiser, regression: boolean): SampleSet {
  const x = applyAgreed(set, s);
  return regression ? scaleTarget(x, targetScaleOf(s)) : x;
}

/** Regression with raw inputs: one target scale for the run, from the training parts' [n, sum, sumsq] of the target. */
export function targetOnlyScale(parts: SampleSet[], others: SampleSet[], minCount: number): ScaledParts {
  const targetOnly = (p: SampleSet): SampleSet => withTargetInput({ ...p, inputs: {} });
  const { standardiser: s } = consortiumStandardiser(parts.map(targetOnly), { minCount });
  const t = targetScaleOf(s);
  return { parts: parts.map((p) => scaleTarget(p, t)), others: others.map((p) => scaleTarget(p, t)) };
}

/** Images with consortium-scope intensity z-scores: undefined when the preprocessing has none. */
export function imageIntensityScale(preprocessing: Readonly<Record<string, unknown>>, parts: SampleSet[], others: SampleSet[], minCount: number): ScaledParts | undefined {
  const image = consortiumChannelsOf(preprocessing);
  if (!image) return undefined;
  checkIntensityScope(preprocessing, image.cfg);
  const stats = parts.map((p) => intensityStats(p, image.cfg, { minCount }));
  const present = stats.filter((x) => x !== null);
  if (!present.length) {
    throw new CohortError('NO_STATISTICS', `every one of the ${parts.length} simulated sites has fewer training samples than the small-count rule allows to share`,
      'use fewer peers, or lower data.preprocessing.minCount');
  }
  const agreed = agreeStandardiser(combineStats(present), { mode: 'consortium' });
  const apply = (p: SampleSet): SampleSet => applyAgreedIntensity(p, image.cfg, agreed);
  return { parts: parts.map(apply), others: others.map(apply), standardiser: { mode: 'consortium', hashes: [agreed.hash], suppressed_sites: parts.length - present.length } };
}
