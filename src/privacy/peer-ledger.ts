/**
 * The privacy ledger of a running peer (docs/privacy.md "Policy and budget"): PrivacyLedger (budget.ts) kept in the peer's LevelDB
 * store, every reservation and settlement written to the audit log (kind `privacy`), and the per-dataset summary that
 * `cohort status` and the scenario report show. A scenario's epsilon is reserved when this peer approves it and settled with the
 * accountant's figure when this peer's run ends; a run that fails or is cancelled keeps its whole reservation (conservative:
 * the steps it took are not known to the ledger).
 */
import type { JsonSublevel } from '../store/db.ts';
import type { AuditLog } from '../store/audit.ts';
import { PrivacyLedger, type LedgerEntry, type LedgerStore } from './budget.ts';

/** LedgerStore over a JSON sublevel (the store's `meta`), keys `privacy:<dataset>`. */
export class SublevelLedgerStore implements LedgerStore {
  constructor(private readonly level: JsonSublevel) {}
  async get(key: string): Promise<LedgerEntry[] | undefined> { return (await this.level.get(key)) as LedgerEntry[] | undefined; }
  async put(key: string, value: LedgerEntry[]): Promise<void> { await this.level.put(key, value); }
}

export interface DatasetBudget {
  readonly dataset: string;
  /** Epsilon settled (spent) plus reserved by scenarios not ended yet (basic composition). */
  readonly spent: number;
  readonly reserved: number;
  readonly lifetime: number | null;
  readonly remaining: number | null;
  readonly scenarios: number;
}

/** The scenario's DP settings as the ledger needs them, or null (no privacy.dp). */
export function dpOf(manifest: Record<string, unknown>): { epsilon: number; delta: number } | null {
  const dp = (manifest.privacy as { dp?: { epsilon?: unknown; delta?: unknown } } | undefined)?.dp;
  if (typeof dp?.epsilon !== 'number') return null;
  return { epsilon: dp.epsilon, delta: typeof dp.delta === 'number' ? dp.delta : 1e-5 };
}

const r6 = (v: number): number => Math.round(v * 1e6) / 1e6;

export class PeerLedger {
  readonly ledger: PrivacyLedger;
  constructor(level: JsonSublevel, readonly lifetimeEpsilon: number | undefined, private readonly audit: AuditLog) {
    this.ledger = new PrivacyLedger(new SublevelLedgerStore(level), lifetimeEpsilon);
  }

  spent(dataset: string): Promise<number> { return this.ledger.spent(dataset); }

  /** Reserve at approval (PRIVACY_BUDGET when the lifetime budget would be exceeded); audited. Idempotent per scenario. */
  async reserve(dataset: string, scenario: string, epsilon: number, delta: number): Promise<void> {
    if ((await this.ledger.entries(dataset)).some((e) => e.scenario === scenario)) return;
    await this.ledger.reserve(dataset, scenario, epsilon, delta);
    const total = await this.ledger.spent(dataset);
    await this.audit.append({ kind: 'privacy', to: 'local', what: `privacy budget: reserved epsilon ${epsilon} on ${dataset}`, scenario,
      detail: JSON.stringify({ dataset, epsilon, delta, state: 'reserved', total: r6(total), lifetime: this.lifetimeEpsilon ?? null }) });
  }

  /** Record what this peer's run actually spent (the accountant's figure, at most the reservation); audited. */
  async settle(dataset: string, scenario: string, epsilonSpent: number): Promise<void> {
    const e = (await this.ledger.entries(dataset)).find((x) => x.scenario === scenario);
    if (!e || e.state === 'spent') return;
    await this.ledger.settle(dataset, scenario, Math.min(epsilonSpent, e.epsilon));
    const total = await this.ledger.spent(dataset);
    await this.audit.append({ kind: 'privacy', to: 'local', what: `privacy budget: spent epsilon ${r6(epsilonSpent)} of ${e.epsilon} reserved on ${dataset}`, scenario,
      detail: JSON.stringify({ dataset, epsilon: r6(epsilonSpent), reserved: e.epsilon, state: 'spent', total: r6(total), lifetime: this.lifetimeEpsilon ?? null }) });
  }

  /** The scenario ended before this peer took a training step (not in the run plan, cancelled, failed): nothing was spent. */
  async release(dataset: string, scenario: string): Promise<void> {
    const gone = await this.ledger.release(dataset, scenario);
    if (!gone) return;
    const total = await this.ledger.spent(dataset);
    await this.audit.append({ kind: 'privacy', to: 'local', what: `privacy budget: released epsilon ${gone.epsilon} on ${dataset} (no training step taken)`, scenario,
      detail: JSON.stringify({ dataset, epsilon: gone.epsilon, state: 'released', total: r6(total), lifetime: this.lifetimeEpsilon ?? null }) });
  }

  /** The scenario's entry on a dataset (for the report), if any. */
  async entry(dataset: string, scenario: string): Promise<LedgerEntry | undefined> {
    return (await this.ledger.entries(dataset)).find((e) => e.scenario === scenario);
  }

  /** Spent / reserved / remaining per dataset, for `cohort status`. */
  async summary(datasets: readonly string[]): Promise<DatasetBudget[]> {
    return Promise.all(datasets.map(async (dataset) => {
      const list = await this.ledger.entries(dataset);
      const spent = list.reduce((a, e) => a + e.epsilon, 0);
      const reserved = list.filter((e) => e.state === 'reserved').reduce((a, e) => a + e.epsilon, 0);
      const lifetime = this.lifetimeEpsilon ?? null;
      return { dataset, spent: r6(spent), reserved: r6(reserved), lifetime, remaining: lifetime === null ? null : r6(Math.max(0, lifetime - spent)), scenarios: list.length };
    }));
  }
}

/**
 * Privacy settings a real peer cannot honour (declined with this reason rather than run without them), or null. The manifest's
 * own rules (src/scenario/manifest.ts privacyConflict: rule, codec, degree, Cox) are checked before; these are the daemon's.
 */
export function privacyUnsupported(manifest: Record<string, unknown>): string | null {
  const p = manifest.privacy as { secure?: unknown } | undefined;
  if (p?.secure !== true) return null;
  const topology = (manifest.averaging as { topology?: { kind?: unknown } } | undefined)?.topology?.kind;
  if (topology === 'time-varying') return 'secure averaging needs a static graph (the mixing weights and masks are agreed once, at setup); the scenario redraws its graph every round';
  const given = (manifest.launch as { minPeers?: unknown } | undefined)?.minPeers;
  const minPeers = typeof given === 'number' ? given : 2; // the run plan's default (src/peer/plan.ts)
  if (minPeers < 3) return `secure averaging needs at least 3 participants (a receiver with one sender would see its model); launch.minPeers is ${minPeers}`;
  return null;
}
