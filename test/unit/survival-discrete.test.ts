/**
 * Discrete-time survival (logistic hazard, src/engine/survival-discrete.ts): nnet-survival's interval encoding against
 * hand-worked cases, the loss and its gradient against a float64 reference (real ORT, central differences), the batch loss
 * as the mean of per-patient losses (what makes DP-SGD's clipping a per-patient bound), a Trainer that learns a known hazard
 * ranking and reports the C-index of the cumulative hazard, DP-SGD accepted for it (Cox still refused, naming it), the
 * manifest rules, and the self-contained export's `risk` output from raw TCGA-BRCA columns. The proportional-hazards head
 * (bias-free dense 1 -> offsets K): its parameter layout, loss and every parameter's gradient against a host reference, a
 * learnt ranking equal to that of the shared predictor, DP-SGD on it, the refusal of offsets after a wider layer, its export.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, Trainer, releaseSessions, type ModelSpec } from '../../src/engine/index.ts';
import { cumulativeHazard, discreteHazardNll, hazardTargets } from '../../src/engine/survival-discrete.ts';
import { lossSpecSchema } from '../../src/engine/spec.ts';
import { concordanceIndex } from '../../src/engine/metrics.ts';
import { trainLocal } from '../../src/engine/local.ts';
import { readCohortMetadata, selfContainedTabular } from '../../src/engine/export.ts';
import { describeModelInput } from '../../src/data/model-input.ts';
import { applyStandardiser, readTable, tableToSamples } from '../../src/data/tabular.ts';
import { predictTable, scoreAgainstTruth } from '../../src/cli/commands/predict.ts';
import { loadManifest, parseManifest } from '../../src/scenario/manifest.ts';
import { runScenarioSim } from '../../src/sim/run.ts';
import { CohortError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/random.ts';
import { survivalData } from '../helpers/survival-data.ts';
import { checkGradients } from '../helpers/float64/gradcheck.ts';
import { run, session } from '../helpers/float64/ort.ts';

afterAll(releaseSessions);

const softplus = (z: number): number => (z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z)));

/** float64 reference: (1/B) sum_i -sum_k [s log(1 - h) + f log h], h = sigmoid(z), written with log/exp (not softplus). */
function nllRef(z: ArrayLike<number>, y: ArrayLike<number>, m: ArrayLike<number>, B: number): number {
  let s = 0;
  for (let i = 0; i < z.length; i++) {
    if (m[i] === 0) continue;
    const h = 1 / (1 + Math.exp(-z[i]!));
    s -= y[i] === 1 ? Math.log(h) : Math.log(1 - h);
  }
  return s / B;
}

describe('interval encoding (nnet-survival)', () => {
  const cuts = [10, 20, 30];
  const enc = (t: number, e: number) => {
    const { y, m } = hazardTargets([t], [e], cuts);
    return { y: [...y], m: [...m] };
  };
  it('events: survived intervals that end at or before t, failure in the interval holding t; beyond the horizon: survived all', () => {
    expect(enc(15, 1)).toEqual({ m: [1, 1, 0], y: [0, 1, 0] });
    expect(enc(0, 1)).toEqual({ m: [1, 0, 0], y: [1, 0, 0] });
    expect(enc(20, 1)).toEqual({ m: [1, 1, 1], y: [0, 0, 1] }); // t on a cut: the interval it opens holds the event
    expect(enc(45, 1)).toEqual({ m: [1, 1, 1], y: [0, 0, 0] });
  });
  it('censored: an interval counts as survived from its midpoint on, never a failure', () => {
    expect(enc(14, 0)).toEqual({ m: [1, 0, 0], y: [0, 0, 0] });
    expect(enc(15, 0)).toEqual({ m: [1, 1, 0], y: [0, 0, 0] });
    expect(enc(4, 0)).toEqual({ m: [0, 0, 0], y: [0, 0, 0] });
    expect(enc(30, 0)).toEqual({ m: [1, 1, 1], y: [0, 0, 0] });
  });
});

async function graphLoss(z: number[], y: Float32Array, m: Float32Array, B: number, K: number): Promise<{ loss: number; risk: Float32Array }> {
  const g = new GraphBuilder('dh');
  const zt = g.input('z', [B, K]);
  g.output(discreteHazardNll(g, zt, g.input('y', [B, K]), g.input('m', [B, K])), 'loss');
  g.output(cumulativeHazard(g, zt), 'risk');
  const s = await session(g);
  const out = await run(s, { z: { data: Float32Array.from(z), shape: [B, K] }, y: { data: y, shape: [B, K] }, m: { data: m, shape: [B, K] } });
  await s.release();
  return { loss: out.loss[0]!, risk: Float32Array.from(out.risk) };
}

