/**
 * `cohort bench train`: train-step throughput of the Cohort engine (ORT, train graphs compiled by our autodiff) against
 * PyTorch CPU on the same architecture, loss (CE / Dice+BCE), optimizer (SGD momentum 0.9), batch and thread count
 * (2 threads). PyTorch is Debian's python3-torch run by /usr/bin/python3 (not a pyenv python earlier on PATH), kept as
 * one long-lived process so its start-up does not count. Runs are interleaved (ORT, torch, ORT, torch, ...) so both
 * see the same machine load; the figures are medians. Where torch is missing, the rows carry ORT alone and say so.
 * Both sides run with thread spinning off (ORT: allow_spinning 0; torch: OMP_WAIT_POLICY=PASSIVE): on a shared 2-core
 * machine torch's default active OpenMP wait made it up to 30x slower (MLP 4k vs 135k samples/s), which would flatter us.
 * Each model runs twice on the ORT side (issue 14.6): `fused` K steps per session run in one ONNX Loop, and `single` one step per
 * run as PyTorch does; `ratio` is the Trainer's default for the model (fused for the MLP, single steps for conv nets: what a
 * peer runs), `ratio_fused` and `ratio_single` compare like with like. The CNN applies max pool before ReLU on both sides.
 * The CPU model and its vector extensions are recorded with the figures: both sides pick kernels by them (PyTorch's oneDNN
 * runs AVX-512 kernels that block channels by 16 where the CPU has AVX-512), so ratios from different machines differ
 * (docs/engine.md, "Why the U-Net 2D ratio jumped").
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Trainer, releaseSessions, type ExecutionProviderName, type ModelSpec } from '../src/engine/index.ts';
import { Rng } from '../src/util/random.ts';
import type { SampleSet } from '../src/data/samples.ts';
import { median, type BenchSuite } from './suite.ts';

/** Debian's python3 with python3-torch; COHORT_BENCH_PYTHON overrides it (e.g. to check the ORT-only path). */
const PYTHON = process.env.COHORT_BENCH_PYTHON ?? '/usr/bin/python3';
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'torch', 'train_bench.py');
const THREADS = 2;

interface Case { name: string; spec: ModelSpec; input: number[]; batch: number; steps: number; fused: number }

const CASES: Case[] = [
  { name: 'mlp 30-64-2 (WDBC shape)', spec: { type: 'mlp', hidden: [64], classes: 2 }, input: [30], batch: 32, steps: 64, fused: 8 },
  { name: 'cnn2d 1x32x32', spec: { type: 'cnn2d', channels: [16, 32], classes: 10 }, input: [1, 32, 32], batch: 64, steps: 6, fused: 3 },
  { name: 'unet2d 1x64x64', spec: { type: 'unet2d', base: 8, depth: 2, norm: 'instance' }, input: [1, 64, 64], batch: 8, steps: 4, fused: 2 },
  { name: 'unet3d 1x32x32x32', spec: { type: 'unet3d', base: 4, depth: 2, norm: 'instance' }, input: [1, 32, 32, 32], batch: 2, steps: 2, fused: 2 },
];

function synthetic(c: Case, n: number): SampleSet {
  const rng = new Rng(1);
  const per = c.input.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: n * per }, () => rng.normal());
  if (c.spec.type.startsWith('unet')) {
    const mask = Float32Array.from({ length: n * per / c.input[0] }, () => (rng.next() > 0.7 ? 1 : 0));
    return { size: n, inputs: { image: { shape: c.input, data: x } }, targets: { mask: { shape: [1, ...c.input.slice(1)], data: mask } } };
  }
  const classes = (c.spec as { classes: number }).classes;
  const name = c.input.length === 1 ? 'features' : 'image';
  return { size: n, inputs: { [name]: { shape: c.input, data: x } }, targets: { label: { shape: [], data: Float32Array.from({ length: n }, () => rng.int(classes)) } } };
}

/** The long-lived PyTorch worker, or null (with the reason) where torch cannot be imported. */
class TorchWorker {
  private constructor(private readonly p: ChildProcessWithoutNullStreams, private readonly lines: AsyncIterator<string>, readonly version: string) {}

  static async start(): Promise<TorchWorker | string> {
    if (!existsSync(PYTHON)) return `${PYTHON} not found`;
    const p = spawn(PYTHON, [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: String(THREADS), OMP_WAIT_POLICY: 'PASSIVE' } });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const lines = createInterface({ input: p.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done) return `python3-torch is not importable (${stderr.trim().split('\n').pop() ?? 'no output'}); install it with apt-get install python3-torch`;
    return new TorchWorker(p, lines, (JSON.parse(first.value) as { torch: string }).torch);
  }

  async call(msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.p.stdin.write(JSON.stringify(msg) + '\n');
    const r = await this.lines.next();
    if (r.done) throw new Error('the PyTorch worker exited');
    const reply = JSON.parse(r.value) as Record<string, unknown>;
    if (reply.error) throw new Error(`PyTorch worker: ${String(reply.error)}`);
    return reply;
  }

  stop(): void { this.p.stdin.end(); }
}

