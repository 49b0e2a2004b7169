/**
 * Segmentations -> voxel masks on a reference image grid.
 *   readRtStruct(file, reference, { roi? })  RTSTRUCT closed planar contours (patient mm, LPS) rasterised slice by slice
 *                                            (pixel centres inside the polygon, even-odd rule so holes stay empty)
 *   readDicomSeg(file, reference, { segment? })  DICOM SEG (binary, 1 bit per pixel) frames placed by ImagePositionPatient;
 *                                            the result holds the segment number per voxel (or 0/1 for one chosen segment)
 *   readMaskFile(file, image, imageFile)     a NIfTI/PNG mask checked against its image grid (mismatch -> error naming both)
 *   writeRtStruct / writeDicomSeg            small writers (dcmjs) for fixtures and tests
 * `reference` is the image Volume (from readDicomSeries), whose affine maps voxels to RAS mm.
 */
import { writeFileSync } from 'node:fs';
import dcmjs, { type NaturalDataset } from 'dcmjs';
import { CohortError } from '../util/errors.ts';
import { encodeDicom, readDicomFile } from './dicom.ts';
import { isNiftiPath, readNifti } from './nifti.ts';
import { readPngVolume } from './png.ts';
import { assertSameGrid, makeVolume, type Volume } from './volume.ts';

const { DicomMetaDictionary } = dcmjs.data;

const asArray = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? v : v && typeof v === 'object' ? [v] : []) as Record<string, unknown>[];
const numbers = (v: unknown): number[] => (Array.isArray(v) ? v.map(Number) : typeof v === 'string' ? v.split('\\').map(Number) : typeof v === 'number' ? [v] : []);

/** Inverse of a 4x4 affine's 3x3 part + offset: world (RAS) -> continuous voxel index. */
function worldToVoxel(affine: number[][]): (p: number[]) => number[] {
  const [a, b, c] = [affine[0], affine[1], affine[2]];
  const det = a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0]) + a[2] * (b[0] * c[1] - b[1] * c[0]);
  const inv = [
    [(b[1] * c[2] - b[2] * c[1]) / det, (a[2] * c[1] - a[1] * c[2]) / det, (a[1] * b[2] - a[2] * b[1]) / det],
    [(b[2] * c[0] - b[0] * c[2]) / det, (a[0] * c[2] - a[2] * c[0]) / det, (a[2] * b[0] - a[0] * b[2]) / det],
    [(b[0] * c[1] - b[1] * c[0]) / det, (a[1] * c[0] - a[0] * c[1]) / det, (a[0] * b[1] - a[1] * b[0]) / det],
  ];
  return (p) => {
    const d = [p[0] - a[3], p[1] - b[3], p[2] - c[3]];
    return inv.map((r) => r[0] * d[0] + r[1] * d[1] + r[2] * d[2]);
  };
}

const lpsToRas = (p: number[]): number[] => [-p[0], -p[1], p[2]];

export function readRtStruct(file: string, reference: Volume, opts: { roi?: string } = {}): Volume {
  const { ds } = readDicomFile(file);
  if (ds.Modality !== 'RTSTRUCT') throw new CohortError('NOT_RTSTRUCT', `${file} is a ${String(ds.Modality)} object, not an RTSTRUCT`, 'pass the structure set file');
  const rois = asArray(ds.StructureSetROISequence).map((r) => ({ number: Number(r.ROINumber), name: String(r.ROIName ?? '') }));
  const roi = opts.roi ? rois.find((r) => r.name === opts.roi) : rois[0];
  if (!roi) throw new CohortError('ROI_NOT_FOUND', `${file} has no ROI '${opts.roi}'`, `ROIs: ${rois.map((r) => r.name).join(', ') || 'none'}`);
  const contours = asArray(ds.ROIContourSequence).find((c) => Number(c.ReferencedROINumber) === roi.number);
  const [nx, ny, nz] = reference.dims;
  const mask = new Float32Array(nx * ny * nz);
  const toVoxel = worldToVoxel(reference.affine);
  for (const c of asArray(contours?.ContourSequence)) {
    const pts = numbers(c.ContourData);
    const poly: number[][] = [];
    for (let i = 0; i + 2 < pts.length; i += 3) poly.push(toVoxel(lpsToRas([pts[i], pts[i + 1], pts[i + 2]])));
    if (poly.length < 3) continue;
    const k = Math.round(poly[0][2]);
    if (k < 0 || k >= nz || Math.abs(poly[0][2] - k) > 0.25) {
      throw new CohortError('MASK_MISMATCH', `${file}: ROI '${roi.name}' has a contour at slice position ${poly[0][2].toFixed(2)}, not on the reference image's slices (0..${nz - 1})`,
        'use the structure set drawn on this image series');
    }
    fillPolygon(mask, k * nx * ny, nx, ny, poly);
  }
  return makeVolume(reference.dims, reference.spacing, mask, reference.affine);
}

