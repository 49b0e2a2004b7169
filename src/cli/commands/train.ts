/**
 * `cohort train --data FILE.csv --label COLUMN [--model mlp|SPEC.json] [--epochs N] [--seed S] [--batch B] [--lr X]
 *   [--optimizer sgd|adam|adamw] [--providers cuda,webgpu,cpu] [--threads T] [--export model.onnx] [--json]`
 * Local training only (the baseline a site can run on its own): seeded stratified held-out split, standardisation
 * fitted on the training part, progress bar, held-out metrics. --json prints one JSON document on stdout.
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import type { Command } from 'commander';
import { CohortError } from '../../util/errors.ts';
import { progressBar } from '../../util/progress.ts';
import type { SampleSet } from '../../data/samples.ts';
import { readTabular } from '../../data/tabular.ts';
import { trainLocal } from '../../engine/local.ts';
import { releaseSessions } from '../../engine/sessions.ts';
import type { ExecutionProviderName } from '../../engine/providers.ts';
import type { ModelSpec, OptimizerSpec } from '../../engine/spec.ts';

interface TrainOpts {
  data: string; label: string; model: string; epochs: string; seed: string; batch: string; lr?: string; optimizer: string;
  providers: string; threads: string; export?: string; json?: boolean; testFraction: string;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train a model locally on a CSV file (no network): held-out split, metrics, optional ONNX export')
    .requiredOption('--data <file>', 'CSV file with a header row')
    .requiredOption('--label <column>', 'the column to predict (class labels)')
    .option('--model <mlp|spec.json>', 'built-in "mlp" or a JSON model spec file', 'mlp')
    .option('--epochs <n>', 'passes over the training part', '40')
    .option('--seed <s>', 'seed for the split, initialisation and shuffling', '1')
    .option('--batch <b>', 'minibatch size', '32')
    .option('--lr <x>', 'learning rate (default: the optimizer\'s)')
    .option('--optimizer <name>', 'sgd | adam | adamw', 'adam')
    .option('--providers <list>', 'execution providers to try in order', 'cuda,webgpu,cpu')
    .option('--threads <t>', 'CPU threads for onnxruntime', '2')
    .option('--test-fraction <f>', 'held-out fraction (stratified)', '0.2')
    .option('--export <file.onnx>', 'write the trained model as a portable ONNX file')
    .option('--json', 'print the result as one JSON document')
    .action(async (o: TrainOpts) => runTrain(o));
}

async function runTrain(o: TrainOpts): Promise<void> {
  const t0 = performance.now();
  const { set, classes, classNames, features } = readCsvSamples(o.data, o.label);
  const model = modelSpec(o.model, classes);
  const epochs = int(o.epochs, '--epochs');
  const optimizer = { type: o.optimizer, ...(o.lr ? { lr: num(o.lr, '--lr') } : {}) } as OptimizerSpec;
  const bar = progressBar({ total: epochs, label: 'training', enabled: !o.json, fields: 'loss {loss}' });
  const r = await trainLocal(set, {
    model, optimizer, epochs, batchSize: int(o.batch, '--batch'), seed: int(o.seed, '--seed'),
    testFraction: num(o.testFraction, '--test-fraction'), providers: providerList(o.providers), threads: int(o.threads, '--threads'),
    fusedSteps: 8, standardize: ['features'],
    onEpoch: (e, loss) => bar.update(e, { loss: loss.toFixed(4) }),
  });
  bar.stop();
  if (o.export) writeFileSync(o.export, r.trainer.exportOnnx());
  const seconds = (performance.now() - t0) / 1000;
  const test = { accuracy: r.metrics.accuracy, auc: r.metrics.auc, balancedAccuracy: r.metrics.balancedAccuracy, loss: r.metrics.loss };
  const result = { model: model.type, provider: r.trainer.provider, epochs, test, seconds: Number(seconds.toFixed(2)),
    train: { samples: r.train.size, loss: r.trainLoss }, testSamples: r.test.size, features: features.length, classes: classNames,
    ...(o.export ? { exported: o.export } : {}) };
  await r.trainer.dispose();
  await releaseSessions();
  if (o.json) { process.stdout.write(JSON.stringify(result) + '\n'); return; }
  const pct = (v: number | undefined): string => (v === undefined ? 'n/a' : `${(100 * v).toFixed(1)}%`);
  process.stdout.write(`${model.type} on ${r.trainer.provider}: ${epochs} epochs, ${r.train.size} training / ${r.test.size} held-out samples\n`
    + `held-out accuracy ${pct(test.accuracy)}, balanced accuracy ${pct(test.balancedAccuracy)}, AUC ${test.auc?.toFixed(4) ?? 'n/a'}`
    + ` (${seconds.toFixed(1)} s)${o.export ? `\nwrote ${o.export}` : ''}\n`);
}

function modelSpec(arg: string, classes: number): ModelSpec {
  if (arg === 'mlp') return { type: 'mlp', hidden: [32], classes };
  if (!existsSync(arg)) throw new CohortError('MODEL_SPEC_NOT_FOUND', `no model spec file ${arg}`, 'pass --model mlp or the path of a JSON model spec');
  let raw: unknown;
  try { raw = JSON.parse(readFileSync(arg, 'utf8')); } catch (e) {
    throw new CohortError('BAD_MODEL_SPEC', `${arg} is not valid JSON: ${(e as Error).message}`, 'fix the JSON syntax');
  }
  // classes follows from the data when the spec leaves it out
  const type = (raw as { type?: unknown } | null)?.type;
  if (raw && typeof raw === 'object' && !('classes' in raw) && ['mlp', 'cnn2d', 'cnn3d', 'multimodal'].includes(String(type))) raw = { ...raw, classes };
  return raw as ModelSpec;
}

function providerList(s: string): ExecutionProviderName[] {
  const list = s.split(',').map((p) => p.trim()).filter(Boolean);
  for (const p of list) {
    if (p !== 'cuda' && p !== 'webgpu' && p !== 'cpu') {
      throw new CohortError('BAD_PROVIDER', `unknown execution provider '${p}'`, 'use a comma-separated list of cuda, webgpu, cpu');
    }
  }
  return list as ExecutionProviderName[];
}

function int(s: string, what: string): number {
  const v = Number(s);
  if (!Number.isInteger(v) || v <= 0) throw new CohortError('BAD_ARGUMENT', `${what} must be a positive integer, got '${s}'`, `e.g. ${what} 10`);
  return v;
}

function num(s: string, what: string): number {
  const v = Number(s);
  if (!Number.isFinite(v) || v <= 0) throw new CohortError('BAD_ARGUMENT', `${what} must be a positive number, got '${s}'`, `e.g. ${what} 0.01`);
  return v;
}

/** The CSV through the data layer's tabular reader (numeric and one-hot categorical features, identifiers dropped). */
export function readCsvSamples(file: string, label: string): { set: SampleSet; classes: number; classNames: string[]; features: string[] } {
  if (!existsSync(file)) throw new CohortError('DATA_NOT_FOUND', `no such file: ${file}`, 'pass the path of a CSV file with --data');
  const t = readTabular(file, { label });
  if (t.set.size === 0) throw new CohortError('EMPTY_DATASET', `${file} has no data rows with a label`, 'add data rows to the CSV');
  return { set: t.set, classes: t.classes, classNames: [...t.classNames], features: [...t.featureNames] };
}
