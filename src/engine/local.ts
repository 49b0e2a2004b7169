/**
 * Local training on one site's tabular or image SampleSet (the `cohort train` baseline): a seeded stratified held-out
 * split, standardisation fitted on the training part only, N epochs with a Trainer, held-out metrics at the end.
 */
import { CohortError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';
import { perSample, selectSamples, type SampleSet, type SampleTensor } from '../data/samples.ts';
import type { Metrics } from './evaluate.ts';
import type { ExecutionProviderName } from './providers.ts';
import type { ModelSpec, OptimizerSpec } from './spec.ts';
import { Trainer } from './trainer.ts';

/** Indices split per class (label = class index), the same fraction of each class held out. */
export function stratifiedSplit(labels: Float32Array, testFraction: number, rng: Rng): { train: number[]; test: number[] } {
  const byClass = new Map<number, number[]>();
  labels.forEach((c, i) => { const l = byClass.get(c); if (l) l.push(i); else byClass.set(c, [i]); });
  const train: number[] = [];
  const test: number[] = [];
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = rng.shuffle([...(byClass.get(c) as number[])]);
    const k = Math.round(idx.length * testFraction);
    test.push(...idx.slice(0, k));
    train.push(...idx.slice(k));
  }
  return { train: rng.shuffle(train), test: rng.shuffle(test) };
}

export interface Standardizer { mean: Float32Array; std: Float32Array }

/** Per-feature mean and standard deviation of one input over the samples (NaN ignored; std 0 -> 1). */
export function fitStandardizer(t: SampleTensor, size: number): Standardizer {
  const d = perSample(t);
  const sum = new Float64Array(d), sq = new Float64Array(d), n = new Float64Array(d);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < d; j++) {
      const v = t.data[i * d + j];
      if (Number.isNaN(v)) continue;
      sum[j] += v; sq[j] += v * v; n[j]++;
    }
  }
  const mean = new Float32Array(d), std = new Float32Array(d);
  for (let j = 0; j < d; j++) {
    const m = n[j] ? sum[j] / n[j] : 0;
    const v = n[j] ? sq[j] / n[j] - m * m : 0;
    mean[j] = m;
    std[j] = v > 1e-12 ? Math.sqrt(v) : 1;
  }
  return { mean, std };
}

/** z-scores; missing values (NaN) become 0, the training mean. */
export function applyStandardizer(t: SampleTensor, s: Standardizer): SampleTensor {
  const d = s.mean.length;
  const data = new Float32Array(t.data.length);
  for (let i = 0; i < data.length; i++) {
    const v = (t.data[i] - s.mean[i % d]) / s.std[i % d];
    data[i] = Number.isNaN(v) ? 0 : v;
  }
  return { shape: t.shape, data };
}

export interface LocalTrainOptions {
  model: ModelSpec;
  optimizer: OptimizerSpec;
  epochs: number;
  batchSize: number;
  seed: number;
  testFraction?: number;
  providers?: ExecutionProviderName[];
  threads?: number;
  fusedSteps?: number;
  /** Standardise these inputs (feature vectors) with statistics of the training part. */
  standardize?: readonly string[];
  onEpoch?: (epoch: number, loss: number) => void;
}

export interface LocalTrainResult { trainer: Trainer; train: SampleSet; test: SampleSet; metrics: Metrics; trainLoss: number }

export async function trainLocal(set: SampleSet, o: LocalTrainOptions): Promise<LocalTrainResult> {
  if (set.size === 0) throw new CohortError('EMPTY_DATASET', 'the data set has no samples', 'check the file: it needs at least one data row');
  const label = set.targets.label;
  if (!label) throw new CohortError('MISSING_TARGET', 'the data has no label target', 'pass the label column name');
  const rng = new Rng(o.seed);
  const { train: ti, test: vi } = stratifiedSplit(label.data, o.testFraction ?? 0.2, rng);
  if (vi.length === 0 || ti.length === 0) {
    throw new CohortError('DATASET_TOO_SMALL', `${set.size} samples are too few for a held-out split`, 'add samples or raise the test fraction');
  }
  let train = selectSamples(set, ti);
  let test = selectSamples(set, vi);
  for (const name of o.standardize ?? []) {
    const s = fitStandardizer(train.inputs[name], train.size);
    train = { ...train, inputs: { ...train.inputs, [name]: applyStandardizer(train.inputs[name], s) } };
    test = { ...test, inputs: { ...test.inputs, [name]: applyStandardizer(test.inputs[name], s) } };
  }
  const trainer = await Trainer.create({ model: o.model, optimizer: o.optimizer, batchSize: o.batchSize, seed: o.seed,
    providers: o.providers, threads: o.threads, fusedSteps: o.fusedSteps }, train);
  let trainLoss = Number.NaN;
  const epochRng = rng.fork();
  for (let e = 0; e < o.epochs; e++) {
    trainLoss = (await trainer.trainEpoch(train, { rng: epochRng })).loss;
    o.onEpoch?.(e + 1, trainLoss);
  }
  return { trainer, train, test, metrics: await trainer.evaluate(test), trainLoss };
}
