/**
 * The GPU check's measuring half (scripts/gpu-check.sh decides first whether a GPU can run at all; issue 14.3).
 *   tsx scripts/gpu-check.ts --provider cuda|webgpu [--quick]    compare that provider with cpu
 *   tsx scripts/gpu-check.ts --provider cpu --quick              self-test of this script on a CPU machine (cpu against cpu)
 *   tsx scripts/gpu-check.ts --provider webgpu --software        webgpu on a software Vulkan device (lavapipe): the agreement
 *                                                               check at quick sizes; samples/s labelled as a CPU emulation, no speed-up
 *   --models mlp,cnn2d   only these models;   --no-peers   skip the 16-peer runs
 * For each zoo model (MLP, CNN, U-Net 2D, U-Net 3D): the same initial weights (same seed) and the same batches on the provider and
 * on cpu; the loss curves must agree at every step within |l_gpu - l_cpu| <= REL * |l_cpu| + ABS (float32 kernels differ in
 * summation order, and cuDNN may use TF32 for convolutions, hence 2%); samples/s for both and the speed-up. Then 16 peers on the
 * provider: the project's simulator (`cohort sim scenarios/wdbc-epidemic.json --peers 16`, COHORT_SIM_PROVIDERS, fallback 'error')
 * and 16 CNN trainers in one process (shared sessions, ring averaging after each local step: conv kernels on the GPU).
 * Exit 1 on a disagreement or an error, 0 otherwise; every figure printed comes from this run.
 */
import { Trainer, releaseSessions, type ModelSpec, type TrainConfig } from '../src/engine/index.ts';
import type { ExecutionProviderName } from '../src/engine/providers.ts';
import type { SampleSet } from '../src/data/samples.ts';
import { Rng } from '../src/util/random.ts';
import { execFile } from 'node:child_process';

const REL = 2e-2;
const ABS = 1e-4;

interface Case { name: string; model: ModelSpec; data: (n: number) => SampleSet; batch: number }

function images(n: number, shape: number[], seed: number, target: 'label' | 'mask'): SampleSet {
  const rng = new Rng(seed);
  const per = shape.reduce((a, b) => a * b, 1);
  const image = Float32Array.from({ length: n * per }, () => rng.normal());
  if (target === 'label') {
    return { size: n, inputs: { image: { shape, data: image } }, targets: { label: { shape: [], data: Float32Array.from({ length: n }, (_, i) => i % 2) } } };
  }
  // a mask that depends on the image (bright voxels), so the loss has something to learn
  return { size: n, inputs: { image: { shape, data: image } }, targets: { mask: { shape, data: image.map((v) => (v > 0.5 ? 1 : 0)) } } };
}

function tabular(n: number, d: number, seed: number): SampleSet {
  const rng = new Rng(seed);
  const x = Float32Array.from({ length: n * d }, () => rng.normal());
  const y = Float32Array.from({ length: n }, (_, i) => (x[i * d] + x[i * d + 1] > 0 ? 1 : 0));
  return { size: n, inputs: { features: { shape: [d], data: x } }, targets: { label: { shape: [], data: y } } };
}

function cases(quick: boolean): Case[] {
  const s = quick ? 0.5 : 1;
  return [
    { name: 'mlp', model: { type: 'mlp', hidden: [64], classes: 2 }, data: (n) => tabular(n, 30, 1), batch: 32 },
    { name: 'cnn2d', model: { type: 'cnn2d', channels: [16, 32], classes: 2 }, data: (n) => images(n, [1, 32 * s, 32 * s], 2, 'label'), batch: quick ? 8 : 64 },
    { name: 'unet2d', model: { type: 'unet2d', base: 8, depth: 2 }, data: (n) => images(n, [1, 64 * s, 64 * s], 3, 'mask'), batch: quick ? 2 : 8 },
    { name: 'unet3d', model: { type: 'unet3d', base: 8, depth: 2 }, data: (n) => images(n, [1, 32 * s, 32 * s, 32 * s], 4, 'mask'), batch: 2 },
  ];
}

