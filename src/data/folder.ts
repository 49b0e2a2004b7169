/**
 * The "medical folder" layout researchers know:  ROOT/<subject>/<modality>/<file>.nii.gz  (+ DICOM series folders) and a clinical
 * CSV/TSV in ROOT keyed by a `subject` column (or `subject_id`, `patient`, `patient_id`, `id`).
 *   scanFolder(root) -> { subjects: [{ subject, images: { CT: path, PT: path, ... }, masks: [path] }], clinical?: path, modalities }
 * Modality folders named SEG, MASK, LABEL, ROI or RTSTRUCT hold masks (NIfTI, PNG, DICOM SEG or RTSTRUCT .dcm); every other
 * folder name is an image modality (upper-cased).
 *   loadSubjectMask(maskPath, image, imageFile) -> the mask on the image grid, whatever its format
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CohortError } from '../util/errors.ts';
import { isNiftiPath } from './nifti.ts';
import { readDicomFile } from './dicom.ts';
import { readDicomSeg, readMaskFile, readRtStruct } from './masks.ts';
import type { Volume } from './volume.ts';
import { readTable } from './tabular.ts';

export interface FolderSubject {
  readonly subject: string;
  /** modality -> image file (NIfTI) or DICOM series directory */
  readonly images: Readonly<Record<string, string>>;
  readonly masks: readonly string[];
}

export interface FolderLayout {
  readonly root: string;
  readonly subjects: readonly FolderSubject[];
  readonly modalities: readonly string[];
  readonly clinical?: string;
  readonly subjectColumn?: string;
}

const MASK_DIRS = new Set(['SEG', 'MASK', 'MASKS', 'LABEL', 'LABELS', 'ROI', 'RTSTRUCT']);
const SUBJECT_COLUMNS = ['subject', 'subject_id', 'patient', 'patient_id', 'id'];

const isDir = (p: string): boolean => existsSync(p) && statSync(p).isDirectory();

export function scanFolder(root: string): FolderLayout {
  if (!isDir(root)) throw new CohortError('DATA_NOT_FOUND', `${root} is not a directory`, 'pass the root of a medical folder (ROOT/<subject>/<modality>/...)');
  const entries = readdirSync(root).sort();
  const clinicalFile = entries.find((e) => /\.(csv|tsv)$/i.test(e));
  const subjects: FolderSubject[] = [];
  for (const s of entries) {
    const sdir = join(root, s);
    if (!isDir(sdir)) continue;
    const images: Record<string, string> = {};
    const masks: string[] = [];
    for (const m of readdirSync(sdir).sort()) {
      const mdir = join(sdir, m);
      if (!isDir(mdir)) continue;
      const files = readdirSync(mdir).sort();
      const nifti = files.filter(isNiftiPath).map((f) => join(mdir, f));
      const isMask = MASK_DIRS.has(m.toUpperCase());
      if (isMask) masks.push(...nifti, ...files.filter((f) => /\.dcm$/i.test(f)).map((f) => join(mdir, f)));
      else if (nifti.length) images[m.toUpperCase()] = nifti[0];
      else if (files.some((f) => /\.dcm$/i.test(f) || !f.includes('.'))) images[m.toUpperCase()] = mdir; // a DICOM series
    }
    if (Object.keys(images).length || masks.length) subjects.push({ subject: s, images, masks });
  }
  if (subjects.length === 0) {
    throw new CohortError('EMPTY_DATASET', `${root} holds no <subject>/<modality>/ image folders`, 'lay the data out as ROOT/<subject>/<modality>/<file>.nii.gz');
  }
  const modalities = [...new Set(subjects.flatMap((s) => Object.keys(s.images)))].sort();
  if (!clinicalFile) return { root, subjects, modalities };
  const clinical = join(root, clinicalFile);
  const cols = readTable(clinical).columns.map((c) => c.name);
  const subjectColumn = SUBJECT_COLUMNS.find((c) => cols.includes(c));
  if (!subjectColumn) {
    throw new CohortError('MISSING_COLUMN', `${clinical} has no subject column`, `name the column that holds the subject folder names one of: ${SUBJECT_COLUMNS.join(', ')}`);
  }
  return { root, subjects, modalities, clinical, subjectColumn };
}

/** A subject's mask on its image's grid: NIfTI/PNG (aligned by world position), DICOM SEG or RTSTRUCT (rasterised). */
export function loadSubjectMask(maskPath: string, image: Volume, imageFile: string): Volume {
  if (!/\.dcm$/i.test(maskPath)) return readMaskFile(maskPath, image, imageFile);
  const modality = readDicomFile(maskPath).ds.Modality;
  if (modality === 'SEG') {
    const m = readDicomSeg(maskPath, image);
    return { ...m, data: m.data.map((v) => (v ? 1 : 0)) };
  }
  if (modality === 'RTSTRUCT') return readRtStruct(maskPath, image);
  throw new CohortError('NOT_A_MASK', `${maskPath} is a ${String(modality)} object, not a SEG or RTSTRUCT`, 'keep only masks in the SEG folder');
}
