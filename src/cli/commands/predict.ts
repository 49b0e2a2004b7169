/**
 * `cohort predict --model model.onnx --data FILE.csv|DIR [--out predictions.csv] [--json]` (issue 13.3)
 * Scores a table with a model Cohort exported (cohort train --export, cohort scenario export): reads the model's metadata
 * (src/engine/export.ts), checks the table's columns against it (missing -> error naming them, exit 2; extra -> ignored with
 * a note), runs the model in plain onnxruntime-node on the RAW columns (the standardiser, imputation and one-hot encoding are
 * in the graph) and writes one row per subject: the subject id (an id column when the table has one, else the row number),
 * the class probabilities and the label. With the label column present it also reports accuracy and AUC (classification) or
 * the C-index (survival, with time and event columns), or R2, MAE and RMSE in the target's units (regression: output `value`). --json prints {n, model, predictions, ignored, accuracy?, auc?, ...}.
 * A folder (image model): the data layer's preprocessing from the model's metadata (resampling, size, crop; no augmentation, one
 * crop per subject) WITHOUT the intensity steps the graph applies; the volume shape is checked against the metadata; one row per
 * subject: class probabilities and label, or a segmentation's foreground voxels (and Dice against the masks when the folder has them).
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import * as ort from 'onnxruntime-node';
import { CohortError } from '../../util/errors.ts';
import { isIdentifierColumn, readTable, type Column, type Table } from '../../data/tabular.ts';
import { readCohortMetadata, type CohortModelMetadata } from '../../engine/export.ts';
import { accuracy, concordanceIndex, meanAbsoluteError, meanDice, r2, rocAuc, rootMeanSquaredError } from '../../engine/metrics.ts';
import { preprocessFolder } from '../../data/preprocess.ts';

interface PredictOpts { model: string; data: string; out: string; json?: boolean }

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('score a CSV table with a model Cohort exported (raw columns in; probabilities and labels out, one row per subject)')
    .requiredOption('--model <model.onnx>', 'a model written by cohort train --export or cohort scenario export')
    .requiredOption('--data <file.csv|dir>', 'a CSV/TSV table with the columns the model names (extra columns are ignored)')
    .option('--out <predictions.csv>', 'where to write the predictions', 'predictions.csv')
    .option('--json', 'print a JSON summary on stdout')
    .action(async (o: PredictOpts) => runPredict(o));
}

export interface Prediction {
  readonly subjects: readonly string[];
  /** [n, width]: class probabilities (softmax), the one sigmoid probability, or a Cox model's risk. */
  readonly scores: Float32Array;
  readonly width: number;
  /** Class index per row (classification only). */
  readonly labels?: Int32Array;
  readonly ignored: readonly string[];
}

async function runPredict(o: PredictOpts): Promise<void> {
  if (!existsSync(o.model)) throw new CohortError('MODEL_NOT_FOUND', `no such model file: ${o.model}`, 'pass the model.onnx written by cohort train --export or cohort scenario export');
  const bytes = readFileSync(o.model);
  const meta = readCohortMetadata(bytes, o.model);
  if (statSync(o.data, { throwIfNoEntry: false })?.isDirectory()) return runPredictFolder(o, bytes, meta);
  if (meta.image) {
    throw new CohortError('IMAGE_MODEL', `${o.model} is an image model (input ${meta.image.input} [${meta.image.shape.join(', ')}]); ${o.data} is a table`,
      'pass a medical folder (ROOT/<subject>/<modality>/...) with --data');
  }
  const table = readTable(o.data);
  const p = await predictTable(bytes, meta, table);
  writeFileSync(o.out, predictionsCsv(p, meta));
  const summary = { n: p.subjects.length, model: modelSummary(meta), predictions: o.out, ignored: p.ignored, ...scoreAgainstTruth(p, meta, table) };
  if (o.json) { process.stdout.write(JSON.stringify(summary) + '\n'); return; }
  if (p.ignored.length) process.stderr.write(`note: ignored column(s) the model does not read: ${p.ignored.join(', ')}\n`);
  const scores = Object.entries(summary).filter(([k]) => ['accuracy', 'auc', 'c_index', 'r2', 'mae', 'rmse'].includes(k)).map(([k, v]) => `${k} ${(v as number).toFixed(4)}`);
  process.stdout.write(`wrote ${p.subjects.length} predictions to ${o.out}`
    + `${scores.length ? ` (${scores.join(', ')} on ${String((summary as { labelled?: number }).labelled)} labelled rows)` : ''}\n`);
}

/** The metadata a person wants to see, without the per-column encoding. */
function modelSummary(m: CohortModelMetadata): Record<string, unknown> {
  const { columns: _columns, featureNames: _names, ...rest } = m;
  return { ...rest, features: m.featureNames.length };
}

