import type { PeerId } from './types.ts';

/**
 * Models that arrived for a round this peer has not started yet (a faster neighbour is ahead). They are kept, one per sender,
 * and handed over when that round starts; rounds already passed are dropped then. Used by the synchronous rules (D-PSGD, EL).
 */
export class EarlyRounds<T> {
  private readonly byRound = new Map<number, Map<PeerId, T>>();

  /** Keep `item` from `from` for a future `round` (a later copy from the same sender replaces the earlier one). */
  add(round: number, from: PeerId, item: T): void {
    const box = this.byRound.get(round) ?? new Map<PeerId, T>();
    box.set(from, item);
    this.byRound.set(round, box);
  }

  /** What arrived early for `round`; forgets it and every earlier round. */
  take(round: number): Map<PeerId, T> {
    const box = this.byRound.get(round) ?? new Map<PeerId, T>();
    for (const r of this.byRound.keys()) if (r <= round) this.byRound.delete(r);
    return box;
  }
}
