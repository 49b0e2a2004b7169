/**
 * The native-memory watchdog (issue 16.2). A training worker's `resourceLimits` and its own heap check bound the V8 heap and
 * ArrayBuffers only; onnxruntime's allocations (the session's arena, the tensors of a step) are native and outside both. A worker
 * thread shares the daemon's process, so no per-thread figure exists for them: onnxruntime-node exposes no arena statistics, and
 * `process.memoryUsage()` inside the worker is the whole process's. What does measure them is the process's resident memory:
 * the watchdog, on the main thread, samples RSS and attributes to each worker what the process grew since that worker became
 * ready (its fixed start-up cost, the isolate, the TypeScript loader and onnxruntime's code, ~126 MiB from the sources, is left
 * out: it does not depend on the scenario). Memory the process gives back after that (a previous worker still leaving when this one
 * became ready, say) lowers the baseline: growth is counted from the lowest resident memory seen since. Over the worker's budget, the daemon fails that run (WORKER_NATIVE_MEMORY) and stops
 * its worker the safe way (after the current step: terminating a thread inside an onnxruntime call aborts the process).
 *
 * Several workers at once: the growth since worker i became ready belongs to i and the workers that became ready after it, so it
 * is checked against their budgets together; over it, the one with the largest budget (the largest estimate) is stopped. With
 * one worker (the usual case) the figure is exactly the process's growth during its training.
 */
import { logger } from '../util/log.ts';

const log = logger('peer:watchdog');

/** A running worker as the watchdog sees it: its budget and the process's resident memory when it became ready. */
export interface WatchedWorker {
  readonly id: string;
  readonly budgetBytes: number;
  readonly baselineRss: number;
}

export interface MemoryVerdict {
  /** Per worker: the process's resident memory growth since it became ready (bytes, never negative). */
  readonly used: ReadonlyMap<string, number>;
  /** The worker to stop, if any: its figure and the budget its group exceeded. */
  readonly over?: { readonly id: string; readonly usedBytes: number; readonly budgetBytes: number };
}

/** Pure attribution of one RSS sample to the workers (see the module comment). */
export function attribute(rss: number, workers: readonly WatchedWorker[]): MemoryVerdict {
  const byStart = [...workers].sort((a, b) => a.baselineRss - b.baselineRss);
  const used = new Map<string, number>();
  let over: MemoryVerdict['over'];
  for (let i = 0; i < byStart.length; i++) {
    const w = byStart[i]!;
    const grown = Math.max(0, rss - w.baselineRss);
    used.set(w.id, grown);
    const group = byStart.slice(i);
    const allowed = group.reduce((s, g) => s + g.budgetBytes, 0);
    if (over === undefined && grown > allowed) {
      const victim = group.reduce((a, b) => (b.budgetBytes >= a.budgetBytes ? b : a));
      over = { id: victim.id, usedBytes: grown, budgetBytes: allowed };
    }
  }
  return over ? { used, over } : { used };
}

export const WATCHDOG_INTERVAL_MS = 250;

export class MemoryWatchdog {
  private timer: NodeJS.Timeout | undefined;
  private last: ReadonlyMap<string, number> = new Map();
  /** Workers already stopped by the watchdog: not stopped twice while their memory goes back. */
  private readonly tripped = new Set<string>();
  /** Per worker, the lowest resident memory seen since it became ready (memory given back by others does not hide its growth). */
  private readonly lowest = new Map<string, number>();

  constructor(
    private readonly workers: () => Iterable<WatchedWorker>,
    private readonly onOver: (id: string, usedBytes: number, budgetBytes: number) => void,
    private readonly rss: () => number = () => process.memoryUsage.rss(),
  ) {}

  start(intervalMs = WATCHDOG_INTERVAL_MS): void {
    this.timer ??= setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The last figure for a worker (for /metrics); undefined when it is not watched. */
  usedBytes(id: string): number | undefined {
    return this.last.get(id);
  }

  sample(): void {
    const rss = this.rss();
    const live = [...this.workers()];
    const watched = live.filter((w) => !this.tripped.has(w.id)).map((w) => {
      const baselineRss = Math.min(this.lowest.get(w.id) ?? w.baselineRss, w.baselineRss, rss);
      this.lowest.set(w.id, baselineRss);
      return { ...w, baselineRss };
    });
    const verdict = attribute(rss, watched);
    this.last = verdict.used;
    for (const id of [...this.tripped, ...this.lowest.keys()]) {
      if (!live.some((w) => w.id === id)) { this.tripped.delete(id); this.lowest.delete(id); }
    }
    if (!verdict.over) return;
    const { id, usedBytes, budgetBytes } = verdict.over;
    this.tripped.add(id);
    log.error({ scenario: id.slice(0, 12), usedMiB: Math.round(usedBytes / 1024 ** 2), budgetMiB: Math.round(budgetBytes / 1024 ** 2) }, 'training worker over its memory budget (native, onnxruntime): stopping it');
    this.onOver(id, usedBytes, budgetBytes);
  }
}