/** A warm Trainer for case c with K steps per session run (1: one step per run, as PyTorch). */
async function warmTrainer(c: Case, data: SampleSet, K: number, providers: ExecutionProviderName[]): Promise<Trainer> {
  const t = await Trainer.create({ model: c.spec, loss: undefined, optimizer: { type: 'sgd', lr: 0.01, momentum: 0.9 },
    batchSize: c.batch, seed: 1, threads: THREADS, providers, fusedSteps: K }, data);
  await t.trainEpoch(data); // warm-up: builds and first-runs the sessions
  return t;
}

async function samplesPerS(c: Case, run: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await run();
  return (c.batch * c.steps) / ((performance.now() - t0) / 1000);
}

async function measureCase(c: Case, torch: TorchWorker | null, reps: number, providers: ExecutionProviderName[], log: (s: string) => void) {
  const data = synthetic(c, c.batch * c.steps);
  const fused = await warmTrainer(c, data, c.fused, providers);
  const single = await warmTrainer(c, data, 1, providers);
  if (torch) await torch.call({ cmd: 'setup', spec: c.spec, batch: c.batch, input: c.input, threads: THREADS });
  const of: number[] = [], os: number[] = [], pt: number[] = [];
  for (let r = 0; r < reps; r++) {
    // interleaved, the order rotating, so that all three see the same machine load
    const runs = [
      async () => of.push(await samplesPerS(c, () => fused.trainEpoch(data))),
      async () => os.push(await samplesPerS(c, () => single.trainEpoch(data))),
      async () => { if (torch) pt.push((c.batch * c.steps) / ((await torch.call({ cmd: 'run', steps: c.steps })).seconds as number)); },
    ];
    for (let k = 0; k < runs.length; k++) await runs[(r + k) % runs.length]();
  }
  const f = median(of), s1 = median(os), p = torch ? median(pt) : Number.NaN;
  // what Trainer.create picks when fusedSteps is not given: 8 for mlp, 1 otherwise
  const dflt = c.spec.type === 'mlp' ? f : s1;
  const ratio = (v: number): number | null => (torch ? Number((v / p).toFixed(3)) : null);
  log(`${c.name} batch ${c.batch}: ORT fused x${c.fused} ${f.toFixed(0)}, single ${s1.toFixed(0)} samples/s`
    + `${torch ? `, PyTorch ${p.toFixed(0)} samples/s, ratio fused ${(f / p).toFixed(2)} single ${(s1 / p).toFixed(2)}` : ''}`);
  const provider = fused.provider;
  const params = fused.layout.length;
  await fused.dispose();
  await single.dispose();
  return { model: c.name, batch: c.batch, provider, params, fused_steps: c.fused, ort_samples_per_s: round(dflt),
    ort_fused_samples_per_s: round(f), ort_single_samples_per_s: round(s1), torch_samples_per_s: torch ? round(p) : null,
    ratio: ratio(dflt), ratio_fused: ratio(f), ratio_single: ratio(s1) };
}

function round(v: number): number { return Number(v.toFixed(1)); }

/** The CPU the figures came from: model name and the vector extensions kernels are chosen by (Linux: /proc/cpuinfo). */
function cpuSummary(): { model: string; vector: string[] } {
  let flags: string[] = [];
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    flags = line ? line.split(':')[1].trim().split(/\s+/) : [];
  } catch { /* not Linux: the model name alone */ }
  return { model: cpus()[0]?.model ?? 'unknown', vector: ['avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_vnni'].filter((f) => flags.includes(f)) };
}

const suite: BenchSuite = {
  name: 'train',
  description: 'train-step throughput, Cohort engine (onnxruntime-node) vs PyTorch CPU, same model/batch/threads',
  async run(opts) {
    const log = (s: string): void => { if (opts.verbose) process.stderr.write(s + '\n'); };
    const providers = (process.env.COHORT_BENCH_PROVIDERS ?? 'cpu').split(',') as ExecutionProviderName[];
    const started = await TorchWorker.start();
    const torch = typeof started === 'string' ? null : started;
    if (typeof started === 'string') log(`PyTorch unavailable: ${started}; reporting ORT alone`);
    const reps = opts.quick ? 3 : 15;
    const loadBefore = loadavg()[0];
    const rows = [];
    try {
      // COHORT_BENCH_CASES=unet2d runs only the cases whose name contains one of the comma-separated words (A/B runs)
      const only = process.env.COHORT_BENCH_CASES?.split(',');
      for (const c of CASES.filter((k) => !only || only.some((w) => k.name.includes(w)))) rows.push(await measureCase(c, torch, reps, providers, log));
    } finally {
      torch?.stop();
      await releaseSessions();
    }
    return { suite: 'train', rows, threads: THREADS, repetitions: reps, optimizer: 'sgd momentum 0.9', torch_env: 'OMP_WAIT_POLICY=PASSIVE (spinning off, as ORT)',
      torch: torch ? `PyTorch ${torch.version} (${PYTHON})` : `unavailable: ${String(started)}`,
      // other work on the machine moves both sides (interleaving shares it out); a load far above `threads` means noisy figures
      load_average_1min: { before: round(loadBefore), after: round(loadavg()[0]) }, cpu: cpuSummary() };
  },
};

export default suite;
