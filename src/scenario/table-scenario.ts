/**
 * A scenario manifest for any CSV, without writing one (`cohort sim --data FILE.csv --label COL | --time COL --event COL
 * [--site-column COL]`): the table is read once to pick the task and the model, then the manifest goes through parseManifest
 * like a file would.
 *   classification  --label COL: an MLP (one hidden layer of 16, ReLU) over all other columns, classes from the label's values;
 *                   metric auc for two classes, balancedAccuracy for more
 *   regression      --task regression --label COL: an MLP (16, ReLU) with one output, MSE loss, metric r2 (the target is
 *                   standardised with the training part's statistics in the simulator)
 *   survival        --time COL --event COL: a linear Cox model (Breslow partial likelihood), metric c_index
 * Both: features standardised, Adam (lr 0.01, batch 32, one local epoch per round), D-PSGD; 20% held out (stratified by class or
 * event). A random IID partition over --peers peers (default 8), or one peer per value of --site-column (each site holds out 20%
 * of its rows; the pooled test set gives the headline metric, each site's own test set its per-site one). The table goes through
 * the audit of src/data/table-audit.ts: identifier-like columns dropped, --ignore (data.selector.ignore), the feature list,
 * imputed counts, leakage warnings, a continuous label refused as classes; `notes` (for stderr) and `audit` (for --json) say so.
 */
import { basename } from 'node:path';
import { readTable, tableToSamples } from '../data/tabular.ts';
import { auditTable, idLikeColumns } from '../data/table-audit.ts';
import { CohortError } from '../util/errors.ts';
import { parseManifest, type ScenarioManifest, type ScenarioManifestInput } from './manifest.ts';

export interface TableScenarioOptions {
  readonly data: string;
  readonly label?: string;
  readonly time?: string;
  readonly event?: string;
  readonly siteColumn?: string;
  readonly peers?: number;
  readonly seed?: number;
  /** Columns never used as features (--ignore). */
  readonly ignore?: readonly string[];
  /** With --label: classification (default) or regression. */
  readonly task?: 'classification' | 'regression';
}

/** What the table audit found, for --json: the columns used, and why the others were not. */
export interface TableAuditSummary {
  readonly features: string[];
  readonly identifiers: string[];
  readonly ignored: string[];
  readonly imputed: Record<string, number>;
  readonly warnings: Array<{ column: string; statistic: string; value: number; message: string }>;
}

export interface TableScenario {
  readonly manifest: ScenarioManifest;
  /** Human-readable lines for stderr, each with its prefix (note:, warning:, features). */
  readonly notes: string[];
  readonly audit: TableAuditSummary;
}