/** XOR-fill the pixel centres inside a polygon (voxel coordinates) into one slice. */
function fillPolygon(mask: Float32Array, offset: number, nx: number, ny: number, poly: number[][]): void {
  for (let y = 0; y < ny; y++) {
    const xs: number[] = [];
    for (let i = 0; i < poly.length; i++) {
      const [x0, y0] = poly[i], [x1, y1] = poly[(i + 1) % poly.length];
      if ((y0 <= y && y1 > y) || (y1 <= y && y0 > y)) xs.push(x0 + ((y - y0) / (y1 - y0)) * (x1 - x0));
    }
    xs.sort((a, b) => a - b);
    for (let j = 0; j + 1 < xs.length; j += 2) {
      for (let x = Math.max(0, Math.ceil(xs[j])); x <= Math.min(nx - 1, Math.floor(xs[j + 1])); x++) {
        const i = offset + y * nx + x;
        mask[i] = mask[i] ? 0 : 1;
      }
    }
  }
}

export function readDicomSeg(file: string, reference: Volume, opts: { segment?: number } = {}): Volume {
  const { ds } = readDicomFile(file);
  if (ds.Modality !== 'SEG') throw new CohortError('NOT_SEG', `${file} is a ${String(ds.Modality)} object, not a DICOM SEG`, 'pass the segmentation file');
  const rows = Number(ds.Rows), cols = Number(ds.Columns), frames = Number(ds.NumberOfFrames ?? 1);
  const [nx, ny, nz] = reference.dims;
  if (rows !== ny || cols !== nx) {
    throw new CohortError('MASK_MISMATCH', `${file}: segmentation frames are ${cols}x${rows}, the image slices ${nx}x${ny}`, 'use the segmentation made on this image series');
  }
  if (Number(ds.BitsAllocated) !== 1) throw new CohortError('UNSUPPORTED_SEG', `${file}: only binary SEG (1 bit) is supported`, 'export a binary segmentation');
  const px = ds.PixelData as ArrayBuffer[] | ArrayBuffer;
  const bits = new Uint8Array(Array.isArray(px) ? px[0] : px);
  if (bits.length * 8 < frames * rows * cols) {
    throw new CohortError('TRUNCATED_FILE', `${file}: ${bits.length} bytes of pixel data, ${Math.ceil((frames * rows * cols) / 8)} expected`, 'export the segmentation again');
  }
  const perFrame = asArray(ds.PerFrameFunctionalGroupsSequence);
  const toVoxel = worldToVoxel(reference.affine);
  const out = new Float32Array(nx * ny * nz);
  for (let f = 0; f < frames; f++) {
    const g = perFrame[f] ?? {};
    const ipp = numbers(asArray(g.PlanePositionSequence)[0]?.ImagePositionPatient);
    const segNo = Number(asArray(g.SegmentIdentificationSequence)[0]?.ReferencedSegmentNumber ?? 1);
    if (opts.segment !== undefined && segNo !== opts.segment) continue;
    const kf = ipp.length === 3 ? toVoxel(lpsToRas(ipp))[2] : f;
    const k = Math.round(kf);
    if (k < 0 || k >= nz || Math.abs(kf - k) > 0.25) {
      throw new CohortError('MASK_MISMATCH', `${file}: frame ${f + 1} lies at slice position ${kf.toFixed(2)}, not on the image's slices (0..${nz - 1})`, 'use the segmentation made on this image series');
    }
    for (let i = 0; i < rows * cols; i++) {
      const b = f * rows * cols + i;
      if ((bits[b >> 3] >> (b & 7)) & 1) out[k * nx * ny + i] = opts.segment !== undefined ? 1 : segNo;
    }
  }
  return makeVolume(reference.dims, reference.spacing, out, reference.affine);
}

/**
 * A mask stored as NIfTI or PNG, on its image's grid. The same voxels stored in another axis order (e.g. a NIfTI mask of a
 * DICOM series, whose slice axis follows the slice normal) are reordered to the image's; any other difference is an error.
 */
export function readMaskFile(file: string, image: Volume, imageFile: string): Volume {
  const m = isNiftiPath(file) ? readNifti(file) : /\.png$/i.test(file) ? readPngVolume(file) : undefined;
  if (!m) throw new CohortError('UNKNOWN_FORMAT', `${file}: masks must be NIfTI or PNG here (DICOM SEG/RTSTRUCT need the image series)`, 'convert the mask, or pass the DICOM series');
  return alignMask(image, m, file, imageFile);
}

