/**
 * Privacy-safe catalogue entries: what a peer may tell others about a registered dataset (the net/daemon gossips them).
 *   catalogueEntry(record, { minCount })  -> { id, kind, modalities, samples, labelBalance, tags }
 * Only counts, modality names, label balance and tags leave; never paths, file names, subject ids, hashes or values.
 * Small counts are suppressed: any count below minCount (default 10, the usual small-cell rule) is reported as "<10", and the
 * sample count is rounded down to a multiple of 5 so that adding one patient is not observable.
 */
import type { DatasetRecord } from '../store/datasets.ts';

export interface CatalogueEntry {
  readonly id: string;
  readonly kind: DatasetRecord['kind'];
  readonly modalities: readonly string[];
  /** Rounded down to a multiple of 5, or "<minCount". */
  readonly samples: number | string;
  /** class -> count, each count below minCount shown as "<minCount". */
  readonly labelBalance?: Readonly<Record<string, number | string>>;
  readonly tags: readonly string[];
}

export function catalogueEntry(r: DatasetRecord, opts: { minCount?: number } = {}): CatalogueEntry {
  const min = opts.minCount ?? 10;
  const suppress = (n: number): number | string => (n < min ? `<${min}` : n);
  return {
    id: r.id,
    kind: r.kind,
    modalities: [...r.modalities],
    samples: r.samples < min ? `<${min}` : Math.floor(r.samples / 5) * 5,
    ...(r.labelBalance ? { labelBalance: Object.fromEntries(Object.entries(r.labelBalance).map(([k, n]) => [k, suppress(n)])) } : {}),
    tags: [...r.tags],
  };
}

/** The body of a `catalogue` gossip message (src/net/pubsub.ts CatalogueBody): the entry under `summary`, nothing else. */
export function catalogueGossipBody(r: DatasetRecord, opts: { minCount?: number } = {}): { datasetId: string; kind: string; summary: Record<string, unknown> } {
  const { id, kind, ...summary } = catalogueEntry(r, opts);
  return { datasetId: id, kind, summary: { ...summary } };
}
