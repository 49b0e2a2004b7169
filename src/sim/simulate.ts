/**
 * Runs one averaging rule on a simulated network: N peers, each an AveragingNode over its SimNetwork transport and its learner,
 * with a churn schedule, probing the network at the end of every round (consensus distance, metric per peer, bytes sent).
 * Deterministic for a seed: every random choice comes from seeded Rngs and the virtual clock orders events totally.
 */
import { createNode, type AlgorithmSettings } from '../averaging/factory.ts';
import { consensusDistance } from '../averaging/mixing.ts';
import type { AlgorithmName, AveragingNode, NodeConfig } from '../averaging/node.ts';
import type { AveragingTransport, LocalLearner, RejectReason } from '../averaging/types.ts';
import { Rng } from '../util/random.ts';
import { SimNetwork, type NetworkOptions } from './network.ts';

export interface ChurnEvent {
  readonly round: number;
  readonly peer: number;
  readonly action: 'leave' | 'join';
}

export interface RoundProbe {
  readonly round: number;
  readonly online: number;
  readonly consensus: number;
  /** Metric over online peers (NaN when this round was not evaluated). */
  readonly mean: number;
  readonly min: number;
  readonly max: number;
  /** Mean bytes sent per peer so far. */
  readonly bytesPerPeer: number;
}

export interface SimulateOptions {
  readonly algorithm: AlgorithmName;
  readonly settings?: AlgorithmSettings;
  readonly network: Omit<NetworkOptions, 'roundMs' | 'seed' | 'peers'>;
  readonly node: Omit<NodeConfig, 'seed'>;
  readonly learners: readonly LocalLearner[];
  readonly seed: number;
  readonly churn?: readonly ChurnEvent[];
  /** Metric of one model (higher is better); omitted: only consensus is probed. */
  readonly evaluate?: (model: Float32Array) => Promise<number>;
  readonly evalEvery?: number;
  readonly onRound?: (probe: RoundProbe) => void;
  /** Stopping rule: checked after every evaluated probe; true ends the run after that round. */
  readonly stopWhen?: (probe: RoundProbe) => boolean;
  /** Called after the nodes exist (tests attach hooks such as DpsgdNode.onMix). */
  readonly onNodes?: (nodes: readonly AveragingNode[], net: SimNetwork) => void;
  /** Replaces peer i's transport (an adversary's rewrite of what it sends: src/sim/attacks); `nodes` is filled once all exist. */
  readonly transportFor?: (i: number, t: AveragingTransport, net: SimNetwork, nodes: readonly AveragingNode[]) => AveragingTransport;
  /** Peers left out of the per-round probes (the Byzantine ones: curves and stopping rules are about the honest peers). */
  readonly unprobed?: ReadonlySet<number>;
}

export interface SimulateResult {
  readonly probes: RoundProbe[];
  readonly nodes: readonly AveragingNode[];
  readonly network: SimNetwork;
  readonly finalModels: Float32Array[];
  /** The peer index of each final model (the peers online at the end). */
  readonly finalPeers: number[];
  readonly finalMetrics: number[];
  readonly rejected: Record<RejectReason, number>;
  readonly bytesSentPerPeer: number;
  readonly messagesLost: number;
  /**
   * Deadline bookkeeping of the synchronous rules, summed over peers (D-PSGD and CHOCO apply late work; EL drops late models):
   * models missed at a deadline, applied late (once each), still in flight when the run ended, and local updates that finished
   * after their round's deadline. Without loss or churn, missedAtDeadline = applied + inFlightAtEnd for D-PSGD.
   */
  readonly late: LateCounters;
}

export interface LateCounters {
  readonly missedAtDeadline: number;
  readonly applied: number;
  readonly inFlightAtEnd: number;
  readonly localUpdatesLate: number;
}

