/**
 * Why the discrete-hazard model ranked TCGA-BRCA patients 15 points below Cox (docs/privacy.md, "Survival under DP"):
 * central training (FLamby's training rows pooled, no DP, no gossip) of the linear Cox model, the discrete-hazard model
 * with K free outputs (mlp, classes 10, 400 parameters) and its proportional-hazards form (dense 1 without bias -> offsets 10,
 * 49 parameters), same cuts as scenarios/tcga-brca-dp.json, Adam, batch 32, 50 epochs (the simulator's 50 rounds x 1 local
 * epoch). Per model: Harrell's C on FLamby's test rows (fit on all training rows), on the training rows themselves
 * (in-sample), and 5-fold cross-validation on the training rows (folds stratified by event, seeds 101-103: what the tuning
 * may use; the test rows never choose anything). For the free model also the C-index of the cumulative hazard at shorter
 * horizons (1, 3, 5 years) and, per interval, the patients at risk, events, weight norm and spread of softplus(z_k).
 *
 *   npx tsx bench/tcga-diagnose.ts          prints one JSON line per model / finding
 * Knobs: DIAG_EPOCHS=50, DIAG_SEEDS=101,102,103, DIAG_FOLDS=5.
 */
import { readTable, tableToSamples } from '../src/data/tabular.ts';
import { trainLocal } from '../src/engine/local.ts';
import { releaseSessions } from '../src/engine/index.ts';
import { concordanceIndex } from '../src/engine/metrics.ts';
import { hazardTargets } from '../src/engine/survival-discrete.ts';
import type { LossSpec, ModelSpec } from '../src/engine/spec.ts';
import type { SampleSet } from '../src/data/samples.ts';
import { Rng } from '../src/util/random.ts';
import { loadManifest } from '../src/scenario/manifest.ts';

const scenario = loadManifest('scenarios/tcga-brca-dp.json');
const CUTS = (scenario.loss as { cuts: number[] }).cuts;
const K = CUTS.length;
const EPOCHS = Number(process.env.DIAG_EPOCHS ?? 50);
const SEEDS = (process.env.DIAG_SEEDS ?? '101,102,103').split(',').map(Number);
const FOLDS = Number(process.env.DIAG_FOLDS ?? 5);
const HORIZONS = [1, 3, 5, K];

const table = readTable('data/tcga-brca.csv');
const ts = tableToSamples(table, { survival: { time: 'time_days', event: 'event' }, ignore: ['pid', 'region', 'split'] });
const mark = table.columns.find((c) => c.name === 'split')!.values;
const all = [...Array(ts.set.size).keys()];
const trainRows = all.filter((i) => mark[i] === 'train');
const testRows = all.filter((i) => mark[i] === 'test');
const F = ts.set.inputs.features.shape[0]!;

const models: Record<string, { model: ModelSpec; loss: LossSpec; lr: number }> = {
  cox: { model: { type: 'mlp', hidden: [], classes: 1 }, loss: { type: 'cox' }, lr: 0.01 },
  'hazard-free': { model: { type: 'mlp', hidden: [], classes: K }, loss: { type: 'discrete-hazard', cuts: CUTS }, lr: 0.03 },
  'hazard-ph': { model: { type: 'sequential', layers: [{ type: 'dense', units: 1, bias: false }, { type: 'offsets', units: K }] },
    loss: { type: 'discrete-hazard', cuts: CUTS }, lr: 0.03 },
};

const softplus = (z: number): number => (z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z)));
const r4 = (v: number): number => Math.round(v * 1e4) / 1e4;
const mean = (v: readonly number[]): number => v.reduce((a, b) => a + b, 0) / v.length;

/** Host logits of the free linear model (out.w [F x K] row-major, then out.b [K]) on standardised features. */
function freeLogits(p: Float32Array, set: SampleSet): Float64Array {
  const x = set.inputs.features.data;
  const z = new Float64Array(set.size * K);
  for (let i = 0; i < set.size; i++) {
    for (let k = 0; k < K; k++) {
      let s = p[F * K + k]!;
      for (let j = 0; j < F; j++) s += x[i * F + j]! * p[j * K + k]!;
      z[i * K + k] = s;
    }
  }
  return z;
}