async function curve(c: Case, provider: ExecutionProviderName, data: SampleSet, steps: number): Promise<{ losses: number[]; samplesPerS: number }> {
  const cfg: TrainConfig = { model: c.model, optimizer: { type: 'sgd', lr: 0.01, momentum: 0.9 }, batchSize: c.batch, seed: 7,
    providers: [provider], providerFallback: 'error', fusedSteps: 1, measurePlacement: provider !== 'cpu' };
  const t = await Trainer.create(cfg, data);
  const losses: number[] = [];
  const rng = new Rng(11); // the same batch order on both providers
  await t.trainSteps(data, steps, { rng, onStep: (_, l) => losses.push(l) });
  // speed: more steps after the curve (the sessions are warm now)
  const timed = steps * 2;
  const t0 = performance.now();
  await t.trainSteps(data, timed, { rng });
  const samplesPerS = (timed * c.batch) / ((performance.now() - t0) / 1000);
  const fallback = t.graphReports.map((r) => `${r.graph}: ${r.cpuFallbackNodes ?? '?'} of ${r.nodes ?? '?'} nodes on CPU`).join(', ');
  if (provider !== 'cpu') console.log(`  ${c.name} on ${t.provider}: ${fallback}`);
  await t.dispose();
  return { losses, samplesPerS };
}

interface Options { provider: ExecutionProviderName; quick: boolean; software: boolean; models?: string[]; peers: boolean }

async function compare(o: Options): Promise<boolean> {
  const { provider, quick, software } = o;
  let ok = true;
  const steps = quick ? 2 : 5;
  for (const c of cases(quick).filter((x) => !o.models || o.models.includes(x.name))) {
    const data = c.data(c.batch * 2);
    const dev = await curve(c, provider, data, steps);
    const cpu = await curve(c, 'cpu', data, steps);
    const worst = Math.max(...dev.losses.map((l, i) => Math.abs(l - cpu.losses[i]) / (REL * Math.abs(cpu.losses[i]) + ABS)));
    const rel = Math.max(...dev.losses.map((l, i) => Math.abs(l - cpu.losses[i]) / Math.abs(cpu.losses[i])));
    const speed = software
      ? `samples/s ${provider} ${dev.samplesPerS.toFixed(1)} (CPU emulation of the GPU kernels, not a GPU figure), cpu ${cpu.samplesPerS.toFixed(1)}`
      : `samples/s ${provider} ${dev.samplesPerS.toFixed(1)}, cpu ${cpu.samplesPerS.toFixed(1)}, speed-up ${(dev.samplesPerS / cpu.samplesPerS).toFixed(2)}x`;
    const agree = worst <= 1 && dev.losses.every(Number.isFinite);
    ok &&= agree;
    console.log(`${agree ? 'ok  ' : 'FAIL'} ${c.name.padEnd(7)} losses ${provider} [${dev.losses.map((l) => l.toFixed(5)).join(', ')}]`
      + ` cpu [${cpu.losses.map((l) => l.toFixed(5)).join(', ')}] (max relative difference ${rel.toExponential(1)},`
      + ` worst ${(worst * 100).toFixed(1)}% of the tolerance); ${speed}`);
  }
  return ok;
}

