// The BASELINES (FedAvg with a server, local-only, centralised) and FedProx's proximal pull, on closed-form and small real learners.
import { describe, expect, it } from 'vitest';
import { centralisedBaseline, fedAvgBaseline, localOnlyBaseline } from '../../src/averaging/index.ts';
import { QuadraticLearner, SoftmaxLearner } from '../../src/sim/learners.ts';
import { loadSimData, standardiseSplit } from '../../src/sim/datasets.ts';
import { stratifiedSplit } from '../../src/sim/partition.ts';

const targets = [Float32Array.of(0, 0), Float32Array.of(4, 0), Float32Array.of(0, 8)];
const counts = [1, 1, 2];
const start = Float32Array.of(1, 1);

describe('baselines', () => {
  it('FedAvg converges to the sample-weighted optimum; local-only leaves each peer at its own', async () => {
    const dist = (x: Float32Array, y: ArrayLike<number>) => Math.hypot(x[0]! - y[0]!, x[1]! - y[1]!);
    const optimum = [1, 4]; // (0*1 + 4*1 + 0*2)/4, (0 + 0 + 8*2)/4
    const fed = await fedAvgBaseline(targets.map((c, i) => new QuadraticLearner(start, c, 0.1, 5, counts[i])), async (x) => -dist(x, optimum), { rounds: 60 });
    expect(fed.final).toBeGreaterThan(-0.05);
    expect(fed.bytesPerPeerPerRound).toBe(8);
    const learners = targets.map((c) => new QuadraticLearner(start, c, 0.3, 5));
    const local = await localOnlyBaseline(learners, async (x) => -dist(x, optimum), { rounds: 30 });
    targets.forEach((c, i) => expect(dist(learners[i]!.getParameters(), c)).toBeLessThan(1e-3));
    expect(local.final).toBeLessThan(-2);
  });

  it('centralised training on WDBC reaches > 95% test accuracy (the ceiling the rules are measured against)', async () => {
    const { set } = loadSimData({ source: 'data/wdbc.csv', label: 'diagnosis' }, {}, 1);
    const split = stratifiedSplit(set, 'label', 0.2, 1);
    const { train, test } = standardiseSplit(split.train, split.test);
    const learner = new SoftmaxLearner(train, { classes: 2, lr: 0.1, batchSize: 16, epochs: 1, seed: 1 });
    const r = await centralisedBaseline(learner, async (x) => SoftmaxLearner.evaluate(x, test, 2).accuracy, { rounds: 10, evalEvery: 5 });
    expect(r.curve.length).toBe(10);
    expect(r.final).toBeGreaterThan(0.95);
  });

  it('FedProx: a large proximal mu keeps local training near the round-start model', async () => {
    const raw = loadSimData({ source: 'data/wdbc.csv', label: 'diagnosis' }, {}, 1).set;
    const set = standardiseSplit(raw, raw).train;
    const anchor = SoftmaxLearner.init(30, 2, 5);
    const drift = async (mu: number) => {
      const l = new SoftmaxLearner(set, { classes: 2, lr: 0.05, batchSize: 16, epochs: 2, seed: 1, proximalMu: mu }, anchor);
      l.setProximalAnchor(anchor);
      await l.train();
      const p = l.getParameters();
      return Math.sqrt(p.reduce((s, v, i) => s + (v - anchor[i]!) ** 2, 0));
    };
    expect(await drift(10)).toBeLessThan((await drift(0)) * 0.5);
  });
});
