/**
 * The dataset registry of a peer: one JSON record per registered dataset in the store's `datasets` sublevel (key = dataset id).
 * The LevelDB sublevel is injected (the daemon passes store.datasets from src/store/db.ts; the CLI opens a store by --store DIR).
 *   const reg = new DatasetRegistry(store.datasets)
 *   await reg.add(record, { replace })   await reg.get(id)   await reg.list()   await reg.remove(id)
 * Records are validated with DatasetRecordSchema on the way in and out. Building a record from files is src/data/register.ts.
 */
import { z } from 'zod';
import { CohortError } from '../util/errors.ts';
import type { JsonSublevel } from './db.ts';

export const DatasetRecordSchema = z.object({
  id: z.string().min(1),
  kind: z.enum(['tabular', 'image', 'folder', 'dicom']),
  modalities: z.array(z.string()),
  paths: z.array(z.string()),
  label: z.string().optional(),
  masks: z.array(z.string()).default([]),
  tags: z.array(z.string()).default([]),
  samples: z.number().int().nonnegative(),
  labelBalance: z.record(z.string(), z.number().int().nonnegative()).optional(),
  contentHash: z.string(),
  addedAt: z.string(),
  /** kind-specific details for the local peer only (dims, spacing, feature names); never gossiped */
  details: z.record(z.string(), z.unknown()).default({}),
});
export type DatasetRecord = z.infer<typeof DatasetRecordSchema>;


/** The few sublevel operations the registry needs (a level sublevel satisfies it). */
export type DatasetSublevel = Pick<JsonSublevel, 'get' | 'put' | 'del' | 'iterator'>;

export class DatasetRegistry {
  constructor(private readonly db: DatasetSublevel) {}

  async add(record: DatasetRecord, opts: { replace?: boolean } = {}): Promise<DatasetRecord> {
    const r = DatasetRecordSchema.parse(record);
    if (!opts.replace && (await this.get(r.id))) {
      throw new CohortError('DATASET_EXISTS', `a dataset '${r.id}' is already registered`, 'choose another --id, or remove it first (cohort data remove ID)');
    }
    await this.db.put(r.id, r);
    return r;
  }

  async get(id: string): Promise<DatasetRecord | undefined> {
    const v = await this.db.get(id);
    if (v === undefined) return undefined;
    const parsed = DatasetRecordSchema.safeParse(v);
    if (!parsed.success) throw new CohortError('DATASET_CORRUPT', `the registry entry '${id}' is not a valid dataset record`, 'remove it and register the data again');
    return parsed.data;
  }

  async require(id: string): Promise<DatasetRecord> {
    const r = await this.get(id);
    if (!r) {
      const ids = (await this.list()).map((d) => d.id);
      throw new CohortError('DATASET_NOT_FOUND', `no dataset '${id}' is registered`, ids.length ? `registered: ${ids.join(', ')}` : 'register one with cohort data add PATH');
    }
    return r;
  }

  async list(): Promise<DatasetRecord[]> {
    const out: DatasetRecord[] = [];
    for await (const [, v] of this.db.iterator()) {
      const parsed = DatasetRecordSchema.safeParse(v);
      if (parsed.success) out.push(parsed.data);
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  async remove(id: string): Promise<DatasetRecord> {
    const r = await this.require(id);
    await this.db.del(id);
    return r;
  }
}
