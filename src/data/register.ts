/**
 * Turning files into registry records and describing files, for `cohort data add` and `cohort data inspect`.
 *   describeDataset(path, { id, label, masks, tags }) -> DatasetRecord (kind from the path: CSV/TSV table, NIfTI image,
 *                                                        DICOM series directory, or medical folder)
 *   inspectFile(path) -> { format, dims, spacing, dtype, orientation, range } or, for a table, { rows, columns }
 *   contentHash(paths) -> sha256 over relative names and bytes (detects changed data under a registered id)
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { CohortError } from '../util/errors.ts';
import type { DatasetRecord } from '../store/datasets.ts';
import { loadSubjectMask, scanFolder } from './folder.ts';
import { isNiftiPath, readNifti } from './nifti.ts';
import { isDicomDir, readDicomSeries } from './dicom.ts';
import { readPngVolume } from './png.ts';
import { encodeLabel, readTabular, readTable } from './tabular.ts';
import { orientationCode, valueRange, type Volume } from './volume.ts';

export interface DescribeOptions {
  readonly id?: string;
  readonly label?: string;
  readonly masks?: readonly string[];
  readonly tags?: readonly string[];
  readonly ignore?: readonly string[];
}

function filesUnder(p: string): string[] {
  if (!statSync(p).isDirectory()) return [p];
  return readdirSync(p).sort().flatMap((e) => filesUnder(join(p, e)));
}

export function contentHash(paths: readonly string[]): string {
  const h = createHash('sha256');
  for (const p of paths) {
    const root = statSync(p).isDirectory() ? p : resolve(p, '..');
    for (const f of filesUnder(p)) { h.update(relative(root, f)); h.update('\0'); h.update(readFileSync(f)); }
  }
  return h.digest('hex');
}

function balance(labels: Float32Array, names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  for (const l of labels) if (!Number.isNaN(l)) out[names[l]]++;
  return out;
}

function defaultId(path: string): string {
  return basename(path).replace(/\.(nii\.gz|nii|csv|tsv)$/i, '').replace(/[^A-Za-z0-9_.-]+/g, '-') || 'dataset';
}

export function describeDataset(path: string, o: DescribeOptions = {}): DatasetRecord {
  const abs = resolve(path);
  let st;
  try { st = statSync(abs); } catch { throw new CohortError('DATA_NOT_FOUND', `no such file or directory: ${path}`, 'check the path'); }
  const base = { id: o.id ?? defaultId(abs), paths: [abs], tags: [...(o.tags ?? [])], addedAt: new Date().toISOString(), masks: (o.masks ?? []).map((m) => resolve(m)) };
  const hash = contentHash([abs, ...base.masks]);
  if (st.isFile() && /\.(csv|tsv|tab)$/i.test(abs)) {
    const t = readTabular(abs, { label: o.label, ignore: o.ignore, minClasses: 1 });
    return { ...base, kind: 'tabular', modalities: ['tabular'], label: o.label, samples: t.set.size, contentHash: hash,
      ...(o.label ? { labelBalance: balance(t.set.targets.label.data, t.classNames) } : {}),
      details: { features: t.featureNames.length, classes: t.classNames, dropped: t.dropped } };
  }
  if (st.isFile() && isNiftiPath(abs)) {
    const v = readNifti(abs);
    for (const m of base.masks) loadSubjectMask(m, v, abs); // a mask off the image grid is refused at registration
    return { ...base, kind: 'image', modalities: ['image'], samples: 1, contentHash: hash, details: volumeDetails(v) };
  }
  if (st.isDirectory() && isDicomDir(abs)) {
    const s = readDicomSeries(abs);
    for (const m of base.masks) loadSubjectMask(m, s.volume, abs);
    return { ...base, kind: 'dicom', modalities: [s.modality], samples: 1, contentHash: hash, details: { ...volumeDetails(s.volume), unit: s.unit } };
  }
  if (st.isDirectory()) return describeFolder(abs, o, base, hash);
  throw new CohortError('UNKNOWN_FORMAT', `${path}: not a CSV/TSV table, NIfTI image, DICOM series or medical folder`, 'see docs/data.md for the supported layouts');
}

function describeFolder(abs: string, o: DescribeOptions, base: Omit<DatasetRecord, 'kind' | 'modalities' | 'samples' | 'contentHash' | 'details'>, hash: string): DatasetRecord {
  const f = scanFolder(abs);
  let labelBalance: Record<string, number> | undefined;
  if (o.label) {
    if (!f.clinical) throw new CohortError('MISSING_COLUMN', `${abs} has no clinical CSV to take the label '${o.label}' from`, 'put a CSV keyed by subject in the folder root');
    const { labels, classNames } = encodeLabel(readTable(f.clinical), o.label);
    labelBalance = balance(labels, classNames);
  }
  return { ...base, kind: 'folder', modalities: [...f.modalities], label: o.label, samples: f.subjects.length, contentHash: hash,
    ...(labelBalance ? { labelBalance } : {}),
    details: { subjects: f.subjects.length, withMasks: f.subjects.filter((s) => s.masks.length).length, clinical: f.clinical ?? null } };
}

function volumeDetails(v: Volume): Record<string, unknown> {
  return { dims: v.dims, spacing: v.spacing.map((s) => Number(s.toFixed(4))), dtype: v.dtype, orientation: orientationCode(v.affine) };
}

export interface FileInspection { readonly file: string; readonly format: string; readonly [k: string]: unknown }

/** What a person wants to know about one file: geometry and value range for images, shape and types for tables. */
export function inspectFile(path: string, opts: { strict?: boolean } = {}): FileInspection {
  const abs = resolve(path);
  let st;
  try { st = statSync(abs); } catch { throw new CohortError('DATA_NOT_FOUND', `no such file or directory: ${path}`, 'check the path'); }
  if (st.isFile() && /\.(csv|tsv|tab)$/i.test(abs)) {
    const t = readTable(abs);
    return { file: path, format: 'table', rows: t.rows, columns: t.columns.map((c) => ({ name: c.name, kind: c.kind, missing: c.missing })) };
  }
  if (st.isFile() && /\.png$/i.test(abs)) return { file: path, format: 'png', ...imageSummary(readPngVolume(abs)) };
  if (st.isFile() && isNiftiPath(abs)) return { file: path, format: 'nifti', ...imageSummary(readNifti(abs)) };
  if (st.isDirectory() && isDicomDir(abs)) {
    const s = readDicomSeries(abs, { strict: opts.strict });
    return { file: path, format: 'dicom-series', modality: s.modality, unit: s.unit, transferSyntax: s.transferSyntax, slices: s.volume.dims[2],
      ...imageSummary(s.volume), warnings: s.warnings, ...(s.skipped.length ? { skipped: s.skipped.map((x) => x.file) } : {}) };
  }
  throw new CohortError('UNKNOWN_FORMAT', `${path}: not a NIfTI, PNG, CSV/TSV file or DICOM series directory`, 'inspect a registered dataset by its id instead');
}

function imageSummary(v: Volume): Record<string, unknown> {
  const r = valueRange(v.data);
  const f = (x: number): number => Number(x.toPrecision(6));
  return { ...volumeDetails(v), range: { min: f(r.min), max: f(r.max), mean: f(r.mean), std: f(r.std), nonZero: r.nonZero } };
}
