// Byzantine-robust aggregation (issue 11): the statistics, each aggregator inside D-PSGD, Epidemic Learning and gossip learning
// against each attack on the virtual clock, the neighbour scores, and the refusals (unknown names, rules an aggregator cannot serve).
import { describe, expect, it } from 'vitest';
import {
  adaptiveRadius, aggregatorConflict, clipScale, coordinateMedian, createNode, mixIncrement, RobustMixer, trimmedMean,
  type AggregatorName, type AlgorithmName, type NodeConfig,
} from '../../src/averaging/index.ts';
import { dumbbellGraph, expanderDegree, randomRegularGraph } from '../../src/averaging/mixing.ts';
import { simulate } from '../../src/sim/simulate.ts';
import { QuadraticLearner, VectorLearner } from '../../src/sim/learners.ts';
import type { Topology } from '../../src/sim/network.ts';
import { alieZ, ATTACKS, attackTransport, checkFraction, craftModel, parseAttack, pickByzantine, poisonLabels, type AttackName } from '../../src/sim/attacks/index.ts';
import { attackReport, simAdversary } from '../../src/sim/attacks/sim.ts';
import { loadManifest, parseManifest } from '../../src/scenario/manifest.ts';
import { CohortError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/random.ts';

const D = 8;

describe('robust statistics', () => {
  it('adaptive radius clips the farthest neighbours holding the trimmed share of the weight (at least one)', () => {
    expect(adaptiveRadius([1, 10, 2], [1, 1, 1], 0.2)).toBe(2);           // one clipped: the reference rule (second largest)
    expect(adaptiveRadius([1, 10, 2, 9, 3], [1, 1, 1, 1, 1], 0.4)).toBe(3); // two of five hold 0.4
    expect(adaptiveRadius([5], [1], 0.2)).toBe(5);                         // alone: nothing to compare with
    expect(adaptiveRadius([], [], 0.2)).toBe(Infinity);
    expect(clipScale(10, 2)).toBeCloseTo(0.2);
    expect(clipScale(1, 2)).toBe(1);
  });

  it('coordinate-wise trimmed mean and median', () => {
    const vs = [[1, 100], [2, -100], [3, 0], [4, 1], [1000, 2]].map((v) => Float32Array.from(v));
    expect([...trimmedMean(vs, 1)]).toEqual([3, 1]);
    expect([...coordinateMedian(vs)]).toEqual([3, 1]);
    expect([...coordinateMedian(vs.slice(0, 4))]).toEqual([2.5, 0.5]);
    expect([...trimmedMean(vs, 0)].map((v) => Math.round(v * 10) / 10)).toEqual([202, 0.6]);
  });

  it('clipped mix: a far neighbour moves this peer by at most W_ij tau; plain mix is the weighted difference', () => {
    const self = new Float32Array([0, 0]);
    const inputs = [
      { peer: 'a', v: Float32Array.from([1, 0]), w: 0.25 }, { peer: 'b', v: Float32Array.from([0, 1]), w: 0.25 },
      { peer: 'evil', v: Float32Array.from([1000, 0]), w: 0.25 },
    ];
    expect([...mixIncrement(null, self, inputs)]).toEqual([250.25, 0.25]);
    const m = new RobustMixer({ aggregator: 'clipped' });
    const inc = mixIncrement(m, self, inputs);
    // the adaptive radius would be 1 (the second-largest distance); the floor, twice the median distance (1), makes it 2
    expect(inc[0]).toBeCloseTo(0.25 + 0.25 * 2, 10);
    expect(inc[1]).toBeCloseTo(0.25, 10);
    expect(m.lastRadius).toBe(2);
  });

  it('identical models at the start do not shrink the radius of the next rounds to zero (the guard window keeps only real distances)', () => {
    const m = new RobustMixer({ aggregator: 'clipped' });
    const zero = new Float32Array(2);
    const peers = ['a', 'b', 'c', 'd', 'e', 'f'];
    // round 0: everyone still holds the common initial model
    m.clipScales(zero, peers.map((peer) => ({ peer, v: zero, w: 1 / 7 })));
    // round 1: honest models spread 1..1.5 from this peer; with zeros in the window the cap was 2 x 0 and every neighbour was
    // clipped to nothing (no averaging at all)
    const spread = peers.map((peer, k) => ({ peer, v: Float32Array.from([1 + k * 0.1, 0]), w: 1 / 7 }));
    const { tau, scales } = m.clipScales(zero, spread);
    expect(tau).toBeGreaterThanOrEqual(1.4);
    expect(Math.min(...scales.values())).toBeGreaterThan(0.9);
    // round 2: the window (six real distances) now caps the radius at twice their median: a scaled model is still clipped hard
    const next = m.clipScales(zero, [...spread.slice(1), { peer: 'a', v: Float32Array.from([1000, 0]), w: 1 / 7 }]);
    expect(next.tau).toBeLessThanOrEqual(2 * 1.2 + 1e-6);
    expect(next.scales.get('a')!).toBeLessThan(0.003);
    expect(next.scales.get('b')!).toBe(1);
  });

  it('start-up, before any history: a neighbourhood with a Byzantine majority is capped by this peer\'s own move', () => {
    const m = new RobustMixer({ aggregator: 'clipped' });
    const start = new Float32Array(2);
    const far = Float32Array.from([1000, 0]);
    // round 0: five neighbours hold the common start, one sends a scaled model; the mix's median is 0, so it records nothing
    m.clipScales(start, [...['a', 'b', 'c', 'd', 'e'].map((peer) => ({ peer, v: start, w: 1 / 7 })), { peer: 'x', v: far, w: 1 / 7 }]);
    // round 1: this peer moved 0.5; three honest neighbours nearby, three attackers far: the mix rule alone would let them in
    // (median and adaptive radius both come from attackers' distances), the start-up cap (2 x 2 x 0.5) clips them
    const self = Float32Array.from([0.5, 0]);
    const honest = [0.3, 0.6, 0.9].map((x, k) => ({ peer: `h${k}`, v: Float32Array.from([x, 0.2]), w: 1 / 7 }));
    const byz = ['x', 'y', 'z'].map((peer) => ({ peer, v: far, w: 1 / 7 }));
    const { tau, scales } = m.clipScales(self, [...honest, ...byz]);
    expect(tau).toBeLessThanOrEqual(2 + 1e-6);
    for (const h of honest) expect(scales.get(h.peer)).toBe(1);
    for (const b of byz) expect(scales.get(b.peer)!).toBeLessThan(0.003);
  });

  it('graphs: dumbbell is two cliques and one bridge; the expander degree grows like log n', () => {
    const g = dumbbellGraph(8);
    expect(g[0]).toEqual([1, 2, 3]);
    expect(g[3]).toEqual([0, 1, 2, 4]);
    expect(g[4]).toEqual([3, 5, 6, 7]);
    for (const [i, ns] of g.entries()) for (const j of ns) expect(g[j]).toContain(i);
    expect(expanderDegree(16)).toBe(6);
    expect(expanderDegree(100)).toBe(9);
    const e = randomRegularGraph(100, expanderDegree(100), new Rng(1));
    expect(e.every((ns) => ns.length === 9)).toBe(true);
  });
});

describe('which rule can use which aggregator (clear refusals, never a silent fallback)', () => {
  it('refuses push-sum, CHOCO, gossip with coordinate-wise statistics, and masking with anything but the mean', () => {
    expect(aggregatorConflict('dpsgd', 'median')).toBeNull();
    expect(aggregatorConflict('epidemic', 'trimmed-mean')).toBeNull();
    expect(aggregatorConflict('gossip', 'clipped')).toBeNull();
    expect(aggregatorConflict('pushsum', 'clipped')?.message).toMatch(/push-sum/);
    expect(aggregatorConflict('choco', 'median')?.message).toMatch(/CHOCO/);
    expect(aggregatorConflict('gossip', 'median')?.message).toMatch(/one received model/);
    expect(aggregatorConflict('dpsgd', 'median', { secure: true })?.message).toMatch(/masked/);
    expect(aggregatorConflict('dpsgd', 'mean', { secure: true })).toBeNull();
    const t = { self: 'p0', neighbours: () => [], peers: () => [], send() {}, onMessage() {}, now: () => 0, setTimer: () => 0, clearTimer() {}, computeDelay: () => 0 };
    const cfg = { ...nodeCfg('clipped'), seed: 1 };
    expect(() => createNode('pushsum', t, new VectorLearner(new Float32Array(D)), cfg)).toThrow(CohortError);
  });

  it('the manifest validates averaging.aggregator and trim and refuses a combination it cannot serve', () => {
    const base = JSON.parse(JSON.stringify(loadManifest('scenarios/wdbc-radiomics.json'))) as { averaging: Record<string, unknown> };
    expect(parseManifest(base).averaging.aggregator).toBe('mean');
    const bad = (over: Record<string, unknown>) => () => parseManifest({ ...base, averaging: { ...base.averaging, ...over } }, 'x.json');
    expect(parseManifest({ ...base, averaging: { ...base.averaging, aggregator: 'clipped', topology: { kind: 'expander' } } }).averaging.aggregator).toBe('clipped');
    expect(bad({ aggregator: 'krum' })).toThrow(/averaging\.aggregator must be one of mean, clipped, trimmed-mean, median/);
    expect(bad({ trim: 0.5 })).toThrow(/trim/);
    expect(bad({ algorithm: 'pushsum', aggregator: 'median' })).toThrow(/push-sum/);
    expect(bad({ algorithm: 'gossip', aggregator: 'trimmed-mean' })).toThrow(/gossip learning/);
  });

  it('attack names and fractions', () => {
    expect(parseAttack('alie')).toBe('alie');
    expect(() => parseAttack('telekinesis')).toThrow(/unknown attack "telekinesis"/);
    expect(checkFraction(0)).toBe(0);
    expect(() => checkFraction(0.5)).toThrow(/outside \[0, 0.5\)/);
    expect(() => checkFraction(-0.1)).toThrow(CohortError);
    expect(pickByzantine(10, 0.2, 3)).toHaveLength(2);
    expect(pickByzantine(10, 0.2, 3)).not.toContain(0);
    expect(pickByzantine(16, 0, 3)).toEqual([]);
  });
});

describe('attacks (craftModel)', () => {
  const own = Float32Array.from([1, -2, 3]);
  const rng = new Rng(1);
  it('sign flip, scaling, Gaussian noise, NaN', () => {
    expect([...craftModel('sign-flip', own, 'p1', undefined, rng)]).toEqual([-1, 2, -3]);
    expect([...craftModel('scaling', own, 'p1', undefined, rng)]).toEqual([1000, -2000, 3000]);
    const g = craftModel('gaussian', own, 'p1', undefined, rng);
    expect(g.some((v, i) => Math.abs(v - own[i]!) > 0.5)).toBe(true);
    expect(craftModel('nan', own, 'p1', undefined, rng).every(Number.isNaN)).toBe(true);
  });

  it('ALIE, IPM and dissensus from the view of the target and its honest neighbours', () => {
    const t = Float32Array.from([0, 0, 0]);
    const view = {
      peers: 10, byzantine: 1, target: () => t,
      neighbours: () => [
        { model: Float32Array.from([2, 0, 0]), byzantine: false, weight: 0.25 }, { model: Float32Array.from([4, 0, 0]), byzantine: false, weight: 0.25 },
        { model: own, byzantine: true, weight: 0.25 },
      ],
    };
    // ALIE: n = 10, f = 1: s = 5, z = Phi^-1(0.5) = 0 -> the honest mean; with z = 1: mean - sd
    expect(alieZ(10, 1)).toBeCloseTo(0, 6);
    expect(alieZ(100, 10)).toBeCloseTo(0.2275, 3);   // Phi^-1(0.59)
    expect(craftModel('alie', own, 'p1', view, rng)[0]).toBeCloseTo(2, 5);
    expect(craftModel('alie', own, 'p1', view, rng, { z: 1 })[0]).toBeCloseTo(0, 5);
    expect(craftModel('ipm', own, 'p1', view, rng)[0]).toBeCloseTo(-1.5, 5);            // 0 - 0.5 * mean(2, 4)
    expect(craftModel('dissensus', own, 'p1', view, rng)[0]).toBeCloseTo(-9, 5);        // 0 - 1.5 * (0.5 + 1) / 0.25
  });

  it('label flipping poisons the data, not the message', () => {
    const set = { size: 3, inputs: { features: { shape: [1], data: Float32Array.from([0, 1, 2]) } }, targets: { label: { shape: [], data: Float32Array.from([0, 1, 2]) } } };
    expect([...poisonLabels(set, 3).targets['label']!.data]).toEqual([2, 1, 0]);
  });
});

const nodeCfg = (aggregator: AggregatorName, over: Partial<NodeConfig> = {}): Omit<NodeConfig, 'seed'> => ({
  scenario: 'robust', layoutHash: 'lh', rounds: 40, roundMs: 100, deadlineMs: 80, codec: 'f32', weighting: 'uniform', train: true,
  proximal: false, robust: { aggregator }, ...over,
});

/** 16 peers minimise 0.5||x - c_i||^2 with c_i around (1, ..., 1); some are Byzantine. Returns the honest peers' worst error. */
async function quadraticRun(algorithm: AlgorithmName, aggregator: AggregatorName, attack: AttackName | null, topology: Topology, trim = 0.2, fraction = 0.125, n = 16) {
  const rng = new Rng(7);
  const targets = Array.from({ length: n }, () => Float32Array.from({ length: D }, () => 1 + 0.3 * rng.normal()));
  const learners = targets.map((c) => new QuadraticLearner(new Float32Array(D), c, 0.3, 1));
  const adv = attack ? simAdversary({ name: attack, fraction }, n, 11, D) : null;
  const res = await simulate({
    algorithm, learners, seed: 3, node: nodeCfg(aggregator, { robust: { aggregator, trim } }),
    network: { topology, link: { latencyMs: 5, bandwidthBytesPerMs: Infinity, loss: 0 }, stepMs: 1 },
    ...(adv ? { transportFor: adv.transportFor } : {}),
  });
  const byz = new Set(adv?.byzantine ?? []);
  const honest = res.nodes.filter((_, i) => !byz.has(i));
  // the honest optimum: the mean of the honest peers' targets; err: the worst honest peer's largest coordinate error
  const opt = new Float64Array(D);
  targets.forEach((c, i) => { if (!byz.has(i)) for (let k = 0; k < D; k++) opt[k] = opt[k]! + c[k]! / (n - byz.size); });
  const err = Math.max(...honest.map((node) => Math.max(...[...node.estimate()].map((v, k) => Math.abs(v - opt[k]!)))));
  return { err, res, adv, honest };
}

describe('robust aggregation inside the rules (16 peers, quadratic objectives, virtual clock)', () => {
  const expander: Topology = { kind: 'expander' };
  it('no attacker: clipping, trimmed mean and median reach the optimum like plain averaging (D-PSGD, expander)', async () => {
    for (const agg of ['mean', 'clipped', 'trimmed-mean', 'median'] as const) {
      const { err } = await quadraticRun('dpsgd', agg, null, expander);
      expect(err, agg).toBeLessThan(0.3);
    }
  });

  it('scaling x1000: plain D-PSGD is wrecked, ClippedGossip keeps every honest peer near the optimum and names the attackers', async () => {
    const plain = await quadraticRun('dpsgd', 'mean', 'scaling', expander);
    expect(plain.err).toBeGreaterThan(10);
    const clipped = await quadraticRun('dpsgd', 'clipped', 'scaling', expander);
    expect(clipped.err).toBeLessThan(0.5);
    const report = attackReport(clipped.adv!, clipped.res.nodes, 'clipped');
    expect(report.crafted).toBeGreaterThan(0);
    expect(report.suspicion!.byzantine_named).toBe(clipped.adv!.byzantine.length);
    expect(report.suspicion!.honest_named).toBe(0);
  });

  // the radius floor (twice the median neighbour distance) lets a dissensus attacker pull further than the bare adaptive rule did
  // (0.61 vs 0.29 here; docs/robustness.md): bounded, far from plain averaging's blow-up
  for (const [attack, bound] of [['sign-flip', 0.35], ['gaussian', 0.35], ['alie', 0.35], ['ipm', 0.35], ['dissensus', 0.7], ['free-ride', 0.4]] as const) {
    it(`${attack}: ClippedGossip (D-PSGD) keeps honest peers near the optimum`, async () => {
      const { err } = await quadraticRun('dpsgd', 'clipped', attack, expander);
      expect(err).toBeLessThan(bound);
    });
  }

  it('trimmed mean (trim 0.3: two of seven per side) and median (D-PSGD) survive sign flip and scaling; trim 0.2 does not', async () => {
    for (const agg of ['trimmed-mean', 'median'] as const) for (const attack of ['sign-flip', 'scaling'] as const) {
      const { err } = await quadraticRun('dpsgd', agg, attack, expander, 0.3);
      expect(err, `${agg} ${attack}`).toBeLessThan(0.4);
    }
    // degree 6 on the expander: b = floor(0.2 * 7) = 1 trimmed per side, and some peers have two Byzantine neighbours
    expect((await quadraticRun('dpsgd', 'trimmed-mean', 'scaling', expander, 0.2)).err).toBeGreaterThan(10);
  });

  it('Epidemic Learning: clipping survives scaling and dissensus, plain EL does not; coordinate-wise rules fail on its random receivers', async () => {
    expect((await quadraticRun('epidemic', 'mean', 'scaling', expander)).err).toBeGreaterThan(10);
    expect((await quadraticRun('epidemic', 'clipped', 'scaling', expander)).err).toBeLessThan(0.35);
    expect((await quadraticRun('epidemic', 'clipped', 'dissensus', expander)).err).toBeLessThan(0.35);
    // a round that brings one model, the attacker's: a median of two is their mean (documented in docs/robustness.md)
    expect((await quadraticRun('epidemic', 'median', 'scaling', expander)).err).toBeGreaterThan(1);
  });

  it('gossip learning: clipping bounds what scaling does (plain: 1e23), but one model per merge is not enough to cancel it', async () => {
    expect((await quadraticRun('gossip', 'mean', 'scaling', expander)).err).toBeGreaterThan(1e10);
    const clipped = (await quadraticRun('gossip', 'clipped', 'scaling', expander)).err;
    expect(clipped).toBeLessThan(30);
    expect(clipped).toBeGreaterThan(1);   // documented in docs/robustness.md: gossip learning + clipping misses the target
    expect((await quadraticRun('gossip', 'clipped', 'sign-flip', expander)).err).toBeLessThan(0.7);
  });

  it('NaN and wrong layout are refused by every honest neighbour and counted', async () => {
    for (const [attack, key] of [['nan', 'non_finite'], ['wrong-layout', 'wrong_layout']] as const) {
      const run = await quadraticRun('dpsgd', 'mean', attack, expander);
      const report = attackReport(run.adv!, run.res.nodes, 'mean');
      expect(report.rejected[key]).toBeGreaterThan(0);
      expect(run.err).toBeLessThan(0.3);
    }
  });

  it('every attack name runs in the simulator', () => {
    expect(ATTACKS).toHaveLength(10);
    const inner = { self: 'p1', neighbours: () => ['p0'], peers: () => ['p0'], send: (_to: string, m: unknown) => { sent.push(m); }, onMessage() {}, now: () => 0, setTimer: () => 0, clearTimer() {}, computeDelay: () => 0 };
    const sent: unknown[] = [];
    const t = attackTransport(inner, 'free-ride', { length: 2, seed: 1 });
    const msg = (v: number[]) => ({ kind: 'model' as const, scenario: 's', round: 0, layoutHash: 'lh', codec: 'f32', payload: new Uint8Array(Float32Array.from(v).buffer) });
    t.send('p0', msg([1, 2]));
    t.send('p0', msg([5, 6]));
    const second = sent[1] as { payload: Uint8Array };
    expect([...new Float32Array(second.payload.slice().buffer)]).toEqual([1, 2]);   // the stale first model again
  });
});
