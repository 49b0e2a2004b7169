/**
 * `cohort train --data FILE.csv --label COLUMN [--task classification|regression] [--ignore COL,...] [--model mlp|SPEC.json]
 *   [--epochs N] [--seed S] [--batch B] [--lr X]
 *   [--optimizer sgd|adam|adamw] [--providers cuda,webgpu,cpu] [--provider-fallback cpu|error] [--threads T] [--export model.onnx] [--json]`
 * `cohort train --data FILE.csv --time COLUMN --event COLUMN [--model SPEC.json] [--epochs N] ...` (survival: a linear Cox model)
 * `cohort train --data FOLDER [--preprocess CONFIG.json | --scenario SCENARIO.json] [--model SPEC.json] [--label COL] ...`
 * Local training only (the baseline a site can run on its own), progress bar, held-out metrics. --json prints one JSON
 * document on stdout ({model, provider, graphs: [{graph, provider, refused, nodes, cpuFallbackNodes}], epochs, test, seconds, ...}).
 *   CSV: seeded stratified held-out split, standardisation fitted on the training part, accuracy/AUC. The table is audited
 *   first (src/data/table-audit.ts): identifier-like columns dropped with a note, --ignore honoured, the feature list printed
 *   (stderr; `features` in --json), missing values counted per column, single columns that separate the label almost
 *   perfectly named as likely leakage (`warnings`), and a label with too many distinct values refused as classes (exit 2).
 *   CSV regression (--task regression): the target standardised with training-part statistics for training, MSE loss,
 *   held-out R2, MAE and RMSE in the target's own units beside the MAE of always predicting the training mean; --export
 *   writes the self-contained model with the rescale in-graph (output `value` in the target's units).
 *   CSV survival (--time, --event): split stratified by the event, Cox partial likelihood (Breslow ties), held-out C-index.
 *   Medical folder (ROOT/<subject>/<modality>/..., see docs/data.md): the data layer's preprocessing (from --preprocess, or a
 *   scenario manifest's data.preprocessing + model + loss + optimizer), held-out split by subject, Dice/IoU for segmentation,
 *   accuracy/AUC for classification.
 */
import { readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { CohortError } from '../../util/errors.ts';
import { progressBar } from '../../util/progress.ts';
import type { SampleSet } from '../../data/samples.ts';
import { readTable, readTabular, stratifiedSplit, tableToSamples } from '../../data/tabular.ts';
import { auditTable, idLikeColumns, type AuditTask, type TableAudit } from '../../data/table-audit.ts';
import { meanAbsoluteError, r2, rootMeanSquaredError } from '../../engine/metrics.ts';
import { scanFolder } from '../../data/folder.ts';
import { parsePreprocessConfig, preprocessFolder, splitBySubject } from '../../data/preprocess.ts';
import { ownIntensityScale } from '../../data/intensity-stats.ts';
import { trainLocal, type LocalTrainOptions, type LocalTrainResult } from '../../engine/local.ts';
import { adaptTargets, checkModelFitsSamples, defaultImageModel, imageTask, withClasses } from '../../engine/local-images.ts';
import { releaseSessions } from '../../engine/sessions.ts';
import { PROVIDER_FALLBACKS, type ExecutionProviderName, type ProviderFallback } from '../../engine/providers.ts';
import type { LossSpec, ModelSpec, OptimizerSpec } from '../../engine/spec.ts';
import { loadManifest } from '../../scenario/manifest.ts';
import { describeModelInput } from '../../data/model-input.ts';
import { selfContainedImage, selfContainedTabular, type ExportTask, type TargetScale } from '../../engine/export.ts';
import type { TabularSamples } from '../../data/tabular.ts';

interface TrainOpts {
  data: string; label?: string; model?: string; epochs?: string; seed: string; batch?: string; lr?: string; optimizer?: string;
  providers: string; providerFallback?: string; threads: string; export?: string; json?: boolean; testFraction?: string; preprocess?: string; scenario?: string;
  time?: string; event?: string; ignore?: string; task?: string;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train a model locally on a CSV file or a medical image folder (no network): held-out split, metrics, optional ONNX export')
    .requiredOption('--data <file|dir>', 'CSV file with a header row, or a medical folder (ROOT/<subject>/<modality>/...)')
    .option('--label <column>', 'the column to predict (class labels); required for CSV classification, overrides the preprocessing label for folders')
    .option('--task <kind>', 'CSV: classification (default) or regression (a numeric --label predicted as a number)')
    .option('--ignore <columns>', 'CSV: comma-separated columns to leave out of the features (besides identifier-like ones)')
    .option('--time <column>', 'CSV survival: the follow-up time column (with --event; trains a linear Cox model)')
    .option('--event <column>', 'CSV survival: the event column (1 = event observed, 0 = censored)')
    .option('--model <mlp|spec.json>', 'built-in "mlp" (CSV) or a JSON model spec file (folders: default U-Net with masks, else CNN)')
    .option('--preprocess <config.json>', 'folders: the preprocessing config (docs/data.md)')
    .option('--scenario <manifest.json>', 'folders: take data.preprocessing, model, loss, optimizer, batch size and holdout from a scenario manifest')
    .option('--epochs <n>', 'passes over the training part (default 40 for CSV, 30 for images)')
    .option('--seed <s>', 'seed for the split, preprocessing, initialisation and shuffling', '1')
    .option('--batch <b>', 'minibatch size (default 32 for CSV, 4 or the scenario\'s for images)')
    .option('--lr <x>', 'learning rate (default: the optimizer\'s)')
    .option('--optimizer <name>', 'sgd | adam | adamw (default adam, or the scenario\'s)')
    .option('--providers <list>', 'execution providers to try in order', 'cuda,webgpu,cpu')
    .option('--provider-fallback <cpu|error>', 'when a listed provider cannot run: fall back to cpu (logged) or stop with an error', 'cpu')
    .option('--threads <t>', 'CPU threads for onnxruntime', '2')
    .option('--test-fraction <f>', 'held-out fraction (CSV: stratified rows, default 0.2; folders: subjects, default 0.25 or the scenario\'s holdout)')
    .option('--export <file.onnx>', 'write the trained model as a portable ONNX file')
    .option('--json', 'print the result as one JSON document')
    .action(async (o: TrainOpts) => (isDirectory(o.data) ? runImages(o) : runCsv(o)));
}

async function runCsv(o: TrainOpts): Promise<void> {
  if (o.time !== undefined || o.event !== undefined) return runSurvivalCsv(o);
  const t0 = performance.now();
  if (!o.label) throw new CohortError('MISSING_ARGUMENT', 'CSV training needs --label COLUMN', 'name the column to predict, e.g. --label diagnosis');
  if (o.preprocess || o.scenario) {
    throw new CohortError('BAD_ARGUMENT', `--preprocess/--scenario apply to image folders, and ${o.data} is a file`, 'pass a medical folder with --data, or drop them');
  }
  const audit = auditCsv(o, o.label);
  if (audit.task === 'regression') return runRegressionCsv(o, audit.table, t0);
  const { set, classes, classNames } = audit.table.samples;
  const model = modelSpec(o.model ?? 'mlp', classes);
  const epochs = int(o.epochs ?? '40', '--epochs');
  const r = await withBar(epochs, o.json, (onEpoch) => trainLocal(set, {
    model, optimizer: optimizerFrom(o) ?? { type: 'adam' }, epochs, batchSize: int(o.batch ?? '32', '--batch'), seed: int(o.seed, '--seed'),
    split: audit.table.split, ...providerOptions(o), threads: int(o.threads, '--threads'),
    fusedSteps: 8, standardize: ['features'], onEpoch,
  }));
  if (o.export) writeFileSync(o.export, rawTableModel(r, audit.table.samples, { kind: 'classification', label: o.label }));
  const seconds = (performance.now() - t0) / 1000;
  const test = { accuracy: r.metrics.accuracy, auc: r.metrics.auc, balancedAccuracy: r.metrics.balancedAccuracy, loss: r.metrics.loss };
  const result = { model: parsedType(model), provider: r.trainer.provider, graphs: r.trainer.graphReports, epochs, test, seconds: Number(seconds.toFixed(2)),
    train: { samples: r.train.size, loss: r.trainLoss }, testSamples: r.test.size, classes: classNames, ...auditJson(audit.table),
    ...(o.export ? { exported: o.export } : {}) };
  await release(r);
  if (o.json) { process.stdout.write(JSON.stringify(result) + '\n'); return; }
  process.stdout.write(`${result.model} on ${r.trainer.provider}: ${epochs} epochs, ${r.train.size} training / ${r.test.size} held-out samples\n`
    + `held-out accuracy ${pct(test.accuracy)}, balanced accuracy ${pct(test.balancedAccuracy)}, AUC ${test.auc?.toFixed(4) ?? 'n/a'}`
    + ` (${seconds.toFixed(1)} s)${o.export ? `\nwrote ${o.export}` : ''}\n`);
}

/** The CSV read through the table audit; its notes (dropped, ignored, imputed, features, warnings) go to stderr in human mode. */
function auditCsv(o: TrainOpts, label: string): { task: AuditTask; table: TableAudit } {
  const task = taskOf(o.task);
  if (!existsSync(o.data)) throw new CohortError('DATA_NOT_FOUND', `no such file: ${o.data}`, 'pass the path of a CSV file with --data');
  const table = auditTable(readTable(o.data), { label, task, ignore: columnList(o.ignore), seed: int(o.seed, '--seed'),
    testFraction: num(o.testFraction ?? '0.2', '--test-fraction') });
  if (table.samples.set.size === 0) throw new CohortError('EMPTY_DATASET', `${o.data} has no data rows with a label`, 'add data rows to the CSV');
  if (!o.json) for (const n of table.notes) process.stderr.write(`${n}\n`);
  return { task, table };
}

function taskOf(v: string | undefined): AuditTask {
  if (v === undefined || v === 'classification') return 'classification';
  if (v === 'regression') return 'regression';
  throw new CohortError('BAD_ARGUMENT', `unknown --task '${v}'`, v === 'survival' ? 'survival tables take --time COLUMN --event COLUMN instead of --label' : 'use classification or regression');
}

function columnList(v: string | undefined): string[] {
  return (v ?? '').split(',').map((c) => c.trim()).filter(Boolean);
}

/** What --json says about the table: the columns used, and why the others were not. */
function auditJson(a: TableAudit): Record<string, unknown> {
  return { features: a.features, inputs: a.samples.featureNames.length, identifiers: a.identifiers.map((c) => c.name), ignored: a.ignored,
    imputed: a.imputed, warnings: a.warnings.map((w) => ({ column: w.column, statistic: w.statistic, value: Number(w.value.toFixed(4)), message: w.message })) };
}

/**
 * A numeric label predicted as a number: MLP with one output and MSE loss on the target standardised with the training part's
 * mean and standard deviation (so the default learning rate suits any unit); metrics are computed back in the target's units.
 */
async function runRegressionCsv(o: TrainOpts, a: TableAudit, t0: number): Promise<void> {
  const target = a.samples.set.targets['label']!.data;
  const scale = meanStd(a.split.train.map((i) => target[i]!));
  const set = { ...a.samples.set, targets: { label: { shape: [], data: target.map((v) => (v - scale.mean) / scale.std) } } };
  const model = o.model ? modelSpec(o.model, 1) : { type: 'mlp' as const, hidden: [32], classes: 1 };
  const epochs = int(o.epochs ?? '40', '--epochs');
  const r = await withBar(epochs, o.json, (onEpoch) => trainLocal(set, {
    model, loss: { type: 'mse' }, optimizer: optimizerFrom(o) ?? { type: 'adam' }, epochs, batchSize: int(o.batch ?? '32', '--batch'),
    seed: int(o.seed, '--seed'), split: a.split, ...providerOptions(o), threads: int(o.threads, '--threads'),
    fusedSteps: 8, standardize: ['features'], onEpoch,
  }));
  // the export multiplies the z-scored prediction back in-graph (output `value`, metadata cohort.target)
  if (o.export) writeFileSync(o.export, rawTableModel(r, a.samples, { kind: 'regression', label: o.label }, scale));
  const pred = (await r.trainer.predict(r.test)).prob.map((v) => v * scale.std + scale.mean);
  const truth = Float32Array.from(a.split.test, (i) => target[i]!);
  const seconds = (performance.now() - t0) / 1000;
  const test = { r2: r2(pred, truth), mae: meanAbsoluteError(pred, truth), rmse: rootMeanSquaredError(pred, truth),
    mae_of_training_mean: meanAbsoluteError(new Float32Array(truth.length).fill(scale.mean), truth) };
  const result = { model: parsedType(model), task: 'regression', target: o.label, provider: r.trainer.provider, graphs: r.trainer.graphReports, epochs, test,
    seconds: Number(seconds.toFixed(2)), train: { samples: r.train.size, loss: r.trainLoss, target_mean: scale.mean, target_std: scale.std },
    testSamples: r.test.size, ...auditJson(a), ...(o.export ? { exported: o.export } : {}) };
  await release(r);
  if (o.json) { process.stdout.write(JSON.stringify(result) + '\n'); return; }
  const f = (v: number): string => (Number.isFinite(v) ? v.toPrecision(4) : 'n/a');
  process.stdout.write(`${result.model} regression of ${o.label} on ${r.trainer.provider}: ${epochs} epochs, ${r.train.size} training / ${r.test.size} held-out samples\n`
    + `held-out R2 ${test.r2.toFixed(4)}, MAE ${f(test.mae)}, RMSE ${f(test.rmse)} (units of ${o.label}; predicting the training mean: MAE ${f(test.mae_of_training_mean)})`
    + ` (${seconds.toFixed(1)} s)\n`);
}

function meanStd(v: readonly number[]): { mean: number; std: number } {
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  const variance = v.reduce((s, x) => s + (x - mean) ** 2, 0) / Math.max(1, v.length - 1);
  return { mean, std: variance > 1e-12 ? Math.sqrt(variance) : 1 };
}

/** A survival table: a linear Cox model (or --model with one output), split stratified by the event, held-out C-index. */
async function runSurvivalCsv(o: TrainOpts): Promise<void> {
  const t0 = performance.now();
  if (o.label) throw new CohortError('BAD_ARGUMENT', '--label and --time/--event exclude each other', 'classification: --label COL; survival: --time COL --event COL');
  if (!o.time || !o.event) throw new CohortError('MISSING_ARGUMENT', 'survival training needs both --time and --event', 'e.g. --time time_days --event event');
  if (o.preprocess || o.scenario) {
    throw new CohortError('BAD_ARGUMENT', `--preprocess/--scenario apply to image folders, and ${o.data} is a file`, 'pass a medical folder with --data, or drop them');
  }
  if (!existsSync(o.data)) throw new CohortError('DATA_NOT_FOUND', `no such file: ${o.data}`, 'pass the path of a CSV file with --data');
  const table = readTable(o.data);
  const ignore = columnList(o.ignore);
  const ids = idLikeColumns(table, new Set([o.time, o.event, ...ignore])).map((c) => c.name);
  const t = tableToSamples(table, { survival: { time: o.time, event: o.event }, ignore: [...ignore, ...ids] });
  const identifiers = [...new Set([...ids, ...t.identifiers])];
  if (!o.json) {
    if (identifiers.length) process.stderr.write(`note: dropped identifier-like column(s): ${identifiers.join(', ')}\n`);
    if (ignore.length) process.stderr.write(`note: ignored column(s) (--ignore): ${ignore.join(', ')}\n`);
    process.stderr.write(`features (${t.encoding.columns.length} column(s)): ${t.encoding.columns.map((c) => c.name).join(', ')}\n`);
  }
  const seed = int(o.seed, '--seed');
  const events = t.set.targets.event!.data;
  const split = stratifiedSplit(events, num(o.testFraction ?? '0.2', '--test-fraction'), seed);
  const model = o.model ? modelSpec(o.model, 1) : { type: 'mlp' as const, hidden: [], classes: 1 };
  const epochs = int(o.epochs ?? '40', '--epochs');
  const r = await withBar(epochs, o.json, (onEpoch) => trainLocal(t.set, {
    model, loss: { type: 'cox' }, optimizer: optimizerFrom(o) ?? { type: 'adam', lr: 0.01 }, epochs, batchSize: int(o.batch ?? '32', '--batch'), seed, split,
    ...providerOptions(o), threads: int(o.threads, '--threads'), fusedSteps: 8, standardize: ['features'], onEpoch,
  }));
  if (o.export) writeFileSync(o.export, rawTableModel(r, t, { kind: 'survival', time: o.time, event: o.event }));
  const seconds = (performance.now() - t0) / 1000;
  const count = (idx: number[]): number => idx.reduce((a, i) => a + events[i]!, 0);
  const test = { c_index: r.metrics.c_index, loss: r.metrics.loss };
  const result = { model: parsedType(model), task: 'survival', provider: r.trainer.provider, graphs: r.trainer.graphReports, epochs, test, seconds: Number(seconds.toFixed(2)),
    train: { samples: r.train.size, events: count(split.train), loss: r.trainLoss }, testSamples: r.test.size, testEvents: count(split.test),
    features: t.encoding.columns.map((c) => c.name), inputs: t.featureNames.length, identifiers, ignored: ignore, dropped: [...new Set([...identifiers, ...t.dropped])], ...(o.export ? { exported: o.export } : {}) };
  await release(r);
  if (o.json) { process.stdout.write(JSON.stringify(result) + '\n'); return; }
  process.stdout.write(`${o.model ? result.model : 'linear Cox model'} on ${r.trainer.provider}: ${epochs} epochs, ${r.train.size} training / ${r.test.size} held-out samples`
    + ` (${result.train.events} / ${result.testEvents} events)\nheld-out C-index ${test.c_index?.toFixed(4) ?? 'n/a (no comparable pairs)'}`
    + ` (${seconds.toFixed(1)} s)${o.export ? `\nwrote ${o.export} (output: risk, the log relative hazard)` : ''}\n`);
}

/** The self-contained export of a table model (engine/export.ts): raw columns in, the standardiser it was trained with in-graph. */
function rawTableModel(r: LocalTrainResult, t: Pick<TabularSamples, 'featureNames' | 'classNames' | 'encoding'>, task: ExportTask, target?: TargetScale): Uint8Array {
  return selfContainedTabular(r.trainer.exportOnnx(), { input: describeModelInput(t, r.standardisers['features']!), task, ...(target ? { target } : {}) });
}

/** The image export (engine/export.ts): each channel's intensity normalisation in-graph where exact, labels or a mask out. */
function imageModel(r: LocalTrainResult, config: Record<string, unknown>, model: ModelSpec, classes: readonly string[], agreedIntensity?: Record<string, { mean: number; std: number }>): Uint8Array {
  const cfg = parsePreprocessConfig(config);
  const task = imageTask(model) === 'classification' ? { kind: 'classification' as const, ...(cfg.label ? { label: cfg.label } : {}) } : { kind: 'segmentation' as const };
  return selfContainedImage(r.trainer.exportOnnx(), { intensity: cfg.modalities.map((m) => cfg.intensity[m] ?? { method: 'zscore' }), modalities: cfg.modalities,
    task, classes: task.kind === 'classification' ? classes : [], preprocessing: config, ...(agreedIntensity ? { agreedIntensity } : {}) });
}

/** What a folder's training takes from --preprocess or a scenario manifest (CLI flags override the manifest's). */
interface ImageSetup { config: Record<string, unknown>; model?: ModelSpec; loss?: LossSpec; optimizer?: OptimizerSpec; batchSize?: number; holdout?: number }

function imageSetup(o: TrainOpts): ImageSetup {
  const m = o.scenario ? loadManifest(o.scenario) : undefined;
  const fromFile = o.preprocess ? readJson(o.preprocess, 'preprocessing config') : undefined;
  const config = fromFile ?? (m && Object.keys(m.data.preprocessing).length ? m.data.preprocessing : undefined);
  if (!config || typeof config !== 'object' || Array.isArray(config)) {
    throw new CohortError('MISSING_PREPROCESSING', m ? `${o.scenario} has no data.preprocessing for the images in ${o.data}`
      : `${o.data} is an image folder, and images need a preprocessing config (modalities, size, intensity, ...)`,
    'pass --preprocess CONFIG.json (see docs/data.md) or --scenario scenarios/petct-segmentation.json');
  }
  const withLabel = o.label ? { ...config, label: o.label } : config;
  return { config: withLabel as Record<string, unknown>, model: m?.model as ModelSpec | undefined, loss: m?.loss as LossSpec | undefined,
    optimizer: m?.optimizer as OptimizerSpec | undefined, batchSize: m?.training.batchSize, holdout: m?.data.holdout };
}

async function runImages(o: TrainOpts): Promise<void> {
  const t0 = performance.now();
  const { opts, set, sampleCase, config, classes, intensity } = prepareImages(o);
  const r = await withBar(opts.epochs, o.json, (onEpoch) => trainLocal(set, { ...opts, onEpoch }));
  if (o.export) writeFileSync(o.export, imageModel(r, config, opts.model, classes, intensity));
  const seconds = (performance.now() - t0) / 1000;
  const subjectsIn = (idx: number[]): number => new Set(idx.map((i) => sampleCase[i])).size;
  const split = opts.split ?? { train: [], test: [] };
  const test = Object.fromEntries(Object.entries(r.metrics).filter(([, v]) => v !== undefined && Number.isFinite(v)));
  const result = { model: parsedType(opts.model), provider: r.trainer.provider, graphs: r.trainer.graphReports, epochs: opts.epochs, test, seconds: Number(seconds.toFixed(2)),
    task: imageTask(opts.model), train: { samples: r.train.size, subjects: subjectsIn(split.train), loss: r.trainLoss },
    testSamples: r.test.size, testSubjects: subjectsIn(split.test),
    inputs: Object.fromEntries(Object.entries(set.inputs).map(([k, v]) => [k, [...v.shape]])), ...(o.export ? { exported: o.export } : {}) };
  await release(r);
  if (o.json) { process.stdout.write(JSON.stringify(result) + '\n'); return; }
  process.stdout.write(`${result.model} on ${r.trainer.provider}: ${opts.epochs} epochs, ${r.train.size} training / ${r.test.size} held-out samples`
    + ` (${result.train.subjects} / ${result.testSubjects} subjects), input ${JSON.stringify(result.inputs)}\n`
    + `held-out ${imageMetricLine(r.metrics)} (${seconds.toFixed(1)} s)${o.export ? `\nwrote ${o.export}` : ''}\n`);
}

/** Folder -> preprocessed set, model checked against its sample shape, split by subject, training options. */
function prepareImages(o: TrainOpts): { opts: LocalTrainOptions; set: SampleSet; sampleCase: Int32Array; config: Record<string, unknown>; classes: string[];
  intensity?: Record<string, { mean: number; std: number }> } {
  checkMedicalFolder(o.data);
  const setup = imageSetup(o);
  const seed = int(o.seed, '--seed');
  const pre = preprocessFolder(o.data, setup.config, seed);
  const model = withClasses(o.model ? modelSpec(o.model) : setup.model ?? defaultImageModel(pre.set), pre.set);
  checkModelFitsSamples(model, pre.set);
  const split = splitBySubject(pre, o.testFraction ? num(o.testFraction, '--test-fraction') : setup.holdout ?? 0.25, seed);
  const opts: LocalTrainOptions = { model, loss: setup.loss, optimizer: optimizerFrom(o) ?? setup.optimizer ?? { type: 'adam', lr: 0.003 },
    epochs: int(o.epochs ?? '30', '--epochs'), batchSize: o.batch ? int(o.batch, '--batch') : setup.batchSize ?? 4, seed, split,
    ...providerOptions(o), threads: int(o.threads, '--threads') };
  // a consortium intensity z-score with one site: this site's training part gives the mean and sd (data/intensity-stats.ts)
  const own = ownIntensityScale(pre.set, split.train, parsePreprocessConfig(setup.config));
  return { opts, set: adaptTargets(own?.set ?? pre.set, model), sampleCase: pre.sampleCase, config: setup.config, classes: Object.keys(pre.stats.labelBalance ?? {}),
    ...(own ? { intensity: own.agreed } : {}) };
}

/** A folder that is no medical folder fails here, before the preprocessing config is even looked at. */
function checkMedicalFolder(dir: string): void {
  try { scanFolder(dir); } catch (e) {
    if (!(e instanceof CohortError) || e.code !== 'EMPTY_DATASET') throw e;
    throw new CohortError('NOT_A_MEDICAL_FOLDER', `${dir} is not a medical folder: ${e.message.replace(`${dir} `, 'it ')}`,
      'lay images out as ROOT/<subject>/<modality>/<file>.nii.gz (or DICOM files), masks under ROOT/<subject>/SEG/, a clinical CSV in ROOT; or pass a CSV file', { cause: e });
  }
}

function imageMetricLine(m: LocalTrainResult['metrics']): string {
  const parts: string[] = [];
  if (m.dice !== undefined) parts.push(`Dice ${m.dice.toFixed(4)}`, `IoU ${m.iou?.toFixed(4) ?? 'n/a'}`);
  if (m.accuracy !== undefined) parts.push(`accuracy ${pct(m.accuracy)}`, `AUC ${m.auc?.toFixed(4) ?? 'n/a'}`);
  for (const [k, v] of Object.entries(m)) if (k.startsWith('auc_') && v !== undefined) parts.push(`${k} ${v.toFixed(4)}`);
  return parts.length ? parts.join(', ') : `loss ${m.loss.toFixed(4)}`;
}

async function withBar(epochs: number, json: boolean | undefined,
  go: (onEpoch: (e: number, loss: number) => void) => Promise<LocalTrainResult>): Promise<LocalTrainResult> {
  const bar = progressBar({ total: epochs, label: 'training', enabled: !json, fields: 'loss {loss}' });
  try { return await go((e, loss) => bar.update(e, { loss: loss.toFixed(4) })); } finally { bar.stop(); }
}

async function release(r: LocalTrainResult): Promise<void> {
  await r.trainer.dispose();
  await releaseSessions();
}

function optimizerFrom(o: TrainOpts): OptimizerSpec | undefined {
  if (!o.optimizer && !o.lr) return undefined;
  return { type: o.optimizer ?? 'adam', ...(o.lr ? { lr: num(o.lr, '--lr') } : {}) } as OptimizerSpec;
}

function parsedType(m: ModelSpec): string { return String((m as { type?: unknown }).type); }

const pct = (v: number | undefined): string => (v === undefined ? 'n/a' : `${(100 * v).toFixed(1)}%`);

function isDirectory(p: string): boolean {
  try { return statSync(p).isDirectory(); } catch { return false; }
}

function readJson(file: string, what: string): unknown {
  if (!existsSync(file)) throw new CohortError('FILE_NOT_FOUND', `no ${what} file ${file}`, 'check the path');
  try { return JSON.parse(readFileSync(file, 'utf8')); } catch (e) {
    throw new CohortError('BAD_JSON', `${file} is not valid JSON: ${(e as Error).message}`, 'fix the JSON syntax');
  }
}

function modelSpec(arg: string, classes?: number): ModelSpec {
  if (arg === 'mlp') return { type: 'mlp', hidden: [32], classes: classes ?? 2 };
  if (!existsSync(arg)) throw new CohortError('MODEL_SPEC_NOT_FOUND', `no model spec file ${arg}`, 'pass --model mlp or the path of a JSON model spec');
  let raw: unknown;
  try { raw = JSON.parse(readFileSync(arg, 'utf8')); } catch (e) {
    throw new CohortError('BAD_MODEL_SPEC', `${arg} is not valid JSON: ${(e as Error).message}`, 'fix the JSON syntax');
  }
  // classes follows from the data when the spec leaves it out
  const type = (raw as { type?: unknown } | null)?.type;
  if (classes !== undefined && raw && typeof raw === 'object' && !('classes' in raw) && ['mlp', 'cnn2d', 'cnn3d', 'multimodal'].includes(String(type))) raw = { ...raw, classes };
  return raw as ModelSpec;
}

/** Provider list, fallback policy, and node-placement measurement when a GPU provider is listed (docs/engine.md, GPU). */
function providerOptions(o: TrainOpts): { providers: ExecutionProviderName[]; providerFallback: ProviderFallback; measurePlacement: boolean } {
  const providers = providerList(o.providers);
  const fallback = o.providerFallback ?? 'cpu';
  if (!PROVIDER_FALLBACKS.includes(fallback as ProviderFallback)) {
    throw new CohortError('BAD_ARGUMENT', `--provider-fallback must be one of ${PROVIDER_FALLBACKS.join(', ')}, got '${fallback}'`,
      'cpu: run on the CPU when a listed provider cannot (logged); error: stop instead');
  }
  return { providers, providerFallback: fallback as ProviderFallback, measurePlacement: providers.some((p) => p !== 'cpu') };
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
