// Averaging under real timing (issue 9): late neighbour models and late local updates are applied exactly once and counted only
// when they are; CHOCO stragglers keep their consensus step; CHOCO on a time-varying graph. Everything on the virtual clock: no test
// depends on how fast this machine is.
import { describe, expect, it } from 'vitest';
import { consensusDistance, type AlgorithmName, type LocalLearner, type NodeConfig } from '../../src/averaging/index.ts';
import { simulate, type SimulateOptions, type SimulateResult } from '../../src/sim/simulate.ts';
import type { Topology } from '../../src/sim/network.ts';
import { VectorLearner } from '../../src/sim/learners.ts';
import { runScenarioSim } from '../../src/sim/run.ts';
import { loadManifest } from '../../src/scenario/manifest.ts';
import { Rng } from '../../src/util/random.ts';

const D = 12;

/** A local "training" whose update is a known constant: every call adds `shift` to each coordinate and reports `steps` steps. */
class ShiftLearner implements LocalLearner {
  private v: Float32Array;
  constructor(initial: Float32Array, private readonly shift: number, private readonly steps: number, readonly sampleCount = 1) {
    this.v = initial.slice();
  }
  getParameters(): Float32Array { return this.v.slice(); }
  setParameters(v: Float32Array): void { this.v = v.slice(); }
  async train(): Promise<{ loss: number; steps: number }> {
    for (let i = 0; i < this.v.length; i++) this.v[i] = this.v[i]! + this.shift;
    return { loss: 0, steps: this.steps };
  }
}

function startingVectors(n: number, seed: number): Float32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: D }, () => rng.normal() * 3));
}

function columnSums(xs: readonly ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(D);
  for (const x of xs) for (let i = 0; i < D; i++) out[i] = out[i]! + x[i]!;
  return out;
}

const nodeCfg = (over: Partial<NodeConfig> = {}): Omit<NodeConfig, 'seed'> => ({
  scenario: 'timing', layoutHash: 'lh', rounds: 120, roundMs: 100, deadlineMs: 80, codec: 'f32', weighting: 'uniform', train: false,
  proximal: false, ...over,
});

/** simulate(), then let the virtual network deliver what is still in flight (no new round starts): every late item lands. */
async function simulateDrained(o: SimulateOptions): Promise<SimulateResult & { models: Float32Array[] }> {
  const res = await simulate(o);
  await res.network.clock.runUntil(o.node.rounds * o.node.roundMs + 5_000, (i) => res.network.online[i]!);
  expect(res.network.clock.pending).toBe(0);
  return { ...res, models: res.nodes.map((n) => n.estimate().slice()) };
}

const total = (res: SimulateResult, k: 'missedAtDeadline' | 'lateApplied' | 'lateLocalUpdates' | 'rounds') =>
  res.nodes.reduce((a, n) => a + n.stats[k], 0);

describe('D-PSGD: late neighbour models are applied exactly once (12 peers, rounds of 100 ms, deadline 80 ms)', () => {
  // 90 ms: every model misses the deadline and lands before the next round starts; 110 ms: it lands after the next round's
  // snapshot (one round late); 250 ms: two rounds late.
  for (const latencyMs of [90, 110, 250]) {
    it(`one-way latency ${latencyMs} ms: consensus, the exact mean, and one correction per model that missed its deadline`, async () => {
      const n = 12;
      const rounds = 120;
      const xs = startingVectors(n, 19);
      const start = consensusDistance(xs);
      const res = await simulateDrained({
        algorithm: 'dpsgd', seed: 2, learners: xs.map((x) => new VectorLearner(x)),
        network: { topology: { kind: 'random-regular', degree: 3 }, link: { latencyMs, bandwidthBytesPerMs: 1e4, loss: 0 }, stepMs: 1 },
        node: nodeCfg({ rounds }),
      });
      // every model of every round misses the 80 ms deadline (3 neighbours each) ...
      expect(total(res, 'missedAtDeadline')).toBe(rounds * n * 3);
      // ... and each is applied once when it lands, and counted then
      expect(total(res, 'lateApplied')).toBe(rounds * n * 3);
      // a correction that was counted but lost (or applied twice) would move the sum of the models: it stays where it started
      const before = columnSums(xs);
      const after = columnSums(res.models);
      for (let i = 0; i < D; i++) expect(after[i]).toBeCloseTo(before[i]!, 3);
      expect(res.probes.at(-1)!.consensus).toBeLessThan(start * 1e-3);
      expect(consensusDistance(res.models)).toBeLessThan(start * 1e-3);
    });
  }
});