export function tableScenario(o: TableScenarioOptions): TableScenario {
  const survival = o.time !== undefined || o.event !== undefined;
  if (survival && o.label !== undefined) {
    throw new CohortError('BAD_FLAG', '--label and --time/--event exclude each other', 'classification: --label COL; survival: --time COL --event COL');
  }
  if (survival && (o.time === undefined || o.event === undefined)) {
    throw new CohortError('BAD_FLAG', 'a survival table needs both --time and --event', 'e.g. --time time_days --event event (1 = event observed, 0 = censored)');
  }
  if (!survival && o.label === undefined) {
    throw new CohortError('BAD_FLAG', `--data ${o.data} needs --label COL (classification) or --time COL --event COL (survival)`, 'name the column to predict');
  }
  if (o.siteColumn !== undefined && o.peers !== undefined) {
    throw new CohortError('BAD_FLAG', `--peers does not apply with --site-column: each value of ${o.siteColumn} is one peer`, 'drop --peers, or drop --site-column for a random partition');
  }
  if (survival && o.task === 'regression') throw new CohortError('BAD_FLAG', '--task regression goes with --label, not --time/--event', 'regression: --task regression --label COL');
  const regression = o.task === 'regression';
  const table = readTable(o.data);
  const { t, notes, audit } = survival ? survivalTable(table, o) : labelTable(table, o);
  const siteValues = o.siteColumn ? new Set(table.columns.find((c) => c.name === o.siteColumn)!.values.filter((v) => v !== null)) : undefined;
  const peers = siteValues?.size ?? o.peers ?? 8;
  const binary = t.classes === 2;
  const model = survival ? { type: 'mlp' as const, hidden: [], classes: 1 }
    : { type: 'mlp' as const, hidden: [16], activation: 'relu' as const, classes: regression ? 1 : t.classes };
  const what = survival ? 'linear Cox model, metric c_index' : regression ? 'MLP 16, one output (regression, MSE), metric r2'
    : `MLP 16, ${t.classes} classes, metric ${binary ? 'auc' : 'balancedAccuracy'}`;
  notes.push(`note: ${t.set.size} rows, ${t.featureNames.length} features; ${what}`
    + (o.siteColumn ? `; one peer per value of ${o.siteColumn} (${peers})` : `; ${peers} peers, IID partition`));
  const name = basename(o.data).replace(/\.[^.]*$/, '').toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'table';
  const raw: ScenarioManifestInput = {
    version: 1,
    name: /^[a-z0-9]/.test(name) ? name : `t-${name}`.slice(0, 63),
    title: `${basename(o.data)}: ${survival ? `survival (${o.time}, ${o.event})` : `${regression ? 'regression' : 'classification'} of ${o.label}`}`,
    task: survival ? { kind: 'survival', metric: 'c_index', time: o.time, event: o.event }
      : regression ? { kind: 'regression', metric: 'r2' } : { kind: 'classification', metric: binary ? 'auc' : 'balancedAccuracy', classes: t.classes },
    data: {
      selector: { kind: 'tabular', source: o.data, ...(survival ? {} : { label: o.label }), ...(survival || regression ? {} : { classNames: [...t.classNames] }),
        ...(audit.ignored.length ? { ignore: audit.ignored } : {}) },
      preprocessing: { standardize: 'consortium' },
      holdout: 0.2,
      ...(o.siteColumn ? { split: { by: o.siteColumn } } : {}),
    },
    model,
    ...(survival ? { loss: { type: 'cox' as const } } : regression ? { loss: { type: 'mse' as const } } : {}),
    optimizer: { type: 'adam', lr: 0.01 },
    training: { batchSize: 32, localEpochs: 1, seed: o.seed ?? 1 },
    averaging: { algorithm: 'dpsgd', topology: peers > 8 ? { kind: 'random-regular', degree: 4 } : { kind: 'complete' } },
    rounds: { max: survival ? 50 : 30 },
    evaluation: { every: 5, compareLocalOnly: true },
    simulation: { peers: Math.max(2, peers), partition: { kind: 'iid' }, stepMs: 5 },
  };
  return { manifest: parseManifest(raw, o.data), notes, audit };
}

type TableRead = { t: ReturnType<typeof tableToSamples>; notes: string[]; audit: TableAuditSummary };

/** --label: the full audit (refuses a continuous label as classes; leakage judged on a seeded 80% of the rows). */
function labelTable(table: ReturnType<typeof readTable>, o: TableScenarioOptions): TableRead {
  const a = auditTable(table, { label: o.label!, task: o.task ?? 'classification', ignore: o.ignore ?? [], exclude: o.siteColumn ? [o.siteColumn] : [],
    testFraction: 0.2, seed: o.seed ?? 1 });
  const audit = { features: a.features, identifiers: a.identifiers.map((c) => c.name), ignored: a.ignored, imputed: a.imputed,
    warnings: a.warnings.map((w) => ({ column: w.column, statistic: w.statistic, value: Number(w.value.toFixed(4)), message: w.message })) };
  return { t: a.samples, notes: [...a.notes], audit };
}

/** --time/--event: identifier-like and ignored columns left out, the feature list noted (no leakage test for survival yet). */
function survivalTable(table: ReturnType<typeof readTable>, o: TableScenarioOptions): TableRead {
  const ignored = [...(o.ignore ?? [])];
  const ids = idLikeColumns(table, new Set([o.time!, o.event!, ...ignored, ...(o.siteColumn ? [o.siteColumn] : [])])).map((c) => c.name);
  const t = tableToSamples(table, { survival: { time: o.time!, event: o.event! }, ignore: [...ignored, ...ids, ...(o.siteColumn ? [o.siteColumn] : [])] });
  const identifiers = [...new Set([...ids, ...t.identifiers])];
  const notes: string[] = [];
  if (identifiers.length) notes.push(`note: dropped identifier-like column(s): ${identifiers.join(', ')}`);
  if (ignored.length) notes.push(`note: ignored column(s) (--ignore): ${ignored.join(', ')}`);
  const other = t.dropped.filter((d) => !identifiers.includes(d));
  if (other.length) notes.push(`note: dropped text column(s) with too many distinct values: ${other.join(', ')}`);
  if (t.droppedRows) notes.push(`note: left out ${t.droppedRows} row(s) without a time or event`);
  const features = t.encoding.columns.map((c) => c.name);
  notes.push(`features (${features.length} column(s), ${t.featureNames.length} input(s)): ${features.join(', ')}`);
  return { t, notes, audit: { features, identifiers, ignored, imputed: {}, warnings: [] } };
}
