/**
 * What this peer refused, by whom and why: messages from non-participants, forged claims, unsolicited pull replies.
 * Counted per (scenario, sender, channel, reason) for `cohort scenario status` and `cohort status`, and written to the audit log
 * in aggregate (one entry per key and flush, with the count since the last flush), so that a flood cannot fill the log.
 *
 *   refusals.record({ scenario, peer, channel: 'model' | 'gossip' | 'connection', reason });   await refusals.flush(audit, nameOf);
 */
import type { AuditLog } from '../store/audit.ts';

/** connection: refused by the roster gater (not-on-roster, removed) or in the handshake after the PSK layer (psk-mismatch). */
export type RefusalChannel = 'model' | 'gossip' | 'connection';

export interface Refusal {
  readonly scenario?: string;
  readonly peer: string;
  readonly channel: RefusalChannel;
  readonly reason: string;
}

export interface RefusalCount extends Refusal {
  count: number;
  firstAt: string;
  lastAt: string;
}

const keyOf = (r: Refusal): string => `${r.scenario ?? '-'}|${r.peer}|${r.channel}|${r.reason}`;

export class Refusals {
  private readonly totals = new Map<string, RefusalCount>();
  private readonly unflushed = new Map<string, number>();

  record(r: Refusal): void {
    const k = keyOf(r);
    const now = new Date().toISOString();
    const t = this.totals.get(k);
    if (t) {
      t.count++;
      t.lastAt = now;
    } else {
      this.totals.set(k, { ...r, count: 1, firstAt: now, lastAt: now });
    }
    this.unflushed.set(k, (this.unflushed.get(k) ?? 0) + 1);
  }

  list(scenario?: string): RefusalCount[] {
    return [...this.totals.values()].filter((r) => scenario === undefined || r.scenario === scenario).map((r) => ({ ...r }));
  }

  /** One audit entry per key with new refusals since the last flush. */
  async flush(audit: AuditLog, nameOf: (peer: string) => string): Promise<void> {
    const batch = [...this.unflushed.entries()];
    this.unflushed.clear();
    for (const [k, n] of batch) {
      const r = this.totals.get(k)!;
      await audit.append({
        kind: 'refused', to: 'local', what: `refused ${n} ${r.channel} message${n === 1 ? '' : 's'} from ${nameOf(r.peer)}: ${r.reason}`,
        ...(r.scenario ? { scenario: r.scenario } : {}), detail: JSON.stringify({ from: r.peer, channel: r.channel, reason: r.reason, count: n }),
      });
    }
  }
}