describe('discrete-hazard loss (graph ops, real ORT)', () => {
  const cuts = [1, 2, 3, 4];
  const time = [0.5, 1.5, 2.2, 3.9, 5, 0.7, 2.6, 1.1];
  const event = [1, 0, 1, 1, 0, 0, 1, 1];
  const B = time.length, K = cuts.length;
  const { y, m } = hazardTargets(time, event, cuts);

  it('equals the float64 reference, stays finite for large logits, and its risk is sum softplus(z)', async () => {
    const rng = new Rng(4);
    const z = Array.from({ length: B * K }, () => rng.normal());
    const { loss, risk } = await graphLoss(z, y, m, B, K);
    expect(loss).toBeCloseTo(nllRef(z, y, m, B), 5);
    for (let i = 0; i < B; i++) expect(risk[i]).toBeCloseTo(z.slice(i * K, (i + 1) * K).reduce((a, v) => a + softplus(v), 0), 5);
    const big = z.map((v, i) => (i % 2 ? 80 : -90) + v);
    const b = await graphLoss(big, y, m, B, K);
    expect(Number.isFinite(b.loss)).toBe(true);
    let ref = 0; // the reference in softplus form (log/exp overflow at |z| = 90 in the plain form)
    for (let i = 0; i < big.length; i++) ref += m[i]! * (softplus(big[i]!) - y[i]! * big[i]!);
    expect(b.loss).toBeCloseTo(ref / B, 1);
  });

  it('gradient matches central differences of the float64 reference', async () => {
    const { forwardErr, gradErr } = await checkGradients({
      inputs: { z: [B, K], y: [B, K], m: [B, K] },
      wrt: ['z'],
      init: (name, n, rng) => name === 'y' ? y : name === 'm' ? m : Float32Array.from({ length: n }, () => rng.normal()),
      build: (g, x) => discreteHazardNll(g, x.z, x.y, x.m),
      reference: (x) => Float64Array.of(nllRef(x.z, x.y, x.m, B)),
    });
    expect(forwardErr).toBeLessThan(1e-5);
    expect(gradErr.z).toBeLessThan(1e-4);
  });

  it('the batch loss is the mean of per-patient losses (each patient one term: what per-sample clipping bounds)', async () => {
    const rng = new Rng(9);
    const z = Array.from({ length: B * K }, () => rng.normal());
    const whole = (await graphLoss(z, y, m, B, K)).loss;
    let sum = 0;
    for (let i = 0; i < B; i++) sum += (await graphLoss(z.slice(i * K, (i + 1) * K), y.slice(i * K, (i + 1) * K), m.slice(i * K, (i + 1) * K), 1, K)).loss;
    expect(whole).toBeCloseTo(sum / B, 5);
  });
});

const CUTS = [0.25, 0.5, 1, 2];