/** 16 peers on one provider: each takes a local step on its shard, then averages with its two ring neighbours. */
async function sixteenPeers(provider: ExecutionProviderName, quick: boolean): Promise<boolean> {
  const peers = 16, rounds = quick ? 2 : 5;
  const c = cases(quick)[1]; // the CNN: conv kernels on the device, small enough for 16 peers on any GPU
  const shards = Array.from({ length: peers }, (_, i) => images(c.batch, [1, quick ? 16 : 32, quick ? 16 : 32], 100 + i, 'label'));
  const cfg: TrainConfig = { model: c.model, optimizer: { type: 'sgd', lr: 0.01 }, batchSize: c.batch, seed: 3, providers: [provider], providerFallback: 'error', fusedSteps: 1 };
  const trainers = await Promise.all(shards.map((d) => Trainer.create(cfg, d)));
  const t0 = performance.now();
  let loss = NaN;
  for (let r = 0; r < rounds; r++) {
    const losses: number[] = [];
    for (const [i, t] of trainers.entries()) losses.push((await t.trainSteps(shards[i], 1)).loss);
    const x = trainers.map((t) => t.getParameters());
    trainers.forEach((t, i) => {
      const l = x[(i + peers - 1) % peers], m = x[i], n = x[(i + 1) % peers];
      t.setParameters(m.map((v, k) => (l[k] + v + n[k]) / 3));
    });
    loss = losses.reduce((a, b) => a + b, 0) / peers;
  }
  const seconds = (performance.now() - t0) / 1000;
  const ok = Number.isFinite(loss) && trainers.every((t) => t.provider === provider);
  console.log(`${ok ? 'ok  ' : 'FAIL'} 16 peers (${c.name}, ring averaging) on ${provider}: ${rounds} rounds in ${seconds.toFixed(2)} s, mean loss ${loss.toFixed(4)}`);
  await Promise.all(trainers.map((t) => t.dispose()));
  return ok;
}

/** The project's simulator, 16 peers, every engine session on `provider` (a provider that cannot run is an error there). */
function simulator(provider: ExecutionProviderName, quick: boolean): Promise<boolean> {
  const rounds = quick ? 2 : 5;
  const args = ['--import', 'tsx', 'src/cli/main.ts', 'sim', 'scenarios/wdbc-epidemic.json', '--peers', '16', '--rounds', String(rounds), '--no-baselines', '--json'];
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(process.execPath, args, { env: { ...process.env, COHORT_SIM_PROVIDERS: provider, COHORT_LOG_LEVEL: 'warn' }, maxBuffer: 1 << 26 }, (e, stdout, stderr) => {
      const seconds = (performance.now() - t0) / 1000;
      let mean = Number.NaN;
      try { mean = (JSON.parse(stdout) as { final: { mean: number } }).final.mean; } catch { /* reported below */ }
      const ok = !e && Number.isFinite(mean);
      console.log(`${ok ? 'ok  ' : 'FAIL'} cohort sim wdbc-epidemic, 16 peers on ${provider}: ${rounds} rounds in ${seconds.toFixed(1)} s`
        + (ok ? `, final accuracy mean ${mean.toFixed(4)}` : `: ${stderr.trim().split('\n').pop() ?? 'no output'}`));
      resolve(ok);
    });
  });
}

async function main(): Promise<void> {
  const arg = (k: string): string | undefined => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1] : undefined; };
  const provider = (arg('--provider') ?? 'cuda') as ExecutionProviderName;
  const software = process.argv.includes('--software');
  // lavapipe runs U-Net 3D ~100x slower than the cpu provider: full sizes would take many minutes and prove nothing more
  const quick = software || process.argv.includes('--quick');
  const o: Options = { provider, quick, software, peers: !process.argv.includes('--no-peers'), ...(arg('--models') ? { models: arg('--models')?.split(',') } : {}) };
  console.log(`gpu-check: ${provider} against cpu, tolerance |l_${provider} - l_cpu| <= ${REL} |l_cpu| + ${ABS} at every step${quick ? ' (quick sizes)' : ''}`);
  const ok = (await compare(o)) && (!o.peers || ((await sixteenPeers(provider, quick)) && (await simulator(provider, quick))));
  await releaseSessions();
  if (software) console.log('gpu-check: no GPU here: the speed-up was not measured (lavapipe runs the WebGPU kernels on the CPU)');
  console.log(ok ? 'gpu-check: PASS' : 'gpu-check: FAIL');
  process.exit(ok ? 0 : 1);
}

main().catch((e: unknown) => {
  console.error(`gpu-check: FAIL: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
