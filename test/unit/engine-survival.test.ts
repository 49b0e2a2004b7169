/**
 * Survival in the engine: the Cox partial-likelihood loss (Breslow ties, censoring) against hand-worked values and a float64
 * reference (forward and gradient, real ORT), the loss inside a Trainer (linear Cox model), and Harrell's C-index against
 * hand-checked cases, lifelines' tie case and a naive all-pairs count with lifelines' pair rules.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, Trainer, releaseSessions } from '../../src/engine/index.ts';
import { coxPartialLikelihood } from '../../src/engine/losses.ts';
import { concordanceIndex } from '../../src/engine/metrics.ts';
import { survivalData } from '../helpers/survival-data.ts';
import { Rng } from '../../src/util/random.ts';
import { checkGradients } from '../helpers/float64/gradcheck.ts';
import { run, session } from '../helpers/float64/ort.ts';

afterAll(releaseSessions);

/** float64 reference: -sum_i e_i (eta_i - log sum_{t_j >= t_i} exp(eta_j)) / max(1, sum e). */
function coxRef(eta: ArrayLike<number>, time: ArrayLike<number>, event: ArrayLike<number>): number {
  let ll = 0, events = 0;
  for (let i = 0; i < time.length; i++) {
    if (event[i] !== 1) continue;
    events++;
    let s = 0;
    for (let j = 0; j < time.length; j++) if (time[j] >= time[i]) s += Math.exp(eta[j]);
    ll += eta[i] - Math.log(s);
  }
  return -ll / Math.max(1, events);
}

async function coxLoss(eta: number[], time: number[], event: number[]): Promise<number> {
  const B = eta.length;
  const g = new GraphBuilder('cox');
  const x = g.input('eta', [B, 1]);
  const t = g.input('time', [B]);
  const e = g.input('event', [B]);
  g.output(coxPartialLikelihood(g, x, t, e), 'loss');
  const s = await session(g);
  const out = await run(s, { eta: { data: Float32Array.from(eta), shape: [B, 1] }, time: { data: Float32Array.from(time), shape: [B] }, event: { data: Float32Array.from(event), shape: [B] } });
  await s.release();
  return out.loss[0];
}

describe('Cox partial likelihood (graph ops, real ORT)', () => {
  it('matches hand-worked values: no ties, Breslow ties, censoring, all censored', async () => {
    // events at t=1 (risk set {1,2,3}) and t=2 ({2,3}); eta = 0: (log 3 + log 2) / 2
    expect(await coxLoss([0, 0, 0], [1, 2, 3], [1, 1, 0])).toBeCloseTo(Math.log(6) / 2, 6);
    // Breslow: two events tied at t=1 both keep all three in their risk set; the last event is alone: (2 log 3 + 0) / 3
    expect(await coxLoss([0, 0, 0], [1, 1, 2], [1, 1, 1])).toBeCloseTo((2 * Math.log(3)) / 3, 6);
    // eta = [2, 0, -1], events at t=1 and t=3 (the censored sample at t=2 is only in the first risk set)
    expect(await coxLoss([2, 0, -1], [1, 2, 3], [1, 0, 1])).toBeCloseTo(-(2 - Math.log(Math.exp(2) + 1 + Math.exp(-1))) / 2, 6);
    // a sample censored at an event's time stays in that event's risk set
    expect(await coxLoss([1, 0], [5, 5], [1, 0])).toBeCloseTo(-(1 - Math.log(Math.exp(1) + 1)), 6);
    expect(Math.abs(await coxLoss([0.3, -2, 1], [1, 2, 3], [0, 0, 0]))).toBe(0);
  });

  it('is invariant to the order of the samples, and stable for large scores', async () => {
    const rng = new Rng(3);
    const eta = Array.from({ length: 9 }, () => rng.normal());
    const time = [3, 1, 4, 1, 5, 9, 2, 6, 5];
    const event = [1, 0, 1, 1, 0, 1, 1, 0, 1];
    const perm = [4, 8, 0, 2, 6, 1, 7, 3, 5];
    const a = await coxLoss(eta, time, event);
    const b = await coxLoss(perm.map((i) => eta[i]), perm.map((i) => time[i]), perm.map((i) => event[i]));
    expect(a).toBeCloseTo(coxRef(eta, time, event), 5);
    expect(b).toBeCloseTo(a, 5);
    const big = [90, -85, 120, 40];
    const v = await coxLoss(big, [1, 2, 3, 4], [1, 1, 0, 1]);
    expect(Number.isFinite(v)).toBe(true);
    expect(v).toBeCloseTo(coxRef(big.map((x) => x - 120), [1, 2, 3, 4], [1, 1, 0, 1]), 3); // shift-invariant reference without overflow
  });

  it('gradient matches central differences of the float64 reference (ties and censoring in the batch)', async () => {
    const B = 12;
    const time = [5, 3, 3, 8, 1, 5, 9, 3, 2, 7, 7, 4];
    const event = [1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 1, 1];
    const { forwardErr, gradErr } = await checkGradients({
      inputs: { eta: [B, 1], time: [B], event: [B] },
      wrt: ['eta'],
      init: (name, n, rng) => name === 'time' ? Float32Array.from(time) : name === 'event' ? Float32Array.from(event)
        : Float32Array.from({ length: n }, () => rng.normal()),
      build: (g, x) => coxPartialLikelihood(g, x.eta, x.time, x.event),
      reference: (x) => Float64Array.of(coxRef(x.eta, x.time, x.event)),
    });
    expect(forwardErr).toBeLessThan(1e-5);
    expect(gradErr.eta).toBeLessThan(1e-4);
  });
});

