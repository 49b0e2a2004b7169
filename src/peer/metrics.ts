/**
 * The peer's Prometheus metrics (prom-client), served at GET /metrics on the admin listener (bearer token, like every route).
 * Counters that live elsewhere (net/metrics.ts, refusals.ts, the averaging nodes' stats) are read at scrape time, so there is
 * one source of truth; round training times and worker memory are observed as they happen.
 *
 *   cohort_connections                                   open libp2p connections
 *   cohort_connections_opened_total / _denied_total      since start
 *   cohort_refusals_total{channel,reason}                model / gossip / connection refusals (not-on-roster, removed, psk-mismatch, ...)
 *   cohort_peer_bytes_total{peer,name,direction}         bytes in/out per remote peer
 *   cohort_protocol_bytes_total{protocol,direction}      bytes in/out per protocol or gossip topic kind (`gossip:<kind>`)
 *   cohort_net_rejections_total{where,reason}            messages the net layer refused (schema, size, hash, ...)
 *   cohort_rounds_total{scenario}                        averaging rounds completed by this peer
 *   cohort_round_training_seconds{scenario}              local training time per round (histogram)
 *   cohort_models_late_total{scenario,kind}              missed-at-deadline, applied-late, local-update-late
 *   cohort_models_rejected_total{scenario,reason}        models the averaging rule refused (stale round, wrong layout, non-finite ...)
 *   cohort_worker_memory_bytes{scenario}                 training worker heap + ArrayBuffers, as last reported
 *   cohort_worker_native_memory_bytes{scenario}          the process's resident memory growth since the worker became ready
 *                                                        (onnxruntime's arena and tensors included), as the watchdog last sampled it
 *   cohort_worker_memory_budget_bytes{scenario}          the worker's budget (the watchdog stops it above; WORKER_NATIVE_MEMORY)
 *   process_* / nodejs_*                                 prom-client's default process metrics (resident memory, heap, event loop lag)
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { NodeStats } from '../averaging/types.ts';
import type { NetMetricsSnapshot } from '../net/metrics.ts';
import type { RefusalCount } from './refusals.ts';

export interface MetricsSource {
  net(): NetMetricsSnapshot;
  refusals(): RefusalCount[];
  runs(): Iterable<RunMetrics>;
  name(peer: string): string;
}

const short = (id: string): string => id.slice(0, 12);

/** One run's figures: averaging counters, the worker's own heap report, and the watchdog's native figure and budget. */
export interface RunMetrics { id: string; stats?: NodeStats; workerMemoryBytes?: number; nativeMemoryBytes?: number; memoryBudgetBytes?: number }

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly roundSeconds: Histogram;

  constructor(src: MetricsSource) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: 'cohort_connections', help: 'open libp2p connections', registers, collect() { this.set(src.net().connections); } });
    const total = (name: string, help: string, labelNames: string[], rows: () => [Record<string, string>, number][]): void => {
      new Counter({ name, help, labelNames, registers, collect() {
        this.reset();
        for (const [labels, v] of rows()) if (v > 0) this.inc(labels, v);
      } });
    };
    total('cohort_connections_opened_total', 'connections opened since start', [], () => [[{}, src.net().connectionsOpened]]);
    total('cohort_connections_denied_total', 'connections denied by the roster gater since start', [], () => [[{}, src.net().connectionsDenied]]);
    total('cohort_refusals_total', 'refusals by channel and reason (src/peer/refusals.ts)', ['channel', 'reason'], () => {
      const sum = new Map<string, number>();
      for (const r of src.refusals()) sum.set(`${r.channel}|${r.reason}`, (sum.get(`${r.channel}|${r.reason}`) ?? 0) + r.count);
      return [...sum].map(([k, v]) => { const [channel, reason] = k.split('|') as [string, string]; return [{ channel, reason }, v]; });
    });
    total('cohort_peer_bytes_total', 'bytes exchanged with each remote peer', ['peer', 'name', 'direction'], () =>
      Object.entries(src.net().byPeer).flatMap(([peer, t]) => [[{ peer, name: src.name(peer), direction: 'in' }, t.bytesIn], [{ peer, name: src.name(peer), direction: 'out' }, t.bytesOut]] as [Record<string, string>, number][]));
    total('cohort_protocol_bytes_total', 'bytes per protocol or gossip topic kind', ['protocol', 'direction'], () =>
      Object.entries(src.net().byProtocol).flatMap(([protocol, t]) => [[{ protocol, direction: 'in' }, t.bytesIn], [{ protocol, direction: 'out' }, t.bytesOut]] as [Record<string, string>, number][]));
    total('cohort_net_rejections_total', 'messages refused by the net layer', ['where', 'reason'], () =>
      Object.entries(src.net().rejections).map(([k, v]) => { const i = k.indexOf(':'); return [{ where: k.slice(0, i), reason: k.slice(i + 1) }, v]; }));
    const runs = (): RunMetrics[] => [...src.runs()];
    total('cohort_rounds_total', 'averaging rounds completed by this peer', ['scenario'], () => runs().map((r) => [{ scenario: short(r.id) }, r.stats?.rounds ?? 0]));
    total('cohort_models_late_total', 'models or local updates that missed their round deadline', ['scenario', 'kind'], () => runs().flatMap((r) => [
      [{ scenario: short(r.id), kind: 'missed-at-deadline' }, r.stats?.missedAtDeadline ?? 0],
      [{ scenario: short(r.id), kind: 'applied-late' }, r.stats?.lateApplied ?? 0],
      [{ scenario: short(r.id), kind: 'local-update-late' }, r.stats?.lateLocalUpdates ?? 0],
    ] as [Record<string, string>, number][]));
    total('cohort_models_rejected_total', 'models the averaging rule refused, by reason', ['scenario', 'reason'], () =>
      runs().flatMap((r) => Object.entries(r.stats?.rejected ?? {}).map(([reason, v]) => [{ scenario: short(r.id), reason }, v] as [Record<string, string>, number])));
    new Gauge({ name: 'cohort_worker_memory_bytes', help: 'training worker heap + ArrayBuffers, as last reported', labelNames: ['scenario'], registers, collect() {
      this.reset();
      for (const r of runs()) if (r.workerMemoryBytes !== undefined) this.set({ scenario: short(r.id) }, r.workerMemoryBytes);
    } });
    const gauge = (name: string, help: string, value: (r: RunMetrics) => number | undefined): void => {
      new Gauge({ name, help, labelNames: ['scenario'], registers, collect() {
        this.reset();
        for (const r of runs()) { const v = value(r); if (v !== undefined) this.set({ scenario: short(r.id) }, v); }
      } });
    };
    gauge('cohort_worker_native_memory_bytes', 'resident memory the process grew since the training worker became ready (onnxruntime arena and tensors included), as the watchdog last sampled it', (r) => r.nativeMemoryBytes);
    gauge('cohort_worker_memory_budget_bytes', 'the training worker\'s memory budget: above it the watchdog stops the worker (WORKER_NATIVE_MEMORY)', (r) => r.memoryBudgetBytes);
    this.roundSeconds = new Histogram({ name: 'cohort_round_training_seconds', help: 'local training time per round', labelNames: ['scenario'], registers,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] });
  }

  roundTrained(scenario: string, seconds: number): void {
    this.roundSeconds.observe({ scenario: short(scenario) }, seconds);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
