// Averaging alone (no training): exact means, doubly stochastic mixing under churn, spectral-gap decay, rejection of bad messages.
import { describe, expect, it } from 'vitest';
import {
  DpsgdNode, PushSumNode, consensusDistance, createNode, isDoublyStochastic, metropolisWeights, randomRegularGraph,
  secondEigenvalueModulus, makeCodec, type AveragingNode, type NodeConfig,
} from '../../src/averaging/index.ts';
import { simulate, churnSchedule } from '../../src/sim/simulate.ts';
import { SimNetwork, type Topology } from '../../src/sim/network.ts';
import { VectorLearner } from '../../src/sim/learners.ts';
import { Rng } from '../../src/util/random.ts';

const D = 12;
const link = { latencyMs: 5, bandwidthBytesPerMs: 1e4, loss: 0 };
const nodeCfg = (over: Partial<NodeConfig> = {}): Omit<NodeConfig, 'seed'> => ({
  scenario: 'sc', layoutHash: 'lh', rounds: 200, roundMs: 100, deadlineMs: 80, codec: 'f32', weighting: 'uniform', train: false, proximal: false, ...over,
});

function startingVectors(n: number, seed: number): Float32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: D }, () => rng.normal() * 3));
}

function exactMean(xs: readonly Float32Array[], w?: readonly number[]): Float64Array {
  const out = new Float64Array(D);
  const total = w ? w.reduce((a, b) => a + b, 0) : xs.length;
  xs.forEach((x, k) => x.forEach((v, i) => { out[i] = out[i]! + (w ? w[k]! : 1) * v; }));
  return out.map((v) => v / total);
}

function maxErr(models: readonly Float64Array[], mean: Float64Array): number {
  let e = 0;
  for (const m of models) for (let i = 0; i < D; i++) e = Math.max(e, Math.abs(m[i]! - mean[i]!));
  return e;
}

describe('push-sum reaches the exact mean', () => {
  const cases: [string, Topology, number, number][] = [
    ['ring', { kind: 'ring' }, 8, 0],
    ['random 3-regular', { kind: 'random-regular', degree: 3 }, 16, 0],
    ['time-varying directed (one random out-neighbour per push)', { kind: 'time-varying', degree: 2 }, 16, 0],
    ['random 4-regular with 10% message loss', { kind: 'random-regular', degree: 4 }, 12, 0.1],
  ];
  for (const [name, topology, n, loss] of cases) {
    it(name, async () => {
      const xs = startingVectors(n, 11);
      const res = await simulate({
        algorithm: 'pushsum', seed: 5, learners: xs.map((x) => new VectorLearner(x)),
        network: { topology, link: { ...link, loss }, stepMs: 1 }, node: nodeCfg({ codec: 'f64', rounds: 400 }),
      });
      const z = res.nodes.map((node) => (node as PushSumNode).estimate64());
      expect(maxErr(z, exactMean(xs))).toBeLessThan(1e-9);
      if (loss > 0) expect(res.network.messagesLost).toBeGreaterThan(0);
    });
  }

  it('weights by sample counts: the sample-weighted mean', async () => {
    const xs = startingVectors(10, 12);
    const counts = [5, 50, 10, 200, 7, 30, 30, 1, 90, 12];
    const meanSamples = counts.reduce((a, b) => a + b, 0) / counts.length;
    const res = await simulate({
      algorithm: 'pushsum', seed: 6, learners: xs.map((x, i) => new VectorLearner(x, counts[i])),
      network: { topology: { kind: 'random-regular', degree: 3 }, link, stepMs: 1 },
      node: nodeCfg({ codec: 'f64', rounds: 400, weighting: 'samples', meanSamples }),
    });
    const z = res.nodes.map((node) => (node as PushSumNode).estimate64());
    expect(maxErr(z, exactMean(xs, counts))).toBeLessThan(1e-9);
  });

  it('refuses lossy codecs, which would break its invariant sums', () => {
    const net = new SimNetwork({ peers: 2, topology: { kind: 'complete' }, link, stepMs: 1, roundMs: 100, seed: 1 });
    expect(() => createNode('pushsum', net.transport(0), new VectorLearner(new Float32Array(D)), { ...nodeCfg({ codec: 'int8' }), seed: 1 }))
      .toThrow(/push-sum cannot use lossy compression/);
  });
});