function cAtHorizons(z: Float64Array, set: SampleSet): Record<string, number> {
  return Object.fromEntries(HORIZONS.map((h) => {
    const risk = Float32Array.from({ length: set.size }, (_, i) => { let s = 0; for (let k = 0; k < h; k++) s += softplus(z[i * K + k]!); return s; });
    return [`H${h}`, concordanceIndex(risk, set.targets.time!.data, set.targets.event!.data)];
  }));
}

async function fit(name: string, train: number[], test: number[], seed: number) {
  const s = models[name]!;
  const r = await trainLocal(ts.set, { model: s.model, loss: s.loss, optimizer: { type: 'adam', lr: s.lr }, epochs: EPOCHS, batchSize: 32, seed,
    providers: ['cpu'], threads: 1, standardize: ['features'], split: { train, test } });
  const inSample = (await r.trainer.evaluate(r.train)).c_index!;
  const params = r.trainer.getParameters();
  await r.trainer.dispose();
  return { c: r.metrics.c_index!, inSample, params, test: r.test, train: r.train };
}

/** FOLDS folds of the training rows, stratified by event, dealt after a seeded shuffle. */
function folds(seed: number): number[][] {
  const rng = new Rng(seed ^ 0xd1a6);
  const out: number[][] = Array.from({ length: FOLDS }, () => []);
  let j = 0;
  for (const e of [0, 1]) for (const i of rng.shuffle(trainRows.filter((r) => ts.set.targets.event!.data[r] === e))) out[j++ % FOLDS]!.push(i);
  return out;
}

async function main(): Promise<void> {
  const events = trainRows.filter((i) => ts.set.targets.event!.data[i] === 1).length;
  process.stdout.write(JSON.stringify({ rows: { train: trainRows.length, test: testRows.length, train_events: events }, epochs: EPOCHS, cuts: CUTS }) + '\n');
  for (const name of Object.keys(models)) {
    const full = await fit(name, trainRows, testRows, 1);
    const cv: number[] = [];
    const cvH: Record<string, number[]> = {};
    for (const seed of SEEDS) {
      const parts = folds(seed);
      for (let f = 0; f < FOLDS; f++) {
        const val = parts[f]!;
        const r = await fit(name, trainRows.filter((i) => !val.includes(i)), val, seed);
        cv.push(r.c);
        if (name === 'hazard-free') for (const [h, c] of Object.entries(cAtHorizons(freeLogits(r.params, r.test), r.test))) (cvH[h] ??= []).push(c);
      }
    }
    const row: Record<string, unknown> = { model: name, params: full.params.length, test_c: r4(full.c), train_in_sample_c: r4(full.inSample),
      cv_c: r4(mean(cv)), cv_runs: cv.length, cv_sd: r4(Math.sqrt(mean(cv.map((v) => (v - mean(cv)) ** 2)))) };
    if (name === 'hazard-free') {
      row.test_c_by_horizon = Object.fromEntries(Object.entries(cAtHorizons(freeLogits(full.params, full.test), full.test)).map(([h, c]) => [h, r4(c)]));
      row.cv_c_by_horizon = Object.fromEntries(Object.entries(cvH).map(([h, c]) => [h, r4(mean(c))]));
      const z = freeLogits(full.params, full.train);
      const { y, m } = hazardTargets(full.train.targets.time!.data, full.train.targets.event!.data, CUTS);
      row.per_interval = Array.from({ length: K }, (_, k) => {
        let atRisk = 0, ev = 0, w2 = 0; const sp: number[] = [];
        for (let i = 0; i < full.train.size; i++) { atRisk += m[i * K + k]!; ev += y[i * K + k]!; sp.push(softplus(z[i * K + k]!)); }
        for (let j = 0; j < F; j++) w2 += full.params[j * K + k]! ** 2;
        const mu = mean(sp);
        return { interval: k + 1, at_risk: atRisk, events: ev, weight_norm: r4(Math.sqrt(w2)), sd_softplus: r4(Math.sqrt(mean(sp.map((v) => (v - mu) ** 2)))) };
      });
    }
    process.stdout.write(JSON.stringify(row) + '\n');
  }
  await releaseSessions();
}

await main();
