/**
 * One intensity z-score per modality for a whole consortium (issue 13.1, images): data.preprocessing.intensity.<MODALITY> =
 * { method: 'zscore', scope: 'consortium' }. The per-image z-score (preprocess.ts normaliseIntensity) takes each crop's own mean
 * and sd over all its voxels; this one takes the mean and sd over all voxels of every site's training crops, agreed through the
 * same statistics exchange as the tabular standardiser (src/peer/stats-exchange.ts), so every peer applies the same transform and
 * the export can carry it in-graph as two constants per channel.
 *
 *   consortiumModalities(cfg)             -> [{ modality, channel }] the channels with the consortium scope (config order)
 *   intensityStats(train, cfg, { minCount })
 *                                         -> SiteStats: per such modality one "feature" `intensity:<MODALITY>` = [voxel count, sum,
 *                                            sum of squares] over the raw training crops; a site below minCount samples -> null
 *   agreedIntensity(agreed, cfg)          -> { MODALITY: { mean, std } } from the agreed standardiser (agreeStandardiser's output)
 *   applyAgreedIntensity(set, cfg, agreed) -> the set's `image` channels z-scored with those
 *   checkIntensityScope(preprocessing)    -> throws when a consortium intensity meets standardize "consortium"/"site"
 *   ownIntensityScale(set, train, cfg)    -> one site alone (cohort train): its training part's values, applied to the whole set
 *
 * Why the same SiteStats shape as the tables: combineStats / agreeStandardiser / the exchange / the hash / the store all apply
 * unchanged (one message, one decider, one hash in every report). The sd is the (n-1) one of agreeStandardiser; over the
 * hundreds of thousands of voxels of a site it differs from the per-image population sd by a factor 1 + 1/(2n).
 */
import { selectSamples, type SampleSet, type SampleTensor } from './samples.ts';
import { parsePreprocessConfig, type PreprocessConfig } from './preprocess.ts';
import { agreeStandardiser, checkIntensityStandardize, combineStats, SMALL_COUNT, type AgreedStandardiser, type SiteStats } from './standardiser-stats.ts';
import { CohortError } from '../util/errors.ts';

/** Input name prefix of a modality's voxel statistics in SiteStats / AgreedStandardiser (never a model input). */
export const INTENSITY_PREFIX = 'intensity:';

export interface IntensityChannel { readonly modality: string; readonly channel: number }

/** The channels of `image` whose intensity is a consortium-wide z-score, in the config's modality order. */
export function consortiumModalities(cfg: PreprocessConfig): IntensityChannel[] {
  return cfg.modalities.flatMap((modality, channel) => {
    const c = cfg.intensity[modality];
    return c?.method === 'zscore' && c.scope === 'consortium' ? [{ modality, channel }] : [];
  });
}

/**
 * The consortium channels of a scenario's data.preprocessing, read leniently: a table scenario (no intensity block) has none.
 * Used by the simulator, whose preprocessing may carry extra keys (synthetic, standardize) that the image config ignores.
 */
export function consortiumChannelsOf(preprocessing: Readonly<Record<string, unknown>>): { cfg: PreprocessConfig; channels: IntensityChannel[] } | undefined {
  if (preprocessing['intensity'] === undefined || preprocessing['size'] === undefined) return undefined;
  const cfg = parsePreprocessConfig(preprocessing);
  const channels = consortiumModalities(cfg);
  return channels.length ? { cfg, channels } : undefined;
}

/**
 * A consortium intensity z-score is the images' consortium scaling; a per-voxel standardiser on top (standardize "consortium" or
 * "site") would be fitted on raw intensities before the agreed transform exists, so the two are refused together.
 */
export function checkIntensityScope(preprocessing: Readonly<Record<string, unknown>>, cfg: PreprocessConfig): void {
  if (consortiumModalities(cfg).length) checkIntensityStandardize(preprocessing);
}