describe('D-PSGD mixing (Metropolis-Hastings)', () => {
  it('W is symmetric and doubly stochastic on random graphs with peers removed', () => {
    const rng = new Rng(3);
    for (let trial = 0; trial < 20; trial++) {
      const n = 6 + rng.int(30);
      const g = randomRegularGraph(n, 2 + 2 * rng.int(3), rng);
      const alive = new Set(rng.sample(Array.from({ length: n }, (_, i) => i), Math.ceil(n * 0.7)));
      const ids = [...alive].sort((a, b) => a - b);
      const sub = ids.map((i) => g[i]!.filter((j) => alive.has(j)).map((j) => ids.indexOf(j)));
      const W = metropolisWeights(sub);
      expect(isDoublyStochastic(W)).toBe(true);
      for (let i = 0; i < W.length; i++) for (let j = 0; j < W.length; j++) expect(W[i]![j]).toBeCloseTo(W[j]![i]!, 15);
    }
  });

  it('the weights the nodes use stay doubly stochastic through 30% churn, and the mean of the online peers is kept between churn events', async () => {
    const n = 20;
    const rounds = 30;
    const churn = churnSchedule(n, 0.3, rounds, 9);
    const rows = new Map<number, Map<string, ReadonlyMap<string, number>>>();
    let nodes: readonly AveragingNode[] = [];
    const sums: { round: number; sum: Float64Array; online: number }[] = [];
    let net: SimNetwork | undefined;
    await simulate({
      algorithm: 'dpsgd', seed: 4, learners: startingVectors(n, 13).map((x) => new VectorLearner(x)),
      network: { topology: { kind: 'random-regular', degree: 4 }, link, stepMs: 1 }, node: nodeCfg({ rounds }), churn,
      onNodes: (ns, nw) => {
        nodes = ns;
        net = nw;
        ns.forEach((node) => {
          (node as DpsgdNode).onMix = (round, w) => {
            const m = rows.get(round) ?? new Map();
            m.set(nodes.indexOf(node).toString(), w);
            rows.set(round, m);
          };
        });
      },
      onRound: (p) => {
        const live = nodes.filter((_, i) => net!.online[i]);
        sums.push({ round: p.round, sum: exactMean(live.map((x) => x.estimate())).map((v) => v * live.length), online: live.length });
      },
    });
    expect(churn.length).toBe(12);
    for (const [round, byPeer] of rows) {
      const ids = [...byPeer.keys()].map((k) => `p${k}`);
      const W = ids.map((i) => ids.map((j) => byPeer.get(i.slice(1))!.get(j) ?? 0));
      expect(isDoublyStochastic(W, 1e-12), `round ${round}`).toBe(true);
    }
    expect(rows.get(12)!.size).toBe(14); // 6 peers away
    // no churn between rounds 12..18: the sum over online peers is invariant
    const a = sums.find((s) => s.round === 12)!;
    const b = sums.find((s) => s.round === 18)!;
    for (let i = 0; i < D; i++) expect(b.sum[i]).toBeCloseTo(a.sum[i]!, 3);
  });

  it('models that miss the deadline are applied late as a correction: the mean is kept and the peers still agree', async () => {
    const xs = startingVectors(12, 19);
    const res = await simulate({
      algorithm: 'dpsgd', seed: 2, learners: xs.map((x) => new VectorLearner(x)),
      network: { topology: { kind: 'random-regular', degree: 3 }, link: { latencyMs: 30, bandwidthBytesPerMs: 20, loss: 0 }, stepMs: 1 },
      node: nodeCfg({ rounds: 60, roundMs: 100, deadlineMs: 25 }),
    });
    const late = res.nodes.reduce((a, n) => a + n.stats.lateApplied, 0);
    const missed = res.nodes.reduce((a, n) => a + n.stats.missedAtDeadline, 0);
    expect(missed).toBeGreaterThan(100);
    expect(late).toBe(missed);
    expect(maxErr(res.finalModels.map((m) => Float64Array.from(m)), exactMean(xs))).toBeLessThan(1e-4);
    expect(res.probes.at(-1)!.consensus).toBeLessThan(res.probes[0]!.consensus * 1e-3);
  });

  it('consensus distance decays at the rate the spectral gap predicts', async () => {
    const n = 24;
    const topology: Topology = { kind: 'random-regular', degree: 3 };
    const res32 = await simulate({
      algorithm: 'dpsgd', seed: 21, learners: startingVectors(n, 17).map((x) => new VectorLearner(x)),
      network: { topology, link, stepMs: 1 }, node: nodeCfg({ rounds: 40 }),
    });
    const graph = Array.from({ length: n }, (_, i) => [...res32.network.graphNeighbours(i)]);
    const lambda2 = secondEigenvalueModulus(metropolisWeights(graph));
    const c = res32.probes.map((p) => p.consensus);
    const measured = Math.pow(c[25]! / c[5]!, 1 / 20);
    const predicted = lambda2 * lambda2;
    expect(lambda2).toBeGreaterThan(0.3);
    expect(Math.log(measured) / Math.log(predicted)).toBeGreaterThan(0.8);
    expect(Math.log(measured) / Math.log(predicted)).toBeLessThan(1.25);
  });
});

