/**
 * `cohort data ...` — the data layer from the command line.
 *   data add PATH [--id ID] [--label COL] [--mask FILE]... [--tag T]... [--ignore COL]... [--replace]   register a dataset
 *   data list [--catalogue]            registered datasets (or the privacy-safe catalogue entries peers would gossip)
 *   data remove ID
 *   data inspect FILE|DATASET          a file: dims, spacing, dtype, orientation, value range; a dataset: counts, label balance
 *   data radiomics --image F --mask F  IBSI features of one image + mask;  --folder DIR --out F.csv  a feature CSV per subject
 *   data synth --site K --cases N --out DIR [--seed S] [--2d]   synthetic PET/CT-like site (medical-folder layout)
 *   data preprocess DIR --config CFG.json [--seed S]             run preprocessing, print tensor shapes and per-site statistics
 * Registry commands take --peer DIR (the peer directory whose store/ holds the registry; default $COHORT_PEER or .), as every
 * command does; --store DIR is the old spelling, still accepted (hidden from the help).
 * --json prints one JSON document on stdout.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { CohortError } from '../../util/errors.ts';
import { progressBar } from '../../util/progress.ts';
import type { DatasetRegistry } from '../../store/datasets.ts';
import type { Discretisation } from '../../data/radiomics.ts';
import type { Volume } from '../../data/volume.ts';

// The readers, the store and the preprocessing load on demand (dynamic imports in the actions): `cohort data inspect FILE`
// pays for its reader only, not for LevelDB, zod or the radiomics code (start-up figures in docs/cli.md).

interface StoreOpts { peer: string; store?: string; json?: boolean }
/** The peer directory: --peer, or the old --store when given. */
const peerDir = (o: StoreOpts): string => o.store ?? o.peer;

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
const print = (json: boolean | undefined, doc: unknown, human: () => string): void => {
  process.stdout.write(json ? JSON.stringify(doc) + '\n' : human() + '\n');
};

async function withRegistry<T>(dir: string, f: (r: DatasetRegistry) => Promise<T>): Promise<T> {
  const [{ openStore }, { DatasetRegistry }] = await Promise.all([import('../../store/db.ts'), import('../../store/datasets.ts')]);
  const store = await openStore(dir, { create: true });
  try { return await f(new DatasetRegistry(store.datasets)); } finally { await store.close(); }
}

function int(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new CohortError('BAD_OPTION', `${name} must be an integer, got '${v}'`, `e.g. ${name} 3`);
  return n;
}