export async function simulate(o: SimulateOptions): Promise<SimulateResult> {
  const n = o.learners.length;
  const net = new SimNetwork({ ...o.network, peers: n, roundMs: o.node.roundMs, seed: o.seed });
  const seeds = new Rng(o.seed);
  const nodes: AveragingNode[] = [];
  for (const [i, l] of o.learners.entries()) {
    const t = o.transportFor ? o.transportFor(i, net.transport(i), net, nodes) : net.transport(i);
    nodes.push(createNode(o.algorithm, t, l, { ...o.node, seed: seeds.nextU32() }, o.settings));
  }
  o.onNodes?.(nodes, net);
  for (const ev of o.churn ?? []) {
    // leave just before the round starts; join half a round early, so that the pulled model arrives before the round begins
    const at = ev.action === 'leave' ? ev.round * o.node.roundMs - 1e-3 : (ev.round - 0.5) * o.node.roundMs;
    net.at(at, -1, () => {
      if (ev.action === 'leave' && net.online[ev.peer]) {
        net.online[ev.peer] = false;
        nodes[ev.peer]!.leave();
      } else if (ev.action === 'join' && !net.online[ev.peer]) {
        net.online[ev.peer] = true;
        nodes[ev.peer]!.rejoin();
      }
    });
  }
  const probes: RoundProbe[] = [];
  let stopped = false;
  const evalEvery = o.evalEvery ?? 1;
  for (let r = 0; r < o.node.rounds; r++) {
    net.at((r + 1) * o.node.roundMs - 2e-3, n, async () => {
      const p = await probe(r, nodes, net, o.evaluate && ((r + 1) % evalEvery === 0 || r === o.node.rounds - 1) ? o.evaluate : undefined, o.unprobed);
      probes.push(p);
      o.onRound?.(p);
      if (!Number.isNaN(p.mean) && o.stopWhen?.(p)) stopped = true;
    });
  }
  nodes.forEach((node) => node.start());
  await net.clock.runUntil(o.node.rounds * o.node.roundMs, (i) => net.online[i]!, () => stopped);
  const online = nodes.filter((_, i) => net.online[i]);
  const finalModels = online.map((node) => node.estimate().slice());
  const finalMetrics: number[] = [];
  if (o.evaluate) for (const m of finalModels) finalMetrics.push(await o.evaluate(m));
  return {
    probes,
    nodes,
    network: net,
    finalModels,
    finalPeers: nodes.map((_, i) => i).filter((i) => net.online[i]),
    finalMetrics,
    rejected: sumRejected(nodes),
    bytesSentPerPeer: nodes.reduce((a, node) => a + node.stats.bytesSent, 0) / n,
    messagesLost: net.messagesLost,
    late: {
      missedAtDeadline: nodes.reduce((a, node) => a + node.stats.missedAtDeadline, 0),
      applied: nodes.reduce((a, node) => a + node.stats.lateApplied, 0),
      inFlightAtEnd: net.inFlight(),
      localUpdatesLate: nodes.reduce((a, node) => a + node.stats.lateLocalUpdates, 0),
    },
  };
}

async function probe(round: number, nodes: readonly AveragingNode[], net: SimNetwork, evaluate?: (m: Float32Array) => Promise<number>,
  unprobed?: ReadonlySet<number>): Promise<RoundProbe> {
  const live = nodes.filter((_, i) => net.online[i] && !unprobed?.has(i));
  const models = live.map((node) => node.estimate());
  let mean = Number.NaN;
  let min = Number.NaN;
  let max = Number.NaN;
  if (evaluate && models.length) {
    const ms: number[] = [];
    for (const m of models) ms.push(await evaluate(m));
    mean = ms.reduce((a, b) => a + b, 0) / ms.length;
    min = Math.min(...ms);
    max = Math.max(...ms);
  }
  return {
    round,
    online: live.length,
    consensus: consensusDistance(models),
    mean, min, max,
    bytesPerPeer: nodes.reduce((a, node) => a + node.stats.bytesSent, 0) / nodes.length,
  };
}

function sumRejected(nodes: readonly AveragingNode[]): Record<RejectReason, number> {
  const out = { ...nodes[0]!.stats.rejected };
  for (const k of Object.keys(out) as RejectReason[]) out[k] = nodes.reduce((a, node) => a + node.stats.rejected[k], 0);
  return out;
}

/** Churn from a fraction: that share of peers (never peer 0) leaves at 1/3 of the run and comes back at 2/3. */
export function churnSchedule(peers: number, fraction: number, rounds: number, seed: number, comeBack = true): ChurnEvent[] {
  const k = Math.floor(peers * fraction);
  if (k === 0) return [];
  const chosen = new Rng(seed ^ 0xc4).sample(Array.from({ length: peers - 1 }, (_, i) => i + 1), k);
  const leaveAt = Math.max(1, Math.floor(rounds / 3));
  const joinAt = Math.max(leaveAt + 1, Math.floor((2 * rounds) / 3));
  return chosen.flatMap((peer) => [
    { round: leaveAt, peer, action: 'leave' as const },
    ...(comeBack ? [{ round: joinAt, peer, action: 'join' as const }] : []),
  ]);
}