describe('bad messages are rejected and counted, never averaged', () => {
  it('unknown round, wrong layout, wrong scenario, NaN/Inf, garbage payload', async () => {
    const net = new SimNetwork({ peers: 3, topology: { kind: 'complete' }, link, stepMs: 1, roundMs: 100, seed: 2 });
    const xs = startingVectors(2, 31);
    const nodes = xs.map((x, i) => createNode('pushsum', net.transport(i), new VectorLearner(x), { ...nodeCfg({ codec: 'f64', rounds: 300 }), seed: i }, { fanout: 1 }));
    net.online[2] = true;
    const evil = net.transport(2);
    const f64 = makeCodec('f64');
    const good = f64.encode(new Float64Array(D).fill(1));
    const nan = new Float64Array(D).fill(1);
    nan[3] = Number.NaN;
    const inf = new Float64Array(D).fill(1);
    inf[0] = Infinity;
    const base = { kind: 'model' as const, scenario: 'sc', layoutHash: 'lh', round: 1, codec: 'f64', weight: 1, purpose: 'exchange' as const };
    net.at(50, 2, () => {
      for (const to of ['p0', 'p1']) {
        evil.send(to, { ...base, round: 999_999, payload: good, shareId: 'e1' });
        evil.send(to, { ...base, layoutHash: 'other', payload: good, shareId: 'e2' });
        evil.send(to, { ...base, scenario: 'other', payload: good, shareId: 'e3' });
        evil.send(to, { ...base, payload: f64.encode(nan), shareId: 'e4' });
        evil.send(to, { ...base, payload: f64.encode(inf), shareId: 'e5' });
        evil.send(to, { ...base, payload: new Uint8Array(5), shareId: 'e6' });
        evil.send(to, { ...base, weight: Number.NaN, payload: good, shareId: 'e7' });
      }
    });
    nodes.forEach((node) => node.start());
    // peer 2 has no node: it never receives pushes (only p0 and p1 are neighbours of each other in practice when p2 stays silent)
    net.online[2] = false;
    net.at(49, -1, () => { net.online[2] = true; });
    net.at(51, -1, () => { net.online[2] = false; });
    await net.clock.runUntil(300 * 100, (i) => net.online[i]!);
    for (const node of nodes) {
      expect(node.stats.rejected['unknown-round']).toBe(1);
      expect(node.stats.rejected['wrong-layout']).toBe(1);
      expect(node.stats.rejected['wrong-scenario']).toBe(1);
      expect(node.stats.rejected['non-finite']).toBe(3);
      expect(node.stats.rejected.malformed).toBe(1);
    }
    const z = nodes.map((node) => (node as PushSumNode).estimate64());
    expect(consensusDistance(z)).toBeLessThan(1e-18);
    expect(maxErr(z, exactMean(xs))).toBeLessThan(1e-9);
  });

  it('D-PSGD: a stale round and a round from the far future are refused; the mean of the honest peers is kept', async () => {
    const net = new SimNetwork({ peers: 4, topology: { kind: 'complete' }, link, stepMs: 1, roundMs: 100, seed: 3 });
    const xs = startingVectors(3, 41);
    const nodes = xs.map((x, i) => createNode('dpsgd', net.transport(i), new VectorLearner(x), { ...nodeCfg({ rounds: 30 }), seed: i }));
    net.online[3] = false; // the sender below is not a participant: honest peers mix among themselves
    const evil = net.transport(3);
    const payload = makeCodec('f32').encode(new Float32Array(D).fill(100));
    const base = { kind: 'model' as const, scenario: 'sc', layoutHash: 'lh', codec: 'f32', degree: 3, participants: ['p0', 'p1', 'p2'], purpose: 'exchange' as const };
    net.at(1050, 3, () => {
      for (const to of ['p0', 'p1', 'p2']) {
        evil.send(to, { ...base, round: 3, payload });
        evil.send(to, { ...base, round: 10_000, payload });
      }
    });
    nodes.forEach((n) => n.start());
    await net.clock.runUntil(30 * 100, (i) => i === 3 || net.online[i]!);
    for (const n of nodes) {
      expect(n.stats.rejected.stale).toBe(1);
      expect(n.stats.rejected['unknown-round']).toBe(1);
    }
    expect(maxErr(nodes.map((n) => Float64Array.from(n.estimate())), exactMean(xs))).toBeLessThan(1e-5);
  });
});
