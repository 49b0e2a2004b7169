/**
 * The datasets this peer offers to scenarios, by name: the config's `data` section first, then the dataset registry in the store
 * (`cohort data add`, src/store/datasets.ts; the record's id is the name, its first path the data, `synthetic` tag honoured).
 *   const data = new LocalData(cfg, new DatasetRegistry(store.datasets));   await data.get('wdbc') -> LocalDataset | undefined
 */
import type { DatasetRegistry } from '../store/datasets.ts';
import type { DaemonConfig, LocalDataset } from './config.ts';

export class LocalData {
  constructor(private readonly cfg: DaemonConfig, private readonly registry: DatasetRegistry) {}

  async get(name: string): Promise<LocalDataset | undefined> {
    const configured = this.cfg.data[name];
    if (configured) return configured;
    const r = await this.registry.get(name).catch(() => undefined);
    const path = r?.paths[0];
    if (!r || !path) return undefined;
    return { path, options: r.label ? { label: r.label } : {}, synthetic: r.tags.includes('synthetic') };
  }

  async names(): Promise<string[]> {
    const registered = await this.registry.list().catch(() => []);
    return [...new Set([...Object.keys(this.cfg.data), ...registered.map((r) => r.id)])].sort();
  }
}
