/**
 * Generic tables as a researcher runs them (real processes): `cohort sim --data FILE.csv --label COL` (classification) and
 * `--time COL --event COL [--site-column COL]` (survival) on small CSVs written here; `cohort train` with the survival flags.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { Rng } from '../../src/util/random.ts';

const run = promisify(execFile);
const cli = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args],
  { env: { ...process.env, COHORT_LOG_LEVEL: 'warn' }, maxBuffer: 1 << 24 });
const failure = (args: string[]) => cli(args).then(() => null, (e: { code: number; stderr: string }) => e);

const dir = mkdtempSync(join(tmpdir(), 'cohort-sim-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const rng = new Rng(17);

// classification: an id column, a unique text code per row (identifier-like), a categorical and numeric features, a yes/no label
const classFile = join(dir, 'clinic.csv');
writeFileSync(classFile, ['id,code,age,marker,sex,outcome', ...Array.from({ length: 160 }, (_, i) => {
  const marker = rng.normal();
  const age = 50 + 10 * rng.normal();
  const y = marker + 0.03 * (age - 50) + 0.5 * rng.normal() > 0 ? 'yes' : 'no';
  return `${i + 1},C${(i * 7919).toString(36)},${age.toFixed(1)},${marker.toFixed(3)},${i % 2 ? 'F' : 'M'},${y}`;
})].join('\n'));

// survival: log-hazard 1.5 * x1 - x2, exponential times, censoring, three hospitals
const survFile = join(dir, 'cohort.csv');
writeFileSync(survFile, ['patient_id,x1,x2,x3,hospital,months,death', ...Array.from({ length: 180 }, (_, i) => {
  const [x1, x2, x3] = [rng.normal(), rng.normal(), rng.normal()];
  const t = -Math.log(1 - rng.next()) / Math.exp(1.5 * x1 - x2) * 24;
  const c = -Math.log(1 - rng.next()) * 30;
  return `P${i},${x1.toFixed(3)},${x2.toFixed(3)},${x3.toFixed(3)},${['A', 'B', 'C'][i % 3]},${Math.min(t, c).toFixed(1)},${t <= c ? 1 : 0}`;
})].join('\n'));

interface SimJson {
  peers: number; final: { mean: number; metric: string }; baselines: Record<string, number | null>;
  per_site: { site: string; train: number; test: number; metric: number | null; local_only: number | null }[];
}

describe('cohort sim --data', () => {
  it('--label: a default MLP over 8 peers, identifier-like columns dropped with a note, per-peer entries', async () => {
    const { stdout, stderr } = await cli(['sim', '--data', classFile, '--label', 'outcome', '--peers', '8', '--json']);
    const j = JSON.parse(stdout) as SimJson;
    // the documented keys in order, per_site right after baselines (later keys may follow)
    expect(Object.keys(j).slice(0, 8)).toEqual(['algorithm', 'peers', 'rounds', 'final', 'baselines', 'per_site', 'bytes_sent_per_peer', 'consensus_distance']);
    expect(j.peers).toBe(8);
    expect(j.final.metric).toBe('auc');
    expect(j.final.mean).toBeGreaterThan(0.7);
    expect(j.per_site.map((s) => s.site)).toEqual(Array.from({ length: 8 }, (_, k) => `peer-${k + 1}`));
    expect(j.per_site.every((s) => s.test === 32)).toBe(true); // the pooled test set (20% of 160)
    expect(stderr).toMatch(/note: dropped identifier-like column\(s\): id, code/);
  });

  it('--time/--event with --site-column: linear Cox, one peer per hospital, c_index overall and per site', async () => {
    const { stdout } = await cli(['sim', '--data', survFile, '--time', 'months', '--event', 'death', '--site-column', 'hospital', '--json']);
    const j = JSON.parse(stdout) as SimJson;
    expect(j.peers).toBe(3);
    expect(j.final.metric).toBe('c_index');
    expect(j.final.mean).toBeGreaterThan(0.65);
    expect(j.baselines.centralised).toBeGreaterThan(0.65);
    expect(j.per_site.map((s) => s.site).sort()).toEqual(['A', 'B', 'C']);
    expect(j.per_site.reduce((a, s) => a + s.train + s.test, 0)).toBe(180);
    for (const s of j.per_site) expect(s.metric).toBeGreaterThan(0.5);
  });

  it('refuses what does not fit, with hints', async () => {
    expect((await failure(['sim', '--data', survFile]))?.stderr).toMatch(/needs --label COL \(classification\) or --time COL --event COL/);
    expect((await failure(['sim', '--data', survFile, '--time', 'months']))?.stderr).toMatch(/needs both --time and --event/);
    expect((await failure(['sim', '--data', survFile, '--time', 'months', '--event', 'death', '--site-column', 'hospital', '--peers', '4']))?.stderr)
      .toMatch(/--peers does not apply with --site-column/);
    expect((await failure(['sim', '--data', survFile, '--time', 'months', '--event', 'x2']))?.stderr).toMatch(/event column 'x2' holds/);
  });
});

describe('cohort train --time/--event', () => {
  it('trains a linear Cox model, reports the held-out C-index and exports a model whose output is the risk score', async () => {
    const file = join(dir, 'cox.onnx');
    const { stdout } = await cli(['train', '--data', survFile, '--time', 'months', '--event', 'death', '--epochs', '15', '--export', file, '--json']);
    const r = JSON.parse(stdout) as { task: string; test: { c_index: number }; train: { samples: number; events: number }; testSamples: number; dropped: string[] };
    expect(r.task).toBe('survival');
    expect(r.test.c_index).toBeGreaterThan(0.65);
    expect(r.train.samples + r.testSamples).toBe(180);
    expect(r.dropped).toEqual(['patient_id']);
    const s = await ort.InferenceSession.create(readFileSync(file));
    expect(s.outputNames).toEqual(['risk']);
    // the self-contained export reads raw columns: numeric x1, x2, x3 and the categorical hospital (standardiser and one-hot in-graph)
    expect(s.inputNames).toEqual(['features', 'categories']);
    const hospital = new ort.Tensor('string', ['A'], [1, 1]);
    const hi = await s.run({ features: new ort.Tensor('float32', Float32Array.from([2, -2, 0]), [1, 3]), categories: hospital });
    const lo = await s.run({ features: new ort.Tensor('float32', Float32Array.from([-2, 2, 0]), [1, 3]), categories: hospital });
    expect((hi.risk.data as Float32Array)[0]).toBeGreaterThan((lo.risk.data as Float32Array)[0]);
    await s.release();
  });
});