/** Run the model on a parsed table: the columns checked against the metadata, raw values fed as the graph expects them. */
export async function predictTable(bytes: Uint8Array, meta: CohortModelMetadata, table: Table): Promise<Prediction> {
  const byName = new Map(table.columns.map((c) => [c.name, c]));
  const wanted = [...meta.inputs.features, ...meta.inputs.categories];
  const missing = wanted.filter((n) => !byName.has(n));
  if (missing.length) {
    throw new CohortError('MISSING_COLUMN', `${table.file} lacks ${missing.length} column(s) the model reads: ${missing.join(', ')}`,
      `the model reads ${wanted.length} columns: ${wanted.join(', ')}`);
  }
  const known = new Set([...wanted, meta.task.label, meta.task.time, meta.task.event].filter((n): n is string => n !== undefined));
  const ignored = table.columns.map((c) => c.name).filter((n) => !known.has(n));
  const n = table.rows;
  const features = new Float32Array(n * meta.inputs.features.length);
  meta.inputs.features.forEach((name, j) => {
    const col = byName.get(name) as Column;
    if (col.kind !== 'numeric') {
      const bad = col.values.find((v) => typeof v === 'string');
      throw new CohortError('BAD_COLUMN', `${table.file}: column '${name}' holds text ('${String(bad)}'), the model reads it as a number`, 'fix the cell, or leave it empty when the value is missing');
    }
    col.values.forEach((v, i) => { features[i * meta.inputs.features.length + j] = v === null ? Number.NaN : (v as number); });
  });
  const feeds: Record<string, ort.Tensor> = { features: new ort.Tensor('float32', features, [n, meta.inputs.features.length]) };
  if (meta.inputs.categories.length) {
    const cells = Array.from({ length: n }, (_, i) => meta.inputs.categories.map((name) => {
      const v = (byName.get(name) as Column).values[i];
      return v === null ? '' : String(v);
    })).flat();
    feeds['categories'] = new ort.Tensor('string', cells, [n, meta.inputs.categories.length]);
  }
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run(feeds);
    // regression: `value` is the prediction in the target's units (prob is its z-score)
    const scoreOut = out['value'] ?? out['prob'] ?? out['risk'];
    if (!scoreOut) throw new CohortError('BAD_MODEL', 'the model has neither a prob nor a risk output', 're-export it with cohort');
    const labels = out['label'] ? Int32Array.from(out['label'].data as BigInt64Array, Number) : undefined;
    return { subjects: subjectIds(table), scores: scoreOut.data as Float32Array, width: scoreOut.dims[1] ?? 1, labels, ignored };
  } finally {
    await session.release();
  }
}

/** An identifier column's values when the table has one (id, ..._id), else row numbers from 1. */
function subjectIds(table: Table): string[] {
  const id = table.columns.find((c) => isIdentifierColumn(c.name));
  return Array.from({ length: table.rows }, (_, i) => (id && id.values[i] !== null ? String(id.values[i]) : String(i + 1)));
}

const csvCell = (s: string): string => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/** subject, one probability column per class (prob_<class>), label; or subject, risk. */
export function predictionsCsv(p: Prediction, meta: CohortModelMetadata): string {
  const classes = meta.classes;
  const probNames = meta.task.kind === 'regression' ? [`predicted_${meta.task.label ?? 'value'}`]
    : p.width === classes.length ? classes.map((c) => `prob_${c}`) : p.labels ? [`prob_${classes[classes.length - 1]}`] : ['risk'];
  const lines = [['subject', ...probNames, ...(p.labels ? ['label'] : [])].map(csvCell).join(',')];
  p.subjects.forEach((s, i) => {
    const probs = Array.from(p.scores.subarray(i * p.width, (i + 1) * p.width), (v) => String(v));
    lines.push([s, ...probs, ...(p.labels ? [classes[p.labels[i]] ?? ''] : [])].map(csvCell).join(','));
  });
  return lines.join('\n') + '\n';
}

/** Accuracy and AUC (binary) against the label column, or the C-index against time and event, when the table has them. */
export function scoreAgainstTruth(p: Prediction, meta: CohortModelMetadata, table: Table): Record<string, number> {
  const col = (name: string | undefined): Column | undefined => table.columns.find((c) => c.name === name);
  const label = col(meta.task.label);
  if (meta.task.kind === 'regression') {
    const rows = label ? [...Array(table.rows).keys()].filter((i) => typeof label.values[i] === 'number') : [];
    if (!rows.length) return {};
    const pred = Float32Array.from(rows, (i) => p.scores[i * p.width]), truth = Float32Array.from(rows, (i) => label!.values[i] as number);
    return { labelled: rows.length, r2: r2(pred, truth), mae: meanAbsoluteError(pred, truth), rmse: rootMeanSquaredError(pred, truth) };
  }
  if (label && p.labels) {
    const index = new Map(meta.classes.map((c, k) => [c, k]));
    const rows = [...Array(table.rows).keys()].filter((i) => label.values[i] !== null && index.has(String(label.values[i])));
    if (!rows.length) return {};
    const truth = Float32Array.from(rows, (i) => index.get(String(label.values[i])) as number);
    const pred = Float32Array.from(rows, (i) => (p.labels as Int32Array)[i]);
    const r: Record<string, number> = { labelled: rows.length, accuracy: accuracy(pred, truth) };
    if (meta.classes.length === 2) r.auc = rocAuc(Float32Array.from(rows, (i) => p.scores[i * p.width + p.width - 1]), truth);
    return r;
  }
  const time = col(meta.task.time), event = col(meta.task.event);
  if (time && event && !p.labels) {
    const ev = (v: unknown): number | undefined => ({ '1': 1, '0': 0, true: 1, false: 0, yes: 1, no: 0, dead: 1, alive: 0 } as Record<string, number>)[String(v).trim().toLowerCase()];
    const rows = [...Array(table.rows).keys()].filter((i) => typeof time.values[i] === 'number' && ev(event.values[i]) !== undefined);
    if (!rows.length) return {};
    return { labelled: rows.length, c_index: concordanceIndex(rows.map((i) => p.scores[i * p.width]), rows.map((i) => time.values[i] as number),
      rows.map((i) => ev(event.values[i]) as number)) };
  }
  return {};
}