describe('linear Cox model in a Trainer', () => {
  it('loss and gradient equal the float64 reference; training recovers the log-hazard ranking (C-index)', async () => {
    const beta = [1, -0.5, 0, 0.8];
    const data = survivalData(64, beta, 5, 20);
    const t = await Trainer.create({ model: { type: 'mlp', hidden: [], classes: 1 }, loss: { type: 'cox' }, optimizer: { type: 'adam', lr: 0.05 },
      batchSize: 64, seed: 1, providers: ['cpu'], threads: 1 }, data);
    const F = beta.length;
    const w = t.getParameters(); // [out.w (F x 1), out.b]
    const x = data.inputs.features.data;
    const eta = Array.from({ length: data.size }, (_, i) => { let s = w[F]; for (let j = 0; j < F; j++) s += x[i * F + j] * w[j]; return s; });
    const time = data.targets.time.data;
    const event = data.targets.event.data;
    const { loss, gradient } = await t.lossAndGradient(data);
    expect(loss).toBeCloseTo(coxRef(eta, time, event), 5);
    for (let j = 0; j < F; j++) {
      const h = 1e-6;
      const up = eta.map((v, i) => v + h * x[i * F + j]);
      const down = eta.map((v, i) => v - h * x[i * F + j]);
      const fd = (coxRef(up, time, event) - coxRef(down, time, event)) / (2 * h);
      expect(gradient[j]).toBeCloseTo(fd, 4);
    }
    expect(Math.abs(gradient[F])).toBeLessThan(1e-5); // the bias cancels out of a partial likelihood
    const before = (await t.evaluate(data)).c_index!;
    for (let e = 0; e < 60; e++) await t.trainEpoch(data);
    const m = await t.evaluate(data);
    expect(m.c_index).toBeGreaterThan(Math.max(before, 0.7));
    const v = t.getParameters();
    expect(v[0]).toBeGreaterThan(0.3); // the signs of the true coefficients
    expect(v[1]).toBeLessThan(-0.1);
    expect(v[3]).toBeGreaterThan(0.3);
    // the reported C-index is the metric of the risk score x . w itself
    const risk = Array.from({ length: data.size }, (_, i) => { let s = v[F]; for (let j = 0; j < F; j++) s += x[i * F + j] * v[j]; return s; });
    expect(m.c_index).toBeCloseTo(concordanceIndex(Float32Array.from(risk), time, event), 6);
    await t.dispose();
  });

  it('refuses a model with several outputs and data without survival targets', async () => {
    const data = survivalData(8, [1], 1, 20);
    await expect(Trainer.create({ model: { type: 'mlp', hidden: [], classes: 2 }, loss: { type: 'cox' }, optimizer: { type: 'sgd' }, batchSize: 8, seed: 1, providers: ['cpu'] }, data))
      .rejects.toThrow(/one output/);
    const t = await Trainer.create({ model: { type: 'mlp', hidden: [], classes: 1 }, loss: { type: 'cox' }, optimizer: { type: 'sgd' }, batchSize: 8, seed: 1, providers: ['cpu'] }, data);
    const bad = { ...data, targets: { ...data.targets, event: { shape: [], data: Float32Array.from({ length: 8 }, () => 2) } } };
    await expect(t.trainEpoch(bad)).rejects.toThrow(/event value 2/);
    await t.dispose();
  });
});

