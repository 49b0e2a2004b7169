/**
 * The manifest's stopping rule, decided by the launcher from the per-round mean metric over all participants (every site measures
 * on its own held-out data; a round counts once every participant reported it). The decision is a round count `stopAt`
 * (rounds 0 .. stopAt-1 run) one round ahead, so that every participant hears it before it has to stop.
 *   stopRoundFor(rule, series, { maximize, maxRounds }) -> stopAt | undefined
 *   meanSeries(history, participants) -> [{ round, mean }]
 */
export type StoppingRule =
  | { readonly kind: 'max-rounds' }
  | { readonly kind: 'target'; readonly value: number }
  | { readonly kind: 'plateau'; readonly patience: number; readonly minDelta: number };

export interface RoundMean { readonly round: number; readonly mean: number }

export function meanSeries(history: readonly { site: string; round: number; metric?: number }[], participants: readonly string[]): RoundMean[] {
  const byRound = new Map<number, Map<string, number>>();
  for (const h of history) {
    if (h.metric === undefined || !participants.includes(h.site)) continue;
    const m = byRound.get(h.round) ?? new Map<string, number>();
    m.set(h.site, h.metric);
    byRound.set(h.round, m);
  }
  return [...byRound.entries()].filter(([, m]) => m.size === participants.length).sort(([a], [b]) => a - b)
    .map(([round, m]) => ({ round, mean: [...m.values()].reduce((a, b) => a + b, 0) / m.size }));
}

export function stopRoundFor(rule: StoppingRule, series: readonly RoundMean[], o: { maximize: boolean; maxRounds: number }): number | undefined {
  const better = (a: number, b: number, delta = 0): boolean => (o.maximize ? a > b + delta : a < b - delta);
  const at = (round: number): number => Math.min(o.maxRounds, round + 2);
  if (rule.kind === 'target') {
    const hit = series.find((s) => (o.maximize ? s.mean >= rule.value : s.mean <= rule.value));
    return hit ? at(hit.round) : undefined;
  }
  if (rule.kind === 'plateau') {
    let best: RoundMean | undefined;
    for (const s of series) {
      if (!best || better(s.mean, best.mean, rule.minDelta)) best = s;
      else if (s.round - best.round >= rule.patience) return at(s.round);
    }
  }
  return undefined;
}