/** An image model on a medical folder: preprocessed as in training, minus the intensity steps the graph does itself. */
async function runPredictFolder(o: PredictOpts, bytes: Uint8Array, meta: CohortModelMetadata): Promise<void> {
  const image = meta.image;
  if (!image) {
    throw new CohortError('TABLE_MODEL', `${o.model} reads table columns (${meta.inputs.features.length + meta.inputs.categories.length}); ${o.data} is a folder`, 'pass a CSV/TSV table with --data');
  }
  if (!image.preprocessing || typeof image.preprocessing !== 'object') {
    throw new CohortError('BAD_MODEL_METADATA', `${o.model} does not say how its images were preprocessed`, 're-export it with cohort train --export');
  }
  const intensity = Object.fromEntries(image.intensity.map((i) => [i.modality, i.inGraph ? { method: 'none' } : i.config]));
  const pre = preprocessFolder(o.data, { ...(image.preprocessing as Record<string, unknown>), intensity, augment: undefined, patches: undefined }, 1);
  const vol = pre.set.inputs['image'];
  if (!vol || vol.shape.join() !== image.shape.join()) {
    throw new CohortError('SHAPE_MISMATCH', `${o.data} gives volumes [${vol?.shape.join(', ') ?? '?'}], the model reads [${image.shape.join(', ')}]`,
      `the folder needs the modalities ${image.modalities.join(', ')}`);
  }
  const session = await ort.InferenceSession.create(bytes);
  let out: ort.InferenceSession.OnnxValueMapType;
  try {
    const feeds = Object.fromEntries(session.inputNames.map((n) => {
      const t = pre.set.inputs[n];
      if (!t) throw new CohortError('MISSING_INPUT', `the model reads '${n}', which ${o.data} does not provide`, 'add the clinical CSV the model was trained with');
      return [n, new ort.Tensor('float32', t.data, [pre.set.size, ...t.shape])];
    }));
    out = await session.run(feeds);
  } finally {
    await session.release();
  }
  const subjects = Array.from(pre.sampleCase, (c) => pre.subjects[c]);
  const prob = out['prob'].data as Float32Array;
  let csv: string;
  let scores: Record<string, number> = {};
  if (out['mask']) {
    const mask = out['mask'].data as BigInt64Array;
    const per = mask.length / pre.set.size;
    const fg = subjects.map((_, i) => mask.subarray(i * per, (i + 1) * per).reduce((a, m) => a + Number(m > 0n), 0));
    csv = ['subject,foreground_voxels,foreground_fraction', ...subjects.map((s, i) => `${csvCell(s)},${fg[i]},${fg[i] / per}`)].join('\n') + '\n';
    const truth = pre.set.targets['mask'];
    if (truth && out['prob'].dims[1] === 1) scores = { labelled: pre.set.size, dice: meanDice(prob, truth.data, per) };
  } else {
    const width = out['prob'].dims[1] ?? 1;
    const labels = Int32Array.from(out['label'].data as BigInt64Array, Number);
    const p: Prediction = { subjects, scores: prob, width, labels, ignored: [] };
    csv = predictionsCsv(p, meta);
    const truth = pre.set.targets['label'];
    if (truth) {
      const rows = [...truth.data.keys()].filter((i) => Number.isFinite(truth.data[i]));
      const t = Float32Array.from(rows, (i) => truth.data[i]);
      scores = { labelled: rows.length, accuracy: accuracy(Float32Array.from(rows, (i) => labels[i]), t) };
      if (meta.classes.length === 2) scores.auc = rocAuc(Float32Array.from(rows, (i) => prob[i * width + width - 1]), t);
    }
  }
  writeFileSync(o.out, csv);
  const summary = { n: pre.set.size, model: modelSummary(meta), predictions: o.out, ...scores };
  if (o.json) { process.stdout.write(JSON.stringify(summary) + '\n'); return; }
  const shown = Object.entries(scores).filter(([k]) => k !== 'labelled').map(([k, v]) => `${k} ${v.toFixed(4)}`);
  process.stdout.write(`wrote ${pre.set.size} predictions to ${o.out}${shown.length ? ` (${shown.join(', ')})` : ''}\n`);
}
