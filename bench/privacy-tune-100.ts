/**
 * How the settings of scenarios/wdbc-dp-small.json (100 peers of ~4.5 WDBC patients, DP-SGD) were chosen (docs/privacy.md,
 * "Small sites" and Measurements > Utility): each setting is run on TUNING seeds only (101..110; the reported seeds are 1..5 and
 * are never run here), at epsilon 8 and without DP, and every run is appended as one JSON line to
 * bench/results/privacy-tune-100.jsonl (setting, seed, epsilon, final mean over peers, consensus distance, noise multiplier,
 * epsilon spent, load average, UTC time, wall and CPU time).
 *
 *   TUNE_SETTINGS='[{"hidden":[],"lr":0.1,"clip":0.3}]' TUNE_SEEDS=101,102,103 TUNE_EPS=8,inf npx tsx bench/privacy-tune-100.ts
 *
 * A setting patches the base scenario (TUNE_SCENARIO, default scenarios/wdbc-dp-small.json): `hidden` (model.hidden; [] is
 * logistic regression), `lr`, `optimizer` ("adam" | "sgd"), `momentum` (sgd), `clip`, `batch` (training.batchSize), `rounds`
 * (rounds.max), `trainRounds` (privacy.dp.trainRounds: DP rounds; the later rounds only average), `degree` (a random regular
 * graph of that degree), `cosine` (cosine learning-rate decay to 0 over that many steps). Unset fields keep the base's.
 * Knobs: TUNE_PEERS=100, TUNE_OUT=bench/results/privacy-tune-100.jsonl ("-" for stdout only).
 */
import { appendFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { loadManifest, parseManifest, type ScenarioManifest as Manifest } from '../src/scenario/manifest.ts';
import { runScenarioSim } from '../src/sim/run.ts';
import { releaseSessions } from '../src/engine/index.ts';

export interface TuneSetting {
  readonly hidden?: number[];
  readonly lr?: number;
  readonly optimizer?: 'adam' | 'sgd';
  readonly momentum?: number;
  readonly clip?: number;
  readonly batch?: number;
  readonly rounds?: number;
  readonly trainRounds?: number;
  /** optimizer.schedule.cosineSteps: cosine decay of the learning rate to 0 over this many steps. */
  readonly cosine?: number;
  /** averaging.topology: a random regular graph of this degree. */
  readonly degree?: number;
}

/** The base scenario with `s` applied, at `epsilon` (Infinity: no DP, masking kept as the base has it), validated as a manifest. */
export function patched(base: Manifest, s: TuneSetting, epsilon: number): Manifest {
  const model = s.hidden !== undefined ? { ...base.model, hidden: s.hidden } : base.model;
  const optType = s.optimizer ?? base.optimizer.type;
  const optimizer = {
    ...(optType === base.optimizer.type ? base.optimizer : {}),
    type: optType,
    ...(s.lr !== undefined ? { lr: s.lr } : {}),
    ...(s.momentum !== undefined ? { momentum: s.momentum } : {}),
    ...(s.cosine !== undefined ? { schedule: { cosineSteps: s.cosine } } : {}),
  };
  const training = s.batch !== undefined ? { ...base.training, batchSize: s.batch } : base.training;
  const rounds = s.rounds !== undefined ? { ...base.rounds, max: s.rounds } : base.rounds;
  const averaging = s.degree !== undefined ? { ...base.averaging, topology: { kind: 'random-regular', degree: s.degree } } : base.averaging;
  const secure = base.privacy?.secure ?? false;
  const baseDp = base.privacy?.dp;
  const privacy = Number.isFinite(epsilon)
    ? {
        secure,
        dp: {
          ...baseDp,
          epsilon,
          delta: baseDp?.delta ?? 1e-5,
          clip: s.clip ?? baseDp?.clip ?? 1,
          ...(s.trainRounds !== undefined ? { trainRounds: s.trainRounds } : {}),
        },
      }
    : { secure };
  return parseManifest({ ...base, model, optimizer, training, rounds, averaging, privacy }, 'tuning setting');
}

const r4 = (x: number): number => Math.round(x * 1e4) / 1e4;

async function main(): Promise<void> {
  const scenario = process.env.TUNE_SCENARIO ?? 'scenarios/wdbc-dp-small.json';
  const base = loadManifest(scenario);
  const settings = JSON.parse(process.env.TUNE_SETTINGS ?? '[{}]') as TuneSetting[];
  const seeds = (process.env.TUNE_SEEDS ?? '101,102,103').split(',').map(Number);
  const epsilons = (process.env.TUNE_EPS ?? '8').split(',').map((e) => (e === 'inf' ? Infinity : Number(e)));
  const peers = Number(process.env.TUNE_PEERS ?? 100);
  const out = process.env.TUNE_OUT ?? 'bench/results/privacy-tune-100.jsonl';
  if (seeds.some((s) => s >= 1 && s <= 5)) throw new Error('seeds 1-5 are the reported seeds: tune on 101.. only');
  for (const s of settings) {
    for (const eps of epsilons) {
      for (const seed of seeds) {
        const m = patched(base, s, eps);
        const load0 = loadavg()[0]!;
        const cpu0 = process.cpuUsage();
        const t0 = Date.now();
        const r = await runScenarioSim(m, { peers, seed, baselines: false, rounds: m.rounds.max, evalEvery: m.rounds.max });
        const cpu = process.cpuUsage(cpu0);
        const dp = r.privacy?.dp;
        const line = {
          scenario, setting: s, peers, epsilon: Number.isFinite(eps) ? eps : 'inf', seed,
          mean: r4(r.final.mean), min: r4(r.final.min), max: r4(r.final.max), meanModel: r4(r.details.mean_model_metric),
          cons: r.consensus_distance, parameters: r.details.parameters,
          ...(dp ? { sigma: dp.noise_multiplier, spent: dp.epsilon_spent } : {}),
          load: [r4(load0), r4(loadavg()[0]!)], utc: new Date().toISOString(), wall: Date.now() - t0,
          cpu_s: r4((cpu.user + cpu.system) / 1e6),
        };
        const text = JSON.stringify(line);
        process.stdout.write(text + '\n');
        if (out !== '-') appendFileSync(out, text + '\n');
      }
    }
  }
  await releaseSessions();
}

await main();
