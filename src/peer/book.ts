/**
 * The peer's scenario book: every verified scenario it knows (signed manifest + merged lifecycle view), persisted in the store's
 * `scenarios` sublevel (`manifest/<id>`, `view/<id>`, `hist/<id>/<site>/<round>`) so that a restarted peer remembers where
 * everything stood. Views only ever grow by merge (src/scenario/lifecycle.ts); history keeps every progress point heard, for reports.
 *
 *   const book = await ScenarioBook.load(store);  book.addManifest(signed);  await book.apply(delta) -> merged view
 *   book.get(id) / book.list() / book.history(id)
 */
import type { Store } from '../store/db.ts';
import { emptyView, merge, type ScenarioView, type SiteProgress } from '../scenario/lifecycle.ts';
import type { SignedScenario } from '../scenario/signing.ts';

export interface BookEntry {
  readonly signed: SignedScenario;
  readonly view: ScenarioView;
}

export interface HistoryPoint extends SiteProgress { readonly site: string }

type Listener = (id: string, view: ScenarioView, prev: ScenarioView) => void;

export class ScenarioBook {
  private readonly manifests = new Map<string, SignedScenario>();
  private readonly views = new Map<string, ScenarioView>();
  private readonly listeners: Listener[] = [];

  private constructor(private readonly store: Store) {}

  static async load(store: Store): Promise<ScenarioBook> {
    const book = new ScenarioBook(store);
    for await (const [key, value] of store.scenarios.iterator({ gte: 'manifest/', lt: 'manifest0' })) {
      book.manifests.set(key.slice('manifest/'.length), value as SignedScenario);
    }
    for await (const [key, value] of store.scenarios.iterator({ gte: 'view/', lt: 'view0' })) {
      book.views.set(key.slice('view/'.length), value as ScenarioView);
    }
    return book;
  }

  onChange(l: Listener): void {
    this.listeners.push(l);
  }

  has(id: string): boolean {
    return this.manifests.has(id);
  }

  get(id: string): BookEntry | undefined {
    const signed = this.manifests.get(id);
    return signed ? { signed, view: this.views.get(id) ?? emptyView(id) } : undefined;
  }

  list(): BookEntry[] {
    return [...this.manifests.keys()].map((id) => this.get(id) as BookEntry).sort((a, b) => a.signed.launchedAt.localeCompare(b.signed.launchedAt));
  }

  async addManifest(signed: SignedScenario): Promise<boolean> {
    if (this.manifests.has(signed.id)) return false;
    this.manifests.set(signed.id, signed);
    await this.store.scenarios.put(`manifest/${signed.id}`, signed);
    const view = this.views.get(signed.id) ?? emptyView(signed.id);
    for (const l of this.listeners) l(signed.id, view, view);
    return true;
  }

  /** Merges a delta; persists the view and any new progress points; tells listeners when something changed. */
  async apply(d: ScenarioView): Promise<ScenarioView> {
    const prev = this.views.get(d.id) ?? emptyView(d.id);
    const next = merge(prev, d);
    if (JSON.stringify(next) === JSON.stringify(prev)) return prev;
    this.views.set(d.id, next);
    const ops: { type: 'put'; key: string; value: unknown }[] = [{ type: 'put', key: `view/${d.id}`, value: next }];
    for (const [site, p] of Object.entries(d.progress)) {
      ops.push({ type: 'put', key: `hist/${d.id}/${site}/${String(p.round).padStart(8, '0')}`, value: { ...p, site } });
    }
    await this.store.scenarios.batch(ops);
    if (this.manifests.has(d.id)) for (const l of this.listeners) l(d.id, next, prev);
    return next;
  }

  async history(id: string): Promise<HistoryPoint[]> {
    const out: HistoryPoint[] = [];
    for await (const [, v] of this.store.scenarios.iterator({ gte: `hist/${id}/`, lt: `hist/${id}0` })) out.push(v as HistoryPoint);
    return out;
  }
}