export function registerData(program: Command): void {
  const data = program.command('data').description('register, inspect and prepare medical data (NIfTI, DICOM, CSV); radiomics; synthetic sites');
  const storeOpt = (c: Command): Command => c.option('--peer <dir>', 'peer directory whose store/ holds the registry', process.env.COHORT_PEER ?? '.')
    .addOption(new Option('--store <dir>', 'old spelling of --peer').hideHelp()).option('--json', 'print JSON on stdout');

  storeOpt(data.command('add').argument('<path>', 'CSV/TSV file, NIfTI file, DICOM series folder or medical folder')
    .option('--id <id>', 'dataset id (default: from the file name)').option('--label <column>', 'label column (CSV, or the clinical CSV of a folder)')
    .option('--mask <file>', 'mask for an image (repeatable)', collect).option('--tag <tag>', 'tag (repeatable)', collect)
    .option('--ignore <column>', 'CSV column to leave out (repeatable)', collect).option('--replace', 'replace a dataset with the same id'))
    .description('register a dataset in this peer\'s store (only metadata is stored; files stay where they are)')
    .action(async (path: string, o: StoreOpts & { id?: string; label?: string; mask?: string[]; tag?: string[]; ignore?: string[]; replace?: boolean }) => {
      const { describeDataset } = await import('../../data/register.ts');
      const record = describeDataset(path, { id: o.id, label: o.label, masks: o.mask, tags: o.tag, ignore: o.ignore });
      const saved = await withRegistry(peerDir(o), (r) => r.add(record, { replace: o.replace }));
      print(o.json, saved, () => `registered ${saved.id}: ${saved.kind}, ${saved.samples} sample(s), modalities ${saved.modalities.join(', ')}`
        + (saved.labelBalance ? `, labels ${JSON.stringify(saved.labelBalance)}` : ''));
    });

  storeOpt(data.command('list').option('--catalogue', 'show the privacy-safe catalogue entries (what peers may learn)')
    .option('--min-count <n>', 'small-count suppression threshold for --catalogue', '10'))
    .description('list registered datasets')
    .action(async (o: StoreOpts & { catalogue?: boolean; minCount: string }) => {
      const list = await withRegistry(peerDir(o), (r) => r.list());
      const { catalogueEntry } = await import('../../data/catalogue.ts');
      const rows = o.catalogue ? list.map((d) => catalogueEntry(d, { minCount: int(o.minCount, '--min-count') })) : list;
      print(o.json, rows, () => (list.length === 0 ? 'no datasets registered' : o.catalogue ? rows.map((d) => JSON.stringify(d)).join('\n')
        : list.map((d) => `${d.id.padEnd(16)} ${d.kind.padEnd(8)} ${String(d.samples).padStart(6)}  ${d.modalities.join(',').padEnd(10)} `
          + `${d.labelBalance ? JSON.stringify(d.labelBalance) : ''}  ${d.paths[0]}`).join('\n')));
    });

  storeOpt(data.command('remove').argument('<id>', 'dataset id')).description('unregister a dataset (the files are not touched)')
    .action(async (id: string, o: StoreOpts) => {
      const r = await withRegistry(peerDir(o), (reg) => reg.remove(id));
      print(o.json, { removed: r.id }, () => `removed ${r.id}`);
    });

  storeOpt(data.command('inspect').argument('<fileOrDataset>', 'a NIfTI/PNG/CSV file, a DICOM series folder, or a registered dataset id'))
    .option('--strict', 'refuse a DICOM series when any file in it cannot be read (default: leave it out with a warning naming it)')
    .description('describe a file (geometry, value range) or a registered dataset (counts, label balance)')
    .action(async (target: string, o: StoreOpts & { strict?: boolean }) => {
      if (existsSync(target)) {
        const { inspectFile } = await import('../../data/register.ts');
        const { warnings, ...info } = inspectFile(target, { strict: o.strict });
        // warnings: in the JSON document with --json; otherwise on stderr, one line each, so that stdout stays the description
        if (!o.json && Array.isArray(warnings)) for (const w of warnings) process.stderr.write(`warning: ${String(w)}\n`);
        print(o.json, o.json ? { ...info, ...(warnings !== undefined ? { warnings } : {}) } : info,
          () => Object.entries(info).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n'));
        return;
      }
      // a path that does not exist is a typo or a missing file, not a dataset id: say so instead of "no dataset registered"
      if (/[\\/]|\.(csv|tsv|nii|nii\.gz|png|dcm)$/i.test(target)) throw new CohortError('FILE_NOT_FOUND', `no file or folder ${target}`, 'check the path; a registered dataset is named by its id (cohort data list)');
      const rec = await withRegistry(peerDir(o), (r) => r.require(target));
      const { catalogueEntry } = await import('../../data/catalogue.ts');
      const doc = { ...rec, catalogue: catalogueEntry(rec) };
      print(o.json, doc, () => `${rec.id}: ${rec.kind}, ${rec.samples} sample(s), modalities ${rec.modalities.join(', ')}\n`
        + `label balance: ${rec.labelBalance ? JSON.stringify(rec.labelBalance) : 'n/a'}\ndetails: ${JSON.stringify(rec.details)}`);
    });

  data.command('radiomics').description('IBSI radiomics features (first-order, shape, GLCM) of an image + mask, or of every subject of a medical folder')
    .option('--image <file>', 'NIfTI file or DICOM series folder').option('--mask <file>', 'mask (NIfTI/PNG) on the image grid')
    .option('--folder <dir>', 'medical folder: one feature row per subject').option('--modality <m>', 'image modality in the folder', 'PT')
    .option('--out <file.csv>', 'feature CSV (with --folder)')
    .option('--bin-width <w>', 'fixed bin size discretisation (IBSI FBS), e.g. 25 for CT HU')
    .option('--bins <n>', 'fixed bin number discretisation (IBSI FBN; default 32)')
    .option('--json', 'print JSON on stdout')
    .action(async (o: { image?: string; mask?: string; folder?: string; modality: string; out?: string; binWidth?: string; bins?: string; json?: boolean }) => {
      const [{ computeRadiomics }, { readMaskFile }] = await Promise.all([import('../../data/radiomics.ts'), import('../../data/masks.ts')]);
      const disc: Discretisation = o.binWidth ? { method: 'fbs', binWidth: Number(o.binWidth) } : { method: 'fbn', bins: o.bins ? int(o.bins, '--bins') : 32 };
      if (o.folder) { await radiomicsFolder(o.folder, o.modality.toUpperCase(), disc, o.out, o.json); return; }
      if (!o.image || !o.mask) throw new CohortError('BAD_OPTION', 'radiomics needs --image and --mask (or --folder)', 'e.g. cohort data radiomics --image ct.nii.gz --mask mask.nii.gz');
      const image = await loadImage(o.image);
      const features = computeRadiomics(image, readMaskFile(o.mask, image, o.image), { discretisation: disc });
      print(o.json, features, () => Object.entries(features).map(([k, v]) => `${k.padEnd(24)} ${Number(v.toPrecision(6))}`).join('\n'));
    });

  data.command('synth').description('write a SYNTHETIC PET/CT-like site: NIfTI images + exact lesion masks + clinical CSV')
    .requiredOption('--site <k>', 'site number (sets scanner effects and case mix)').requiredOption('--cases <n>', 'number of subjects')
    .requiredOption('--out <dir>', 'output folder').option('--seed <s>', 'seed', '1').option('--2d', 'single-slice phantoms')
    .option('--fov <x,y,z>', 'field of view in mm', '128,128,96').option('--dicom', 'write DICOM series + SEG instead of NIfTI')
    .option('--json', 'print JSON on stdout')
    .action(async (o: { site: string; cases: string; out: string; seed: string; '2d'?: boolean; fov: string; dicom?: boolean; json?: boolean }) => {
      const { writeSynthSite } = await import('../../data/synth.ts');
      const cases = int(o.cases, '--cases');
      const fov = o.fov.split(',').map(Number);
      if (fov.length !== 3 || fov.some((v) => !(v > 0))) throw new CohortError('BAD_OPTION', `--fov must be three positive numbers, got '${o.fov}'`, 'e.g. --fov 128,128,96');
      const bar = progressBar({ total: cases, label: 'synth', enabled: !o.json });
      const r = writeSynthSite(o.out, { site: int(o.site, '--site'), cases, seed: int(o.seed, '--seed'), twoD: Boolean(o['2d']), format: o.dicom ? 'dicom' : 'nifti', fovMm: fov as [number, number, number], onCase: (d) => bar.update(d) });
      bar.stop();
      print(o.json, { out: o.out, subjects: r.subjects.length, clinical: r.clinical, profile: r.profile },
        () => `wrote ${r.subjects.length} SYNTHETIC subjects to ${o.out} (clinical: ${r.clinical}); site profile ${JSON.stringify(r.profile)}`);
    });

  data.command('preprocess').argument('<dir>', 'medical folder').requiredOption('--config <file.json>', 'preprocessing config (docs/data.md)')
    .option('--seed <s>', 'seed for patches and augmentation', '1').option('--json', 'print JSON on stdout')
    .description('preprocess a medical folder into training tensors; prints shapes and per-site statistics (no values)')
    .action(async (dir: string, o: { config: string; seed: string; json?: boolean }) => {
      const { preprocessFolder } = await import('../../data/preprocess.ts');
      let cfg: unknown;
      try { cfg = JSON.parse(readFileSync(o.config, 'utf8')); } catch (e) {
        throw new CohortError('BAD_PREPROCESSING', `cannot read ${o.config}: ${(e as Error).message}`, 'pass a JSON preprocessing config');
      }
      const r = preprocessFolder(dir, cfg, int(o.seed, '--seed'));
      const shapes = (g: Record<string, { shape: readonly number[] }>): Record<string, readonly number[]> => Object.fromEntries(Object.entries(g).map(([k, v]) => [k, v.shape]));
      const doc = { samples: r.set.size, inputs: shapes(r.set.inputs), targets: shapes(r.set.targets), stats: r.stats };
      print(o.json, doc, () => JSON.stringify(doc, null, 2));
    });
}

async function loadImage(path: string): Promise<Volume> {
  return /\.nii(\.gz)?$/i.test(path) ? (await import('../../data/nifti.ts')).readNifti(path) : (await import('../../data/dicom.ts')).readDicomSeries(path).volume;
}

async function radiomicsFolder(dir: string, modality: string, disc: Discretisation, out: string | undefined, json: boolean | undefined): Promise<void> {
  const [{ loadSubjectMask, scanFolder }, { computeRadiomics }] = await Promise.all([import('../../data/folder.ts'), import('../../data/radiomics.ts')]);
  const layout = scanFolder(dir);
  const rows: Record<string, number | string>[] = [];
  const bar = progressBar({ total: layout.subjects.length, label: 'radiomics', enabled: !json });
  for (const [i, s] of layout.subjects.entries()) {
    const img = s.images[modality];
    if (!img || !s.masks[0]) throw new CohortError('MISSING_MODALITY', `subject ${s.subject} lacks a ${modality} image or a mask`, `available: ${Object.keys(s.images).join(', ')}; choose --modality`);
    const image = await loadImage(img);
    rows.push({ subject: s.subject, ...computeRadiomics(image, loadSubjectMask(s.masks[0], image, img), { discretisation: disc }) });
    bar.update(i + 1);
  }
  bar.stop();
  const file = out ?? join(dir, `radiomics-${modality.toLowerCase()}.csv`);
  const cols = Object.keys(rows[0]);
  writeFileSync(file, [cols.join(','), ...rows.map((r) => cols.map((c) => (typeof r[c] === 'number' ? Number((r[c] as number).toPrecision(8)) : r[c])).join(','))].join('\n') + '\n');
  print(json, { out: file, subjects: rows.length, features: cols.length - 1 }, () => `wrote ${rows.length} x ${cols.length - 1} features to ${file}`);
}
