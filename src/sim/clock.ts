/**
 * The virtual clock: a priority queue of events ordered by (time, owner, owner's sequence number). The order never depends on
 * wall-clock time or on which promise settles first, so a run is identical for a seed. Handlers may be async: the loop awaits each
 * one before the next (one peer acts at a time; ORT work inside a handler runs at full speed in real time, not virtual time).
 */
export interface SimEvent {
  readonly time: number;
  /** Index of the peer that scheduled it (-1: the simulator itself, e.g. churn; n: probes, after the peers at the same time). */
  readonly owner: number;
  readonly seq: number;
  /** The peer it runs at, or -1; events for an offline peer are dropped. */
  readonly target: number;
  readonly run: () => void | Promise<void>;
  cancelled?: boolean;
}

export class VirtualClock {
  private readonly heap: SimEvent[] = [];
  private readonly seqs = new Map<number, number>();
  private nowMs = 0;

  now(): number {
    return this.nowMs;
  }

  schedule(delayMs: number, owner: number, target: number, run: SimEvent['run']): SimEvent {
    const seq = (this.seqs.get(owner) ?? 0) + 1;
    this.seqs.set(owner, seq);
    const ev: SimEvent = { time: this.nowMs + Math.max(0, delayMs), owner, seq, target, run };
    this.push(ev);
    return ev;
  }

  /** Runs events in order until the queue is empty or the next event is after `untilMs`. */
  async runUntil(untilMs: number, isOnline: (peer: number) => boolean, stopped: () => boolean = () => false): Promise<void> {
    for (;;) {
      if (stopped()) return;
      const ev = this.heap[0];
      if (!ev || ev.time > untilMs) break;
      this.pop();
      if (ev.cancelled || (ev.target >= 0 && !isOnline(ev.target))) continue;
      this.nowMs = ev.time;
      await ev.run();
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
  }

  get pending(): number {
    return this.heap.length;
  }

  private less(a: SimEvent, b: SimEvent): boolean {
    return a.time !== b.time ? a.time < b.time : a.owner !== b.owner ? a.owner < b.owner : a.seq < b.seq;
  }

  private push(ev: SimEvent): void {
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
