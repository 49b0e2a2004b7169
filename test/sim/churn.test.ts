// Many in-process peers with local training on a closed-form problem: 30% churn, comeback catch-up, stragglers, determinism.
import { describe, expect, it } from 'vitest';
import { consensusDistance, type AlgorithmName, type NodeConfig } from '../../src/averaging/index.ts';
import { QuadraticLearner } from '../../src/sim/learners.ts';
import { churnSchedule, simulate } from '../../src/sim/simulate.ts';
import { Rng } from '../../src/util/random.ts';

const D = 8;
const N = 20;
const ROUNDS = 60;

function problem(seed: number) {
  const rng = new Rng(seed);
  const targets = Array.from({ length: N }, () => Float32Array.from({ length: D }, () => rng.normal() * 2));
  const init = Float32Array.from({ length: D }, () => rng.normal());
  return { targets, init };
}

const dist2 = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, v, i) => s + (v - b[i]!) ** 2, 0);

function meanOf(xs: readonly Float32Array[]): Float64Array {
  const m = new Float64Array(D);
  for (const x of xs) x.forEach((v, i) => { m[i] = m[i]! + v / xs.length; });
  return m;
}

async function run(algorithm: AlgorithmName, opts: { churn: number; seed: number; loss?: number; stragglers?: boolean }) {
  const { targets, init } = problem(7);
  const churn = churnSchedule(N, opts.churn, ROUNDS, opts.seed);
  const node: Omit<NodeConfig, 'seed'> = {
    scenario: 'quad', layoutHash: `q${D}`, rounds: ROUNDS, roundMs: 1000, deadlineMs: 800, codec: algorithm === 'pushsum' ? 'f64' : 'f32',
    weighting: 'uniform', train: true, proximal: false,
  };
  const consensusBeforeReturn: number[] = [];
  const res = await simulate({
    algorithm, seed: opts.seed, churn, settings: { s: 3, fanout: 1, gamma: 0.6 },
    learners: targets.map((c) => new QuadraticLearner(init, c, 0.05, 1)),
    network: {
      topology: { kind: 'random-regular', degree: 4 }, link: { latencyMs: 20, bandwidthBytesPerMs: 100, loss: opts.loss ?? 0 }, stepMs: 50,
      slowdown: opts.stragglers ? Array.from({ length: N }, (_, i) => (i % 5 === 0 ? 30 : 1)) : undefined,
    },
    node,
    onRound: (p) => { if (p.round === 38) consensusBeforeReturn.push(p.consensus); },
  });
  return { res, churn, consensusBeforeReturn: consensusBeforeReturn[0]!, targets };
}

describe('30% of peers leave mid-run and come back', () => {
  for (const algorithm of ['dpsgd', 'pushsum', 'epidemic', 'gossip', 'choco'] as const) {
    it(`${algorithm}: the rest converge while they are away, and the returning peers catch up`, async () => {
      const { res, churn, consensusBeforeReturn, targets } = await run(algorithm, { churn: 0.3, seed: 3 });
      const leavers = [...new Set(churn.map((e) => e.peer))];
      expect(leavers.length).toBe(6);
      // local-only training would leave the peers as far apart as their optima: consensusDistance(targets)
      const apart = consensusDistance(targets);
      // while 6 of 20 peers are gone, the 14 others agree far more than peers training alone would
      expect(res.probes[38]!.online).toBe(14);
      expect(consensusBeforeReturn).toBeLessThan(apart * 0.05);
      // at the end all 20 are back and the returning peers sit with the others
      expect(res.probes.at(-1)!.online).toBe(N);
      const models = res.nodes.map((n) => n.estimate());
      const stayers = models.filter((_, i) => !leavers.includes(i));
      const centre = meanOf(stayers);
      const spread = Math.max(...stayers.map((x) => dist2(x, centre)));
      for (const i of leavers) expect(dist2(models[i]!, centre)).toBeLessThan(Math.max(spread * 4, 0.02));
      expect(res.probes.at(-1)!.consensus).toBeLessThan(apart * 0.05);
    });
  }
});

describe('stragglers, loss and determinism', () => {
  it('stragglers do not hold rounds back: every round closes at its deadline and the network still agrees', async () => {
    for (const algorithm of ['dpsgd', 'epidemic'] as const) {
      const { res, targets } = await run(algorithm, { churn: 0, seed: 5, stragglers: true });
      expect(res.nodes.every((n) => n.stats.rounds === ROUNDS)).toBe(true);
      expect(res.probes.at(-1)!.consensus).toBeLessThan(consensusDistance(targets) * 0.05);
      // EL stragglers finish training after the round's deadline: they sit the push out (and keep their update), never block others
      if (algorithm === 'epidemic') {
        const sent = res.nodes.map((n) => n.stats.messagesSent);
        const slow = sent.filter((_, i) => i % 5 === 0);
        const fast = sent.filter((_, i) => i % 5 !== 0);
        expect(Math.max(...slow)).toBeLessThan(Math.min(...fast));
      }
    }
  });

  it('a run is identical for a seed (loss, stragglers, churn) and differs for another seed', async () => {
    const a = await run('epidemic', { churn: 0.3, seed: 11, loss: 0.1, stragglers: true });
    const b = await run('epidemic', { churn: 0.3, seed: 11, loss: 0.1, stragglers: true });
    const c = await run('epidemic', { churn: 0.3, seed: 12, loss: 0.1, stragglers: true });
    const flat = (r: typeof a) => r.res.nodes.flatMap((n) => Array.from(n.estimate()));
    expect(flat(a)).toEqual(flat(b));
    expect(a.res.probes.map((p) => p.consensus)).toEqual(b.res.probes.map((p) => p.consensus));
    expect(a.res.network.messagesLost).toBe(b.res.network.messagesLost);
    expect(a.res.network.messagesLost).toBeGreaterThan(0);
    expect(flat(a)).not.toEqual(flat(c));
  });
});
