/**
 * The simulator's adversary: which peers are Byzantine, their transports (attackTransport with an omniscient view of the honest
 * peers' current models and of the topology's Metropolis weights), and the "attack" block of `cohort sim --json`.
 */
import type { CodecOptions } from '../../averaging/compression.ts';
import type { AveragingNode } from '../../averaging/node.ts';
import { DEFAULT_SUSPICION, type AggregatorName } from '../../averaging/robust.ts';
import type { AveragingTransport, PeerId, RejectReason } from '../../averaging/types.ts';
import { peerName, type SimNetwork } from '../network.ts';
import { attackTransport, pickByzantine, type AttackName, type AttackOptions, type AttackStats, type AttackView } from './index.ts';

export interface SimAttack {
  readonly name: AttackName;
  /** Share of Byzantine peers, in [0, 0.5). */
  readonly fraction: number;
  readonly options?: AttackOptions;
}

export interface SimAdversary {
  readonly attack: SimAttack;
  readonly byzantine: readonly number[];
  readonly stats: AttackStats;
  transportFor(i: number, t: AveragingTransport, net: SimNetwork, nodes: readonly AveragingNode[]): AveragingTransport;
}

export function simAdversary(attack: SimAttack, peers: number, seed: number, length: number, codecOptions?: CodecOptions): SimAdversary {
  const byzantine = pickByzantine(peers, attack.fraction, seed);
  const byz = new Set(byzantine);
  const stats: AttackStats = { crafted: 0 };
  const index = (p: PeerId) => Number(p.slice(1));
  return {
    attack, byzantine, stats,
    transportFor(i, t, net, nodes) {
      if (!byz.has(i)) return t;
      const degree = (k: number) => net.graphNeighbours(k).length;
      const view: AttackView = {
        peers, byzantine: byzantine.length,
        target: (to) => nodes[index(to)]?.estimate(),
        neighbours: (to) => {
          const j = index(to);
          return net.graphNeighbours(j).filter((k) => net.online[k] && nodes[k]).map((k) => ({
            model: nodes[k]!.estimate(), byzantine: byz.has(k), weight: 1 / (1 + Math.max(degree(j), degree(k))),
          }));
        },
      };
      return attackTransport(t, attack.name, { length, view, seed: seed + i, codecOptions, options: attack.options, stats });
    },
  };
}

/** The "attack" block of `cohort sim --json`. */
export interface AttackReport {
  readonly name: AttackName;
  readonly byzantine_fraction: number;
  readonly byzantine: string[];
  readonly aggregator: AggregatorName;
  /** Models the adversaries rewrote. */
  readonly crafted: number;
  /** Refused by the honest peers' checks (NaN/Inf, wrong layout), summed over honest peers. */
  readonly rejected: { readonly non_finite: number; readonly wrong_layout: number };
  /**
   * Neighbour scores (robust aggregators only): `reports` (honest peer, suspect) pairs; `named`: peers named by a majority of the
   * honest peers that scored them; how many of those are Byzantine and how many honest (false suspicions).
   */
  readonly suspicion: { readonly byzantine_named: number; readonly honest_named: number; readonly named: string[]; readonly reports: number } | null;
}

export function attackReport(adv: SimAdversary, nodes: readonly AveragingNode[], aggregator: AggregatorName): AttackReport {
  const byz = new Set(adv.byzantine.map(peerName));
  const honest = nodes.filter((n) => !byz.has(n.peer));
  const rejected = (r: RejectReason) => honest.reduce((a, n) => a + n.stats.rejected[r], 0);
  let suspicion: AttackReport['suspicion'] = null;
  if (aggregator !== 'mean') {
    // each honest peer's report names the neighbours its scores flag; a peer counts as named when a majority of the honest
    // peers that scored it name it (one neighbour's view is not enough: an attacker drags its honest neighbours off too)
    const observers = new Map<string, number>();
    const namers = new Map<string, number>();
    let reports = 0;
    for (const n of honest) {
      for (const s of n.robust?.scores.all() ?? []) if (s.observed >= DEFAULT_SUSPICION.minObserved) observers.set(s.peer, (observers.get(s.peer) ?? 0) + 1);
      for (const s of n.robust?.scores.suspects(aggregator) ?? []) { namers.set(s.peer, (namers.get(s.peer) ?? 0) + 1); reports++; }
    }
    const list = [...namers].filter(([p, k]) => k > (observers.get(p) ?? 0) / 2).map(([p]) => p).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
    suspicion = { byzantine_named: list.filter((p) => byz.has(p)).length, honest_named: list.filter((p) => !byz.has(p)).length, named: list, reports };
  }
  return {
    name: adv.attack.name, byzantine_fraction: adv.attack.fraction, byzantine: [...byz], aggregator, crafted: adv.stats.crafted,
    rejected: { non_finite: rejected('non-finite'), wrong_layout: rejected('wrong-layout') }, suspicion,
  };
}