describe('D-PSGD: local updates that finish after the deadline are applied exactly once', () => {
  // training time = steps x stepMs: 90 ms (after the 80 ms deadline), 130 ms (after the next round started), 250 ms (two rounds)
  const cases: [string, number, number][] = [
    ['90 ms of training, 5 ms links', 90, 5],
    ['130 ms of training, 5 ms links', 130, 5],
    ['250 ms of training, 5 ms links', 250, 5],
    ['130 ms of training, 110 ms links (models and updates both late)', 130, 110],
  ];
  for (const [name, trainMs, latencyMs] of cases) {
    it(`${name}: the sum over peers moves by exactly rounds x peers x shift`, async () => {
      const n = 12;
      const rounds = 120;
      const shift = 0.25;
      const xs = startingVectors(n, 23);
      const start = consensusDistance(xs);
      const res = await simulateDrained({
        algorithm: 'dpsgd', seed: 3, learners: xs.map((x) => new ShiftLearner(x, shift, trainMs / 10)),
        network: { topology: { kind: 'random-regular', degree: 3 }, link: { latencyMs, bandwidthBytesPerMs: 1e4, loss: 0 }, stepMs: 10 },
        node: nodeCfg({ rounds, train: true }),
      });
      const before = columnSums(xs);
      const after = columnSums(res.models);
      for (let i = 0; i < D; i++) expect(after[i]! - before[i]!).toBeCloseTo(rounds * n * shift, 1);
      expect(total(res, 'lateLocalUpdates')).toBe(rounds * n);
      // every peer shifts alike: the shift does not separate them, and they still agree
      expect(consensusDistance(res.models)).toBeLessThan(start * 1e-3);
    });
  }
});

describe('CHOCO-SGD: a straggler keeps its consensus step, and its neighbours take it in late', () => {
  for (const trainMs of [90, 130]) {
    it(`peer 3 trains for ${trainMs} ms (deadline 80 ms): consensus, and every update applied exactly once`, async () => {
      const n = 8;
      const rounds = 120;
      const shift = 0.25;
      const xs = startingVectors(n, 29);
      const start = consensusDistance(xs);
      const res = await simulateDrained({
        algorithm: 'choco', seed: 4, settings: { gamma: 0.5 }, learners: xs.map((x) => new ShiftLearner(x, shift, 10)),
        network: {
          topology: { kind: 'random-regular', degree: 3 }, link: { latencyMs: 5, bandwidthBytesPerMs: 1e4, loss: 0 }, stepMs: 1,
          slowdown: xs.map((_, i) => (i === 3 ? trainMs / 10 : 1)),
        },
        node: nodeCfg({ rounds, train: true }),
      });
      const before = columnSums(xs);
      const after = columnSums(res.models);
      for (let i = 0; i < D; i++) expect(after[i]! - before[i]!).toBeCloseTo(rounds * n * shift, 1);
      expect(res.nodes.every((node) => node.stats.rounds === rounds)).toBe(true);
      expect(res.nodes[3]!.stats.lateLocalUpdates).toBe(rounds);
      // the straggler's neighbours missed its q at their deadline every round and applied its term when it landed
      expect(total(res, 'lateApplied')).toBe(total(res, 'missedAtDeadline'));
      expect(total(res, 'lateApplied')).toBeGreaterThanOrEqual(rounds * 3);
      expect(consensusDistance(res.models)).toBeLessThan(start * 1e-3);
    });
  }
});

describe('CHOCO-SGD: q that lands after the deadline (latency > deadline, even > round) is taken in once', () => {
  for (const latencyMs of [110, 250]) {
    it(`one-way latency ${latencyMs} ms, rounds of 100 ms: consensus on the exact mean`, async () => {
      const xs = startingVectors(12, 37);
      const res = await simulateDrained({
        algorithm: 'choco', seed: 6, settings: { gamma: 0.5 }, learners: xs.map((x) => new VectorLearner(x)),
        network: { topology: { kind: 'random-regular', degree: 3 }, link: { latencyMs, bandwidthBytesPerMs: 1e4, loss: 0 }, stepMs: 1 },
        node: nodeCfg({ rounds: 120 }),
      });
      expect(total(res, 'missedAtDeadline')).toBe(120 * 12 * 3);
      expect(total(res, 'lateApplied')).toBe(120 * 12 * 3);
      const before = columnSums(xs);
      const after = columnSums(res.models);
      for (let i = 0; i < D; i++) expect(after[i]).toBeCloseTo(before[i]!, 3);
      expect(consensusDistance(res.models)).toBeLessThan(consensusDistance(xs) * 1e-3);
    });
  }
});