describe('discrete-hazard model in a Trainer', () => {
  it('loss equals the reference, training learns the hazard ranking, c_index is that of the cumulative hazard', async () => {
    const data = survivalData(200, [1, -0.7, 0], 3);
    const K = CUTS.length, F = 3;
    const t = await Trainer.create({ model: { type: 'mlp', hidden: [], classes: K }, loss: { type: 'discrete-hazard', cuts: CUTS },
      optimizer: { type: 'adam', lr: 0.05 }, batchSize: 50, seed: 1, providers: ['cpu'], threads: 1 }, data);
    const logits = (w: Float32Array): number[] => { // out.w [F x K] row-major, then out.b [K]
      const x = data.inputs.features.data;
      return Array.from({ length: data.size * K }, (_, ik) => {
        const i = Math.floor(ik / K), k = ik % K;
        let s = w[F * K + k]!;
        for (let j = 0; j < F; j++) s += x[i * F + j]! * w[j * K + k]!;
        return s;
      });
    };
    const { y, m } = hazardTargets(data.targets.time!.data, data.targets.event!.data, CUTS);
    const { loss } = await t.lossAndGradient(data);
    expect(loss).toBeCloseTo(nllRef(logits(t.getParameters()), y, m, data.size), 4);
    for (let e = 0; e < 80; e++) await t.trainEpoch(data);
    const metrics = await t.evaluate(data);
    expect(metrics.c_index).toBeGreaterThan(0.7);
    const z = logits(t.getParameters());
    const risk = Float32Array.from({ length: data.size }, (_, i) => z.slice(i * K, (i + 1) * K).reduce((a, v) => a + softplus(v), 0));
    expect(metrics.c_index).toBeCloseTo(concordanceIndex(risk, data.targets.time!.data, data.targets.event!.data), 5);
    await t.dispose();
  });

  it('refuses a model whose outputs are not one per interval', async () => {
    const data = survivalData(8, [1], 1);
    const e = await Trainer.create({ model: { type: 'mlp', hidden: [], classes: 3 }, loss: { type: 'discrete-hazard', cuts: CUTS }, optimizer: { type: 'sgd' },
      batchSize: 8, seed: 1, providers: ['cpu'] }, data).then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(CohortError);
    expect((e as Error).message).toMatch(/one output per interval \(4 cuts/);
  });

  it('DP-SGD trains it (per-sample clipping applies); the Cox loss is still refused and the reason names discrete-hazard', async () => {
    const data = survivalData(40, [1, -0.5], 2);
    const t = await Trainer.create({ model: { type: 'mlp', hidden: [], classes: CUTS.length }, loss: { type: 'discrete-hazard', cuts: CUTS },
      optimizer: { type: 'sgd', lr: 0.1 }, batchSize: 8, seed: 1, providers: ['cpu'], threads: 1, dp: { clip: 1, noiseMultiplier: 1 } }, data);
    const before = t.getParameters();
    const r = await t.trainEpoch(data);
    expect(Number.isFinite(r.loss)).toBe(true);
    expect(t.getParameters().some((v, i) => v !== before[i])).toBe(true);
    await t.dispose();
    const e = await Trainer.create({ model: { type: 'mlp', hidden: [], classes: 1 }, loss: { type: 'cox' }, optimizer: { type: 'sgd' },
      batchSize: 8, seed: 1, providers: ['cpu'], dp: { clip: 1, noiseMultiplier: 1 } }, data).then(() => null, (x: unknown) => x);
    expect((e as CohortError).code).toBe('DP_UNSUPPORTED');
    expect((e as Error).message).toMatch(/discrete-hazard/);
  });
});

describe('manifest', () => {
  it('cuts must be positive and increasing', () => {
    expect(lossSpecSchema.safeParse({ type: 'discrete-hazard', cuts: [365, 730] }).success).toBe(true);
    expect(lossSpecSchema.safeParse({ type: 'discrete-hazard', cuts: [730, 365] }).success).toBe(false);
    expect(lossSpecSchema.safeParse({ type: 'discrete-hazard', cuts: [] }).success).toBe(false);
    expect(lossSpecSchema.safeParse({ type: 'discrete-hazard', cuts: [0, 1] }).success).toBe(false);
  });

  it('privacy.dp is accepted with discrete-hazard and refused with Cox, the message naming the option', () => {
    const m = loadManifest('scenarios/tcga-brca-dp.json');
    expect(m.loss?.type).toBe('discrete-hazard');
    expect(m.privacy?.dp?.epsilon).toBeGreaterThan(0);
    const cox = { ...JSON.parse(JSON.stringify(m)), loss: { type: 'cox' }, model: { type: 'mlp', hidden: [], classes: 1 } };
    let err: unknown;
    try { parseManifest(cox, 'cox-dp.json'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(CohortError);
    expect(`${(err as CohortError).message} ${(err as CohortError).hint}`).toMatch(/Cox[\s\S]*discrete-hazard/);
  });
});

describe('simulator', () => {
  it('runs Fed-TCGA-BRCA with DP-SGD on the discrete-hazard scenario (epsilon spent <= target); --dp-epsilon on the Cox one is refused naming it', async () => {
    const m = loadManifest('scenarios/tcga-brca-dp.json');
    const r = await runScenarioSim(m, { seed: 1, rounds: 2, evalEvery: 2, baselines: false, dpEpsilon: 3 });
    expect(r.peers).toBe(6);
    expect(r.final.metric).toBe('c_index');
    expect(r.final.mean).toBeGreaterThan(0);
    expect(r.privacy?.dp?.epsilon_spent).toBeGreaterThan(0);
    expect(r.privacy!.dp!.epsilon_spent).toBeLessThanOrEqual(3);
    const e = await runScenarioSim(loadManifest('scenarios/tcga-brca.json'), { seed: 1, rounds: 2, baselines: false, dpEpsilon: 3 }).then(() => null, (x: unknown) => x);
    expect((e as CohortError).code).toBe('SIM_PRIVACY');
    expect(`${(e as CohortError).message} ${(e as CohortError).hint}`).toMatch(/Cox[\s\S]*discrete-hazard/);
  }, 300_000);
});

/** Yearly cuts over five years (days), for the TCGA-BRCA exports below. */
const TCGA_CUTS = [365, 730, 1096, 1461, 1826];

/**
 * Trains `model` with the discrete-hazard loss on 3/4 of TCGA-BRCA, exports the self-contained model and scores every raw row
 * with it: the file outputs `risk` only, equal (1e-4) to Cohort's own prediction for every row.
 */
async function exportedRisk(model: ModelSpec, lr: number, what: string) {
  const table = readTable('data/tcga-brca.csv');
  const ts = tableToSamples(table, { survival: { time: 'time_days', event: 'event' }, ignore: ['pid', 'region', 'split'] });
  const all = [...Array(ts.set.size).keys()];
  const r = await trainLocal(ts.set, { model, loss: { type: 'discrete-hazard', cuts: TCGA_CUTS },
    optimizer: { type: 'adam', lr }, epochs: 5, batchSize: 32, seed: 2, providers: ['cpu'], standardize: ['features'],
    split: { train: all.filter((i) => i % 4), test: all.filter((i) => !(i % 4)) } });
  try {
    const s = r.standardisers['features']!;
    const bytes = selfContainedTabular(r.trainer.exportOnnx(), { input: describeModelInput(ts, s), task: { kind: 'survival', time: 'time_days', event: 'event' } });
    const meta = readCohortMetadata(bytes, what);
    expect(meta.outputs).toEqual(['risk']);
    const p = await predictTable(bytes, meta, table);
    const own = (await r.trainer.predict({ ...ts.set, inputs: { features: applyStandardiser(ts.set.inputs.features, s) } })).prob;
    let worst = 0;
    for (let i = 0; i < own.length; i++) worst = Math.max(worst, Math.abs(p.scores[i]! - own[i]!));
    expect(own.length).toBe(table.rows);
    expect(worst).toBeLessThan(1e-4);
    return { p, meta, table };
  } finally {
    await r.trainer.dispose();
  }
}

describe('export', () => {
  it('the self-contained model outputs `risk` (cumulative hazard) from raw TCGA-BRCA columns, as Cohort predicts it', async () => {
    const { p, meta, table } = await exportedRisk({ type: 'mlp', hidden: [], classes: TCGA_CUTS.length }, 0.01, 'discrete-hazard model');
    expect(p.labels).toBeUndefined();
    expect(scoreAgainstTruth(p, meta, table).c_index).toBeGreaterThan(0.5);
  });
});

/** The proportional-hazards head (nnet-survival's parametrisation): z_ik = x_i . w + b_k, a bias-free dense 1 then offsets K. */
const PH = (K: number, init = 0) => ({ type: 'sequential' as const, layers: [{ type: 'dense', units: 1, bias: false }, { type: 'offsets', units: K, init }] });

describe('proportional-hazards head (sequential: dense 1 without bias -> offsets K)', () => {
  const K = CUTS.length, F = 3;
  /** host logits from the flat params: l0.dense.w [F x 1], then l1.offsets.b [K]; the offsets start at `init` */
  const phLogits = (p: Float32Array, x: Float32Array, n: number, init = 0): number[] => Array.from({ length: n * K }, (_, ik) => {
    const i = Math.floor(ik / K), k = ik % K;
    let eta = 0;
    for (let j = 0; j < F; j++) eta += x[i * F + j]! * p[j]!;
    return eta + init + p[F + k]!;
  });

  it('has F + K parameters; loss and gradient equal the host reference and central differences (offsets starting at init)', async () => {
    const data = survivalData(30, [1, -0.7, 0.3], 5);
    const init = -1.5;
    const t = await Trainer.create({ model: PH(K, init), loss: { type: 'discrete-hazard', cuts: CUTS }, optimizer: { type: 'sgd', lr: 0.1 },
      batchSize: data.size, seed: 3, providers: ['cpu'], threads: 1 }, data);
    expect(t.layout.entries.map((e) => [e.name, e.length])).toEqual([['l0.dense.w', F], ['l1.offsets.b', K]]);
    const { y, m } = hazardTargets(data.targets.time!.data, data.targets.event!.data, CUTS);
    const x = data.inputs.features.data;
    const start = t.getParameters();
    expect([...start.subarray(F)]).toEqual(new Array(K).fill(0));
    expect((await t.lossAndGradient(data)).loss).toBeCloseTo(nllRef(phLogits(start, x, data.size, init), y, m, data.size), 4);
    const p0 = start.map((v, i) => (i >= F ? 0.5 - 0.3 * (i - F) : v)); // offsets moved apart, so that each matters
    t.setParameters(p0);
    const { loss, gradient } = await t.lossAndGradient(data);
    expect(loss).toBeCloseTo(nllRef(phLogits(p0, x, data.size, init), y, m, data.size), 4);
    const h = 1e-3;
    for (let i = 0; i < p0.length; i++) {
      const at = (d: number) => { const p = Float64Array.from(p0); p[i] += d; return nllRef(phLogits(Float32Array.from(p), x, data.size, init), y, m, data.size); };
      const fd = (at(h) - at(-h)) / (2 * h);
      expect(Math.abs(gradient[i]! - fd), `param ${i}: analytic ${gradient[i]} vs finite difference ${fd}`).toBeLessThan(1e-3 + 1e-2 * Math.abs(fd));
    }
    expect(Math.max(...Array.from(gradient, Math.abs))).toBeGreaterThan(1e-2);
    await t.dispose();
  });

  it('learns the hazard ranking; its risk (cumulative hazard) ranks as the shared linear predictor; DP-SGD trains it', async () => {
    const data = survivalData(200, [1, -0.7, 0], 3);
    const t = await Trainer.create({ model: PH(K), loss: { type: 'discrete-hazard', cuts: CUTS }, optimizer: { type: 'adam', lr: 0.05 },
      batchSize: 50, seed: 1, providers: ['cpu'], threads: 1 }, data);
    for (let e = 0; e < 60; e++) await t.trainEpoch(data);
    const metrics = await t.evaluate(data);
    expect(metrics.c_index).toBeGreaterThan(0.7);
    const p = t.getParameters();
    const eta = Float32Array.from({ length: data.size }, (_, i) => phLogits(p, data.inputs.features.data, data.size)[i * K]! - p[F]!);
    expect(metrics.c_index).toBeCloseTo(concordanceIndex(eta, data.targets.time!.data, data.targets.event!.data), 5);
    expect(p[0]).toBeGreaterThan(0.3); // beta = (1, -0.7, 0): the learnt predictor has the true signs
    expect(p[1]).toBeLessThan(-0.2);
    await t.dispose();
    const d = await Trainer.create({ model: PH(K), loss: { type: 'discrete-hazard', cuts: CUTS }, optimizer: { type: 'sgd', lr: 0.1 },
      batchSize: 8, seed: 1, providers: ['cpu'], threads: 1, dp: { clip: 1, noiseMultiplier: 1 } }, survivalData(40, [1, -0.5, 0], 2));
    const before = d.getParameters();
    expect(Number.isFinite((await d.trainEpoch(survivalData(40, [1, -0.5, 0], 2))).loss)).toBe(true);
    expect(d.getParameters().some((v, i) => v !== before[i])).toBe(true);
    await d.dispose();
  });

  it('refuses offsets after a layer with more than one unit, naming the fix', async () => {
    const data = survivalData(8, [1], 1);
    const e = await Trainer.create({ model: { type: 'sequential', layers: [{ type: 'dense', units: 2 }, { type: 'offsets', units: K }] },
      loss: { type: 'discrete-hazard', cuts: CUTS }, optimizer: { type: 'sgd' }, batchSize: 8, seed: 1, providers: ['cpu'] }, data).then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(CohortError);
    expect((e as CohortError).code).toBe('SHAPE_MISMATCH');
    expect(`${(e as CohortError).message} ${(e as CohortError).hint}`).toMatch(/expected \[1\][\s\S]*units 1/);
  });

  it('exports `risk` from raw TCGA-BRCA columns equal to Cohort\'s own prediction', async () => {
    const { p, meta, table } = await exportedRisk(PH(TCGA_CUTS.length, -3), 0.03, 'proportional-hazards discrete-hazard model');
    expect(scoreAgainstTruth(p, meta, table).c_index).toBeGreaterThan(0.6);
  });
});
