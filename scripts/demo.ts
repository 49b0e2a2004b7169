/**
 * `npm run demo` — INTERIM: until the multi-peer demo exists (several hospital peers on loopback, a scenario, gossip
 * averaging), this trains one model locally on the bundled WDBC data and says so. The daemon engineer replaces it.
 */
import '../src/util/polyfills.ts';
import { readCsvSamples } from '../src/cli/commands/train.ts';
import { trainLocal } from '../src/engine/local.ts';
import { releaseSessions } from '../src/engine/sessions.ts';
import { progressBar } from '../src/util/progress.ts';

process.stdout.write('Cohort demo (interim): the peer-to-peer demo is not built yet, so this trains ONE local model on\n'
  + 'data/wdbc.csv (Wisconsin breast cancer, 569 patients) with the Cohort engine — no network, no averaging.\n\n');
const { set, classNames } = readCsvSamples('data/wdbc.csv', 'diagnosis');
const epochs = 40;
const bar = progressBar({ total: epochs, label: 'local training', enabled: true, fields: 'loss {loss}' });
const t0 = performance.now();
const r = await trainLocal(set, { model: { type: 'mlp', hidden: [32], classes: classNames.length }, optimizer: { type: 'adam', lr: 1e-3 },
  epochs, batchSize: 32, seed: 1, fusedSteps: 8, standardize: ['features'],
  onEpoch: (e, loss) => bar.update(e, { loss: loss.toFixed(4) }) });
bar.stop();
const m = r.metrics;
process.stdout.write(`\nMLP 30-32-2 on ${r.trainer.provider}, ${r.train.size} training / ${r.test.size} held-out patients, `
  + `${((performance.now() - t0) / 1000).toFixed(1)} s\n`
  + `held-out accuracy ${(100 * (m.accuracy ?? 0)).toFixed(1)}%, balanced accuracy ${(100 * (m.balancedAccuracy ?? 0)).toFixed(1)}%, `
  + `ROC AUC ${(m.auc ?? 0).toFixed(3)}\n`
  + 'Next: `npx cohort train --data data/wdbc.csv --label diagnosis --export model.onnx` writes the portable model.\n');
await r.trainer.dispose();
await releaseSessions();