describe('CHOCO-SGD on a time-varying topology (a new random 3-regular graph every round)', () => {
  const chocoOn = (topology: Topology, codec: NodeConfig['codec'], algorithm: AlgorithmName = 'choco') => {
    const xs = startingVectors(12, 31);
    return simulateDrained({
      algorithm, seed: 5, settings: { gamma: 0.5 }, learners: xs.map((x) => new VectorLearner(x)),
      network: { topology, link: { latencyMs: 5, bandwidthBytesPerMs: 1e4, loss: 0 }, stepMs: 1 },
      node: nodeCfg({ rounds: 120, codec }),
    }).then((res) => ({ res, xs }));
  };

  for (const codec of ['f32', 'int8'] as const) {
    it(`${codec}: copies of a new neighbour are re-synchronised when the edge appears; consensus on the mean`, async () => {
      const { res, xs } = await chocoOn({ kind: 'time-varying', degree: 3 }, codec);
      expect(consensusDistance(res.models)).toBeLessThan(consensusDistance(xs) * 1e-3);
      const before = columnSums(xs);
      const after = columnSums(res.models);
      for (let i = 0; i < D; i++) expect(after[i]).toBeCloseTo(before[i]!, 3);
      expect(res.rejected.malformed + res.rejected.stale).toBe(0);
    });
  }

  it('on a fixed graph nothing changes: every copy stays in sync, one payload per round for all neighbours', async () => {
    const { res, xs } = await chocoOn({ kind: 'random-regular', degree: 3 }, 'f32');
    expect(consensusDistance(res.models)).toBeLessThan(consensusDistance(xs) * 1e-3);
    // 120 rounds x 3 neighbours, each message the same size as a plain q (no re-synchronisation traffic)
    expect(res.nodes.every((n) => n.stats.messagesSent === 120 * 3)).toBe(true);
  });
});

describe('the late counters of a run (simulate and cohort sim)', () => {
  it('simulate(): missed at the deadline = applied late + still in flight when the run ended', async () => {
    const xs = startingVectors(12, 41);
    const res = await simulate({
      algorithm: 'dpsgd', seed: 7, learners: xs.map((x) => new VectorLearner(x)),
      network: { topology: { kind: 'random-regular', degree: 3 }, link: { latencyMs: 110, bandwidthBytesPerMs: 1e4, loss: 0 }, stepMs: 1 },
      node: nodeCfg({ rounds: 40 }),
    });
    expect(res.late).toEqual({ missedAtDeadline: 40 * 36, applied: 39 * 36, inFlightAtEnd: 36, localUpdatesLate: 0 });
  });

  it('cohort sim overrides: --latency-ms, --deadline-ms and --round-ms reach the virtual network; "late" in the report', async () => {
    const m = loadManifest('scenarios/wdbc-radiomics.json');
    const o = { peers: 12, rounds: 30, learner: 'softmax' as const, baselines: false, latencyMs: 110, deadlineMs: 80 };
    const slow = await runScenarioSim(m, o);
    // the manifest's 10 s rounds: every model misses the 80 ms deadline and lands 30 ms later, long before the next round
    expect(slow.late).toEqual({ missed_at_deadline: 30 * 36, applied: 30 * 36, in_flight_at_end: 0, local_updates_late: 0 });
    const fast = await runScenarioSim(m, { ...o, roundMs: 100 });
    expect(fast.late).toEqual({ missed_at_deadline: 30 * 36, applied: 29 * 36, in_flight_at_end: 36, local_updates_late: 0 });
    // on time (20 ms links) nothing is late; the late block is for the rules that apply late work only
    const onTime = await runScenarioSim(m, { ...o, latencyMs: 20, roundMs: 100 });
    expect(onTime.late).toEqual({ missed_at_deadline: 0, applied: 0, in_flight_at_end: 0, local_updates_late: 0 });
    expect((await runScenarioSim(m, { ...o, algorithm: 'gossip', rounds: 3 })).late).toBeUndefined();
    await expect(runScenarioSim(m, { ...o, deadlineMs: 150, roundMs: 100 })).rejects.toThrow(/deadline \(150 ms\) falls after the end of the round \(100 ms\)/);
  });

  it('cohort sim --averaging-only: 12 peers, 110 ms links, 80 ms deadline reach the mean (issue 9\'s command), late counters match', async () => {
    const m = loadManifest('scenarios/wdbc-radiomics.json');
    const o = { peers: 12, rounds: 30, learner: 'softmax' as const, latencyMs: 110, deadlineMs: 80, averagingOnly: true };
    for (const run of [await runScenarioSim(m, o), await runScenarioSim(m, { ...o, roundMs: 100, rounds: 120 })]) {
      expect(run.consensus_start).toBeGreaterThan(10);
      expect(run.consensus_distance).toBeLessThan(1e-3 * run.consensus_start!);
      expect(run.late!.missed_at_deadline).toBeGreaterThan(0);
      expect(run.late!.applied + run.late!.in_flight_at_end).toBe(run.late!.missed_at_deadline);
      expect(run.baselines).toEqual({ centralised: null, local_only: null, fedavg: null });
    }
  });
});
