/**
 * A peer's privacy ledger: the epsilon spent per dataset across scenarios, against a lifetime budget from its config.
 * Composition across scenarios is basic composition (epsilons and deltas add up), which holds for any mix of mechanisms; the
 * within-scenario accounting is RDP (accountant.ts). The ledger refuses a reservation that would exceed the budget, and
 * records the epsilon actually spent when a scenario ends (at most what was reserved). Storage is a small key-value interface
 * (the peer's LevelDB store implements it; tests use a Map).
 */
import { CohortError } from '../util/errors.ts';

export interface LedgerEntry {
  readonly scenario: string;
  readonly dataset: string;
  /** Reserved at approval; replaced by the spent value when the scenario ends. */
  readonly epsilon: number;
  readonly delta: number;
  readonly state: 'reserved' | 'spent';
  readonly at: string;
}

export interface LedgerStore {
  get(key: string): Promise<LedgerEntry[] | undefined>;
  put(key: string, value: LedgerEntry[]): Promise<void>;
}

export class MemoryLedgerStore implements LedgerStore {
  private readonly m = new Map<string, LedgerEntry[]>();
  async get(key: string): Promise<LedgerEntry[] | undefined> { return this.m.get(key)?.map((e) => ({ ...e })); }
  async put(key: string, value: LedgerEntry[]): Promise<void> { this.m.set(key, value.map((e) => ({ ...e }))); }
}

export class PrivacyLedger {
  constructor(private readonly store: LedgerStore, readonly lifetimeEpsilon: number | undefined) {}

  async entries(dataset: string): Promise<LedgerEntry[]> { return (await this.store.get(`privacy:${dataset}`)) ?? []; }

  /** Epsilon spent or reserved on a dataset (basic composition). */
  async spent(dataset: string): Promise<number> {
    return (await this.entries(dataset)).reduce((a, e) => a + e.epsilon, 0);
  }

  /** Reserve a scenario's epsilon before it runs; refused (PRIVACY_BUDGET) if the lifetime budget would be exceeded. */
  async reserve(dataset: string, scenario: string, epsilon: number, delta: number, at = new Date().toISOString()): Promise<LedgerEntry> {
    if (!(epsilon > 0) || !Number.isFinite(epsilon)) throw new CohortError('BAD_PRIVACY', `epsilon must be positive, got ${epsilon}`, 'reserve the scenario\'s privacy.dp.epsilon');
    const list = await this.entries(dataset);
    if (list.some((e) => e.scenario === scenario)) throw new CohortError('PRIVACY_BUDGET', `scenario ${scenario} already has a reservation on ${dataset}`, 'reserve once per scenario');
    const used = list.reduce((a, e) => a + e.epsilon, 0);
    if (this.lifetimeEpsilon !== undefined && used + epsilon > this.lifetimeEpsilon + 1e-12) {
      throw new CohortError('PRIVACY_BUDGET', `epsilon ${epsilon} would exceed the lifetime budget of dataset ${dataset}: ${used} of ${this.lifetimeEpsilon} already spent`,
        'decline the scenario, or ask the data-protection officer to raise approval.privacy.lifetimeEpsilon');
    }
    const entry: LedgerEntry = { scenario, dataset, epsilon, delta, state: 'reserved', at };
    await this.store.put(`privacy:${dataset}`, [...list, entry]);
    return entry;
  }

  /** Drop a reservation that nothing was spent against (the scenario ended before this peer trained); false if none or settled. */
  async release(dataset: string, scenario: string): Promise<LedgerEntry | null> {
    const list = await this.entries(dataset);
    const k = list.findIndex((e) => e.scenario === scenario && e.state === 'reserved');
    if (k < 0) return null;
    const [gone] = list.splice(k, 1);
    await this.store.put(`privacy:${dataset}`, list);
    return gone!;
  }

  /** Record what a scenario actually spent (the accountant's figure); never more than reserved. */
  async settle(dataset: string, scenario: string, epsilonSpent: number, at = new Date().toISOString()): Promise<LedgerEntry> {
    const list = await this.entries(dataset);
    const k = list.findIndex((e) => e.scenario === scenario);
    if (k < 0) throw new CohortError('PRIVACY_BUDGET', `no reservation for scenario ${scenario} on ${dataset}`, 'reserve before training');
    const r = list[k]!;
    if (epsilonSpent > r.epsilon + 1e-9) throw new CohortError('PRIVACY_BUDGET', `scenario ${scenario} spent epsilon ${epsilonSpent}, above its reservation ${r.epsilon}`, 'the trainer must stop at its planned steps');
    const entry: LedgerEntry = { ...r, epsilon: epsilonSpent, state: 'spent', at };
    list[k] = entry;
    await this.store.put(`privacy:${dataset}`, list);
    return entry;
  }
}