function imageOf(set: SampleSet): SampleTensor {
  const t = set.inputs['image'];
  if (!t || t.shape.length < 2) throw new CohortError('NO_IMAGE', 'the set has no image input [C, ...]', 'a consortium intensity z-score needs preprocessed images');
  return t;
}

/** This site's voxel statistics per consortium modality (raw training crops, every voxel), or null below minCount samples. */
export function intensityStats(train: SampleSet, cfg: PreprocessConfig, o: { minCount?: number } = {}): SiteStats | null {
  const min = o.minCount ?? SMALL_COUNT;
  if (train.size < min) return null;
  const img = imageOf(train);
  const C = img.shape[0]!, voxels = img.shape.slice(1).reduce((a, b) => a * b, 1);
  const inputs: Record<string, { n: number[]; sum: number[]; sumsq: number[] }> = {};
  for (const { modality, channel } of consortiumModalities(cfg)) {
    let n = 0, sum = 0, sumsq = 0;
    for (let i = 0; i < train.size; i++) {
      const from = (i * C + channel) * voxels;
      for (let v = from; v < from + voxels; v++) {
        const x = img.data[v]!;
        if (Number.isNaN(x)) continue;
        n++; sum += x; sumsq += x * x;
      }
    }
    inputs[INTENSITY_PREFIX + modality] = n < min ? { n: [0], sum: [0], sumsq: [0] } : { n: [n], sum: [sum], sumsq: [sumsq] };
  }
  return { rows: train.size, sites: 1, inputs };
}

/** The agreed mean and sd of each consortium modality. */
export function agreedIntensity(agreed: AgreedStandardiser, cfg: PreprocessConfig): Record<string, { mean: number; std: number }> {
  return Object.fromEntries(consortiumModalities(cfg).map(({ modality }) => {
    const s = agreed.inputs[INTENSITY_PREFIX + modality];
    if (!s || s.mean.length !== 1) {
      throw new CohortError('STANDARDISER_SHAPE', `the agreed standardiser has no intensity statistics for ${modality}`, 'every site must run the same image preprocessing');
    }
    return [modality, { mean: s.mean[0]!, std: s.std[0]! }];
  }));
}

/** The set with each consortium channel of `image` z-scored with the agreed mean and sd (float32, as the export computes it). */
export function applyAgreedIntensity(set: SampleSet, cfg: PreprocessConfig, agreed: AgreedStandardiser): SampleSet {
  const img = imageOf(set);
  const C = img.shape[0]!, voxels = img.shape.slice(1).reduce((a, b) => a * b, 1);
  const stats = agreedIntensity(agreed, cfg);
  const data = Float32Array.from(img.data);
  for (const { modality, channel } of consortiumModalities(cfg)) {
    const { mean, std } = stats[modality]!;
    const m = Math.fround(mean), s = Math.fround(std);
    for (let i = 0; i < set.size; i++) {
      const from = (i * C + channel) * voxels;
      for (let v = from; v < from + voxels; v++) data[v] = Math.fround(data[v]! - m) / s;
    }
  }
  return { ...set, inputs: { ...set.inputs, image: { shape: img.shape, data } } };
}

/**
 * One site on its own (`cohort train --data FOLDER`): its training part is the whole consortium, so the mean and sd come from it
 * and apply to every sample (held-out ones too). Undefined when the config has no consortium-scope channel.
 */
export function ownIntensityScale(set: SampleSet, train: readonly number[], cfg: PreprocessConfig): { set: SampleSet; agreed: Record<string, { mean: number; std: number }> } | undefined {
  if (!consortiumModalities(cfg).length) return undefined;
  const s = agreeStandardiser(combineStats([intensityStats(selectSamples(set, [...train]), cfg, { minCount: 0 })!]), { mode: 'site' });
  return { set: applyAgreedIntensity(set, cfg, s), agreed: agreedIntensity(s, cfg) };
}
