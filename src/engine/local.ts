/**
 * Local training on one site's tabular or image SampleSet (the `cohort train` baseline): a seeded stratified held-out
 * split and standardisation fitted on the training part only (both from the data layer, src/data/tabular.ts), N epochs
 * with a Trainer, held-out metrics at the end. Image sets pass their own `split` (by subject: see local-images.ts).
 */
import { CohortError } from '../util/errors.ts';
import { Rng } from '../util/random.ts';
import { selectSamples, type SampleSet } from '../data/samples.ts';
import { applyStandardiser, fitStandardiser, stratifiedSplit, type Standardiser } from '../data/tabular.ts';
import type { Metrics } from './evaluate.ts';
import type { ExecutionProviderName, ProviderFallback } from './providers.ts';
import type { LossSpec, ModelSpec, OptimizerSpec } from './spec.ts';
import { Trainer } from './trainer.ts';

export interface LocalTrainOptions {
  model: ModelSpec;
  /** Default: the model's (cross-entropy for classifiers, Dice + CE for U-Nets). */
  loss?: LossSpec;
  optimizer: OptimizerSpec;
  epochs: number;
  batchSize: number;
  seed: number;
  testFraction?: number;
  /** Sample indices of the two parts, when the caller splits (e.g. by subject); otherwise stratified by `label`. */
  split?: { train: number[]; test: number[] };
  providers?: ExecutionProviderName[];
  /** When a wanted provider cannot run: fall back to cpu (logged) or fail (src/engine/providers.ts). */
  providerFallback?: ProviderFallback;
  /** Count the nodes each provider ran (Trainer.graphReports). */
  measurePlacement?: boolean;
  threads?: number;
  fusedSteps?: number;
  /** Standardise these inputs (feature vectors) with statistics of the training part. */
  standardize?: readonly string[];
  onEpoch?: (epoch: number, loss: number) => void;
}

export interface LocalTrainResult {
  trainer: Trainer; train: SampleSet; test: SampleSet; metrics: Metrics; trainLoss: number;
  /** The standardiser fitted for each `standardize` input (what the self-contained export carries: engine/export.ts). */
  standardisers: Record<string, Standardiser>;
}

export async function trainLocal(set: SampleSet, o: LocalTrainOptions): Promise<LocalTrainResult> {
  if (set.size === 0) throw new CohortError('EMPTY_DATASET', 'the data set has no samples', 'check the file: it needs at least one data row');
  const { train: ti, test: vi } = o.split ?? labelSplit(set, o.testFraction ?? 0.2, o.seed);
  if (vi.length === 0 || ti.length === 0) {
    throw new CohortError('DATASET_TOO_SMALL', `${set.size} samples are too few for a held-out split`, 'add samples or raise the test fraction');
  }
  let train = selectSamples(set, ti);
  let test = selectSamples(set, vi);
  const standardisers: Record<string, Standardiser> = {};
  for (const name of o.standardize ?? []) {
    const s = fitStandardiser(train.inputs[name], train.size);
    standardisers[name] = s;
    train = { ...train, inputs: { ...train.inputs, [name]: applyStandardiser(train.inputs[name], s) } };
    test = { ...test, inputs: { ...test.inputs, [name]: applyStandardiser(test.inputs[name], s) } };
  }
  const trainer = await Trainer.create({ model: o.model, loss: o.loss, optimizer: o.optimizer, batchSize: o.batchSize, seed: o.seed,
    providers: o.providers, providerFallback: o.providerFallback, measurePlacement: o.measurePlacement, threads: o.threads, fusedSteps: o.fusedSteps }, train);
  let trainLoss = Number.NaN;
  const epochRng = new Rng(o.seed).fork();
  for (let e = 0; e < o.epochs; e++) {
    trainLoss = (await trainer.trainEpoch(train, { rng: epochRng })).loss;
    o.onEpoch?.(e + 1, trainLoss);
  }
  return { trainer, train, test, metrics: await trainer.evaluate(test), trainLoss, standardisers };
}

function labelSplit(set: SampleSet, testFraction: number, seed: number): { train: number[]; test: number[] } {
  const label = set.targets.label;
  if (!label) throw new CohortError('MISSING_TARGET', 'the data has no label target', 'pass the label column name');
  return stratifiedSplit(label.data, testFraction, seed);
}