/** The mask's values in the image's voxel order, when both sample the same world grid; otherwise MASK_MISMATCH. */
export function alignMask(image: Volume, mask: Volume, maskFile: string, imageFile: string): Volume {
  const same = image.affine.every((r, i) => r.every((v, j) => Math.abs(v - mask.affine[i][j]) < 1e-3));
  if (same || image.dims[2] === 1) { assertSameGrid(image, mask, maskFile, imageFile); return mask; }
  const toMask = worldToVoxel(mask.affine);
  const [nx, ny, nz] = image.dims, [mx, my, mz] = mask.dims;
  const out = new Float32Array(nx * ny * nz);
  const A = image.affine;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    const w = [0, 1, 2].map((r) => A[r][0] * i + A[r][1] * j + A[r][2] * k + A[r][3]);
    const p = toMask(w);
    const q = p.map(Math.round);
    if (q.some((v, a) => Math.abs(v - p[a]) > 0.01) || q[0] < 0 || q[1] < 0 || q[2] < 0 || q[0] >= mx || q[1] >= my || q[2] >= mz) {
      throw new CohortError('MASK_MISMATCH',
        `mask ${maskFile} (${mask.dims.join('x')} @ ${mask.spacing.map((x) => x.toFixed(3)).join('x')} mm) does not lie on the grid of image ${imageFile} (${image.dims.join('x')} @ ${image.spacing.map((x) => x.toFixed(3)).join('x')} mm)`,
        'use the mask drawn on this image, or resample the mask onto the image grid first');
    }
    out[i + nx * (j + ny * k)] = mask.data[q[0] + mx * (q[1] + my * q[2])];
  }
  return { ...makeVolume(image.dims, image.spacing, out, image.affine), dtype: mask.dtype };
}

// ---------- writers (fixtures, tests) ----------

const SEG_CLASS = '1.2.840.10008.5.1.4.1.1.66.4', RTSTRUCT_CLASS = '1.2.840.10008.5.1.4.1.1.481.3';

function ras2lps(affine: number[][], v: number[]): number[] {
  const p = [0, 1, 2].map((r) => affine[r][0] * v[0] + affine[r][1] * v[1] + affine[r][2] * v[2] + affine[r][3]);
  return [-p[0], -p[1], p[2]];
}

/** Write a binary mask (nonzero = segment 1) on `reference` as a DICOM SEG, one frame per slice holding any voxel. */
export function writeDicomSeg(file: string, mask: Volume, seriesUid = DicomMetaDictionary.uid()): void {
  const [nx, ny, nz] = mask.dims;
  const slices = [...Array(nz).keys()].filter((k) => mask.data.subarray(k * nx * ny, (k + 1) * nx * ny).some((v) => v !== 0));
  const bits = new Uint8Array(Math.ceil((slices.length * nx * ny) / 8));
  slices.forEach((k, f) => {
    for (let i = 0; i < nx * ny; i++) if (mask.data[k * nx * ny + i]) { const b = f * nx * ny + i; bits[b >> 3] |= 1 << (b & 7); }
  });
  const sop = DicomMetaDictionary.uid();
  const ds: NaturalDataset = {
    _vrMap: { PixelData: 'OB' }, SOPClassUID: SEG_CLASS, SOPInstanceUID: sop, Modality: 'SEG', SeriesInstanceUID: seriesUid,
    PatientID: 'SYNTHETIC', Rows: ny, Columns: nx, NumberOfFrames: slices.length, BitsAllocated: 1, BitsStored: 1, HighBit: 0,
    PixelRepresentation: 0, SamplesPerPixel: 1, PhotometricInterpretation: 'MONOCHROME2', SegmentationType: 'BINARY',
    SegmentSequence: [{ SegmentNumber: 1, SegmentLabel: 'lesion', SegmentAlgorithmType: 'MANUAL' }],
    PerFrameFunctionalGroupsSequence: slices.map((k) => ({
      PlanePositionSequence: [{ ImagePositionPatient: ras2lps(mask.affine, [0, 0, k]) }],
      SegmentIdentificationSequence: [{ ReferencedSegmentNumber: 1 }],
    })),
    PixelData: [bits.buffer],
  };
  writeFileSync(file, new Uint8Array(encodeDicom(ds, SEG_CLASS, sop)));
}

/** Write closed planar contours (voxel coordinates [x, y] per point, one list per slice k) as an RTSTRUCT with one ROI. */
export function writeRtStruct(file: string, reference: Volume, roiName: string, contours: { k: number; points: [number, number][] }[]): void {
  const sop = DicomMetaDictionary.uid();
  const ds: NaturalDataset = {
    SOPClassUID: RTSTRUCT_CLASS, SOPInstanceUID: sop, Modality: 'RTSTRUCT', PatientID: 'SYNTHETIC', SeriesInstanceUID: DicomMetaDictionary.uid(),
    StructureSetLabel: 'SYNTHETIC', StructureSetROISequence: [{ ROINumber: 1, ROIName: roiName, ROIGenerationAlgorithm: 'MANUAL' }],
    ROIContourSequence: [{
      ReferencedROINumber: 1,
      ContourSequence: contours.map((c) => ({
        ContourGeometricType: 'CLOSED_PLANAR', NumberOfContourPoints: c.points.length,
        ContourData: c.points.flatMap(([x, y]) => ras2lps(reference.affine, [x, y, c.k])),
      })),
    }],
  };
  writeFileSync(file, new Uint8Array(encodeDicom(ds, RTSTRUCT_CLASS, sop)));
}