/** All pairs, lifelines' rules (naive_concordance_index): comparable if exactly one of a tied pair had the event, or the earlier one had it. */
function naiveC(risk: ArrayLike<number>, time: ArrayLike<number>, event: ArrayLike<number>): number {
  let num = 0, pairs = 0;
  for (let a = 0; a < time.length; a++) {
    for (let b = a + 1; b < time.length; b++) {
      const [i, j] = time[a] < time[b] || (time[a] === time[b] && event[a] === 1) ? [a, b] : [b, a];
      const comparable = time[i] === time[j] ? event[i] !== event[j] : event[i] === 1;
      if (!comparable) continue;
      pairs++;
      num += risk[i] > risk[j] ? 1 : risk[i] === risk[j] ? 0.5 : 0;
    }
  }
  return num / pairs;
}

describe("Harrell's C-index", () => {
  const c = (risk: number[], time: number[], event: number[]): number => concordanceIndex(risk, time, event);

  it('hand-checked cases', () => {
    expect(c([3, 2, 1], [1, 2, 3], [1, 1, 1])).toBe(1);
    expect(c([1, 2, 3], [1, 2, 3], [1, 1, 1])).toBe(0);
    expect(c([7, 7, 7], [1, 2, 3], [1, 1, 1])).toBe(0.5);
    // events at t=1 (3 comparable pairs, all concordant) and t=3 (1 pair, discordant); censored samples start no pair
    expect(c([0.9, 0.5, 0.3, 0.6], [1, 2, 3, 4], [1, 0, 1, 0])).toBe(0.75);
    // same time, one event one censored: comparable (the censored one outlived the event)
    expect(c([1, 0], [2, 2], [1, 0])).toBe(1);
    expect(c([0, 1], [2, 2], [1, 0])).toBe(0);
    expect(c([1, 1], [2, 2], [1, 0])).toBe(0.5);
    // two events at the same time are not comparable; only censoring: no pair at all
    expect(c([1, 0], [2, 2], [1, 1])).toBeNaN();
    expect(c([1, 2, 3], [1, 2, 3], [0, 0, 0])).toBeNaN();
  });

  it("lifelines' tie case (test_both_concordance_index_function_deal_with_ties_the_same_way): 1.0", () => {
    // lifelines scores predicted survival times [1, 2, 3] for times [1, 1, 2], all events; a risk score is their negation
    expect(c([-1, -2, -3], [1, 1, 2], [1, 1, 1])).toBe(1);
  });

  it('equals the all-pairs count on random data with ties in time and in risk', () => {
    const rng = new Rng(9);
    for (let rep = 0; rep < 5; rep++) {
      const n = 150;
      const time = Array.from({ length: n }, () => rng.int(40));
      const event = Array.from({ length: n }, () => (rng.next() < 0.4 ? 1 : 0));
      const risk = Array.from({ length: n }, () => rng.int(25) / 5);
      expect(c(risk, time, event)).toBeCloseTo(naiveC(risk, time, event), 12);
    }
  });
});
