/**
 * A scenario manifest for any CSV, without writing one (`cohort sim --data FILE.csv --label COL | --time COL --event COL
 * [--site-column COL]`): the table is read once to pick the task and the model, then the manifest goes through parseManifest
 * like a file would.
 *   classification  --label COL: an MLP (one hidden layer of 16, ReLU) over all other columns, classes from the label's values;
 *                   metric auc for two classes, balancedAccuracy for more
 *   survival        --time COL --event COL: a linear Cox model (Breslow partial likelihood), metric c_index
 * Both: features standardised, Adam (lr 0.01, batch 32, one local epoch per round), D-PSGD; 20% held out (stratified by class or
 * event). A random IID partition over --peers peers (default 8), or one peer per value of --site-column (each site holds out 20%
 * of its rows; the pooled test set gives the headline metric, each site's own test set its per-site one). Identifier-like columns
 * (named id/..._id, or text unique per row) are dropped; `notes` says which.
 */
import { basename } from 'node:path';
import { readTable, tableToSamples } from '../data/tabular.ts';
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
}

export interface TableScenario {
  readonly manifest: ScenarioManifest;
  /** Human-readable notes for stderr (dropped columns, the model chosen). */
  readonly notes: string[];
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
  const ignore = o.siteColumn ? [o.siteColumn] : [];
  const table = readTable(o.data);
  const t = tableToSamples(table, survival ? { survival: { time: o.time!, event: o.event! }, ignore } : { label: o.label!, ignore });
  const notes: string[] = [];
  if (t.identifiers.length) notes.push(`dropped identifier-like column(s): ${t.identifiers.join(', ')}`);
  const other = t.dropped.filter((d) => !t.identifiers.includes(d));
  if (other.length) notes.push(`dropped text column(s) with too many distinct values: ${other.join(', ')}`);
  if (t.droppedRows) notes.push(`left out ${t.droppedRows} row(s) without a ${survival ? 'time or event' : 'label'}`);
  const siteValues = o.siteColumn ? new Set(table.columns.find((c) => c.name === o.siteColumn)!.values.filter((v) => v !== null)) : undefined;
  const peers = siteValues?.size ?? o.peers ?? 8;
  const binary = t.classes === 2;
  const model = survival ? { type: 'mlp' as const, hidden: [], classes: 1 } : { type: 'mlp' as const, hidden: [16], activation: 'relu' as const, classes: t.classes };
  notes.push(`${t.set.size} rows, ${t.featureNames.length} features; ${survival ? 'linear Cox model, metric c_index' : `MLP 16, ${t.classes} classes, metric ${binary ? 'auc' : 'balancedAccuracy'}`}`
    + (o.siteColumn ? `; one peer per value of ${o.siteColumn} (${peers})` : `; ${peers} peers, IID partition`));
  const name = basename(o.data).replace(/\.[^.]*$/, '').toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'table';
  const raw: ScenarioManifestInput = {
    version: 1,
    name: /^[a-z0-9]/.test(name) ? name : `t-${name}`.slice(0, 63),
    title: `${basename(o.data)}: ${survival ? `survival (${o.time}, ${o.event})` : `classification of ${o.label}`}`,
    task: survival ? { kind: 'survival', metric: 'c_index', time: o.time, event: o.event }
      : { kind: 'classification', metric: binary ? 'auc' : 'balancedAccuracy', classes: t.classes },
    data: {
      selector: { kind: 'tabular', source: o.data, ...(survival ? {} : { label: o.label, classNames: [...t.classNames] }) },
      preprocessing: { standardize: true },
      holdout: 0.2,
      ...(o.siteColumn ? { split: { by: o.siteColumn } } : {}),
    },
    model,
    ...(survival ? { loss: { type: 'cox' as const } } : {}),
    optimizer: { type: 'adam', lr: 0.01 },
    training: { batchSize: 32, localEpochs: 1, seed: o.seed ?? 1 },
    averaging: { algorithm: 'dpsgd', topology: peers > 8 ? { kind: 'random-regular', degree: 4 } : { kind: 'complete' } },
    rounds: { max: survival ? 50 : 30 },
    evaluation: { every: 5, compareLocalOnly: true },
    simulation: { peers: Math.max(2, peers), partition: { kind: 'iid' }, stepMs: 5 },
  };
  return { manifest: parseManifest(raw, o.data), notes };
}
