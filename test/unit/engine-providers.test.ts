/**
 * Issue 14.1/14.2: provider selection that never fails silently, node placement from ORT's profile, and the device-resident
 * weights' host-side logic (run on the cpu provider, where the resident tensors are host tensors: same results as the copying path).
 */
import { execFile } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { Trainer, releaseSessions, type TrainConfig } from '../../src/engine/index.ts';
import { createSession, providersFromEnv, quietProbe, vulkanKind, WEBGPU_SOFTWARE_ENV } from '../../src/engine/providers.ts';
import { cpuFallbackNodes, placementFromProfile } from '../../src/engine/placement.ts';
import { GraphBuilder } from '../../src/engine/graph/index.ts';
import { CohortError } from '../../src/util/errors.ts';
import { ellipses, tabular } from './engine-fixtures.ts';

afterAll(releaseSessions);

const noCuda = quietProbe('cuda') !== undefined;
const noWebgpu = quietProbe('webgpu') !== undefined;

function tinyModel(): Uint8Array {
  const g = new GraphBuilder('tiny');
  g.output(g.relu(g.input('x', [2, 3])), 'y');
  return g.toModelProto();
}

describe('provider fallback policy', () => {
  it.skipIf(!noCuda)("fallback 'error': cuda without the CUDA provider is PROVIDER_UNAVAILABLE with the reason and a hint", async () => {
    const e = await createSession(tinyModel(), ['cuda'], 1, 'error').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CohortError);
    expect((e as CohortError).code).toBe('PROVIDER_UNAVAILABLE');
    expect((e as CohortError).message).toMatch(/cuda is unavailable here \(cuda: the CUDA provider is not installed/);
    expect((e as CohortError).hint).toMatch(/CUDA 12 \+ cuDNN 9 and `npm run setup:gpu`/);
  });

  it.skipIf(!noWebgpu)("fallback 'error': webgpu without a usable Vulkan device names what is missing", async () => {
    const e = await createSession(tinyModel(), ['webgpu', 'cpu'], 1, 'error').catch((x: unknown) => x);
    expect((e as CohortError).code).toBe('PROVIDER_UNAVAILABLE');
    const why = { 'no-loader': /webgpu: no Vulkan loader/, 'no-driver': /webgpu: a Vulkan loader but no Vulkan driver/,
      software: /webgpu: only a software Vulkan device .*COHORT_WEBGPU_SOFTWARE=1/, hardware: /webgpu: / }[vulkanKind()];
    expect((e as CohortError).message).toMatch(why);
  });

  it('a software Vulkan device (lavapipe: loader + ICD, no GPU device node) is used only when COHORT_WEBGPU_SOFTWARE=1', () => {
    const saved = process.env[WEBGPU_SOFTWARE_ENV];
    try {
      delete process.env[WEBGPU_SOFTWARE_ENV];
      const refusedBySoftware = quietProbe('webgpu');
      process.env[WEBGPU_SOFTWARE_ENV] = '1';
      if (vulkanKind() === 'software') {
        expect(refusedBySoftware).toMatch(/^only a software Vulkan device/);
        expect(quietProbe('webgpu')).toBeUndefined();
      } else {
        // no loader / no driver: still refused with the reason; a GPU: never refused by the probe
        expect(quietProbe('webgpu')).toBe(refusedBySoftware);
      }
    } finally {
      if (saved === undefined) delete process.env[WEBGPU_SOFTWARE_ENV]; else process.env[WEBGPU_SOFTWARE_ENV] = saved;
    }
  });

  it.skipIf(!noCuda)("fallback 'cpu': cuda alone falls back to cpu and says why", async () => {
    const s = await createSession(tinyModel(), ['cuda'], 1, 'cpu');
    expect(s.provider).toBe('cpu');
    expect(s.refused).toEqual([expect.stringMatching(/^cuda: the CUDA provider is not installed/)]);
    await s.session.release();
  });

  it('providers from an environment variable (the simulator): unset -> the default with cpu fallback; named -> fallback error; unknown -> BAD_PROVIDER', () => {
    const v = 'COHORT_TEST_PROVIDERS';
    try {
      delete process.env[v];
      expect(providersFromEnv(v, ['cpu'])).toEqual({ providers: ['cpu'], providerFallback: 'cpu' });
      process.env[v] = 'cuda, cpu';
      expect(providersFromEnv(v, ['cpu'])).toEqual({ providers: ['cuda', 'cpu'], providerFallback: 'error' });
      process.env[v] = 'cuda,tpu';
      expect(() => providersFromEnv(v, ['cpu'])).toThrow(/COHORT_TEST_PROVIDERS: unknown execution provider 'tpu'/);
    } finally {
      delete process.env[v];
    }
  });

  it('an empty provider list is a clear error', async () => {
    await expect(createSession(tinyModel(), [], 1)).rejects.toMatchObject({ code: 'BAD_PROVIDER' });
  });

  it.skipIf(!noCuda)("a Trainer with providers ['cuda'] and fallback 'error' refuses at creation; with 'cpu' it reports the fallback per graph", async () => {
    const data = tabular(20, 4, 1);
    const base: TrainConfig = { model: { type: 'mlp', hidden: [4], classes: 2 }, optimizer: { type: 'sgd', lr: 0.1 }, batchSize: 8, seed: 1, providers: ['cuda'] };
    await expect(Trainer.create({ ...base, providerFallback: 'error' }, data)).rejects.toMatchObject({ code: 'PROVIDER_UNAVAILABLE' });
    const t = await Trainer.create({ ...base, providerFallback: 'cpu' }, data);
    await t.trainEpoch(data);
    await t.evaluate(data);
    const reports = t.graphReports;
    expect(reports.map((r) => r.graph).sort()).toEqual(['eval|8', 'eval|4', 'step|4', 'step|8'].sort());
    for (const r of reports) {
      expect(r.provider).toBe('cpu');
      expect(r.cpuFallbackNodes).toBe(0);
      expect(r.refused[0]).toMatch(/^cuda: /);
    }
  });
});

describe('node placement from the ORT profile', () => {
  it('counts distinct nodes per provider; on a GPU provider the CPU ones are the fallback', () => {
    const ev = (node: string, provider: string) => ({ cat: 'Node', name: `${node}_kernel_time`, args: { provider } });
    const p = placementFromProfile([ev('a', 'CUDAExecutionProvider'), ev('b', 'CPUExecutionProvider'), ev('a', 'CUDAExecutionProvider'),
      ev('c', 'CUDAExecutionProvider'), { cat: 'Session', name: 'model_run' }, { cat: 'Node', name: 'a_fence_before', args: {} }]);
    expect(p).toEqual({ nodes: 3, byProvider: { CUDAExecutionProvider: 2, CPUExecutionProvider: 1 } });
    expect(cpuFallbackNodes('cuda', p)).toBe(1);
    expect(cpuFallbackNodes('cpu', p)).toBe(0);
    expect(placementFromProfile('not a profile')).toEqual({ nodes: 0, byProvider: {} });
  });

  it('measurePlacement profiles each graph once (real ORT profile): every node of a cpu session on CPUExecutionProvider', async () => {
    const data = ellipses(4, [8, 8], 1);
    const t = await Trainer.create({ model: { type: 'unet2d', base: 2, depth: 1 }, optimizer: { type: 'adam', lr: 1e-3 }, batchSize: 4, seed: 2,
      providers: ['cpu'], measurePlacement: true }, data);
    await t.trainSteps(data, 2);
    const step = t.graphReports.find((r) => r.graph === 'step|4');
    expect(step?.provider).toBe('cpu');
    expect(step?.nodes).toBeGreaterThan(50);
    expect(step?.cpuFallbackNodes).toBe(0);
  });
});

describe('device-resident weights (host-side logic on the cpu provider)', () => {
  const run = async (deviceResident: boolean, lr: number): Promise<{ t: Trainer; error?: unknown }> => {
    const data = tabular(40, 5, 3);
    const t = await Trainer.create({ model: { type: 'mlp', hidden: [6], classes: 2 }, optimizer: lr > 1 ? { type: 'sgd', lr } : { type: 'adam', lr }, batchSize: 8, seed: 4,
      providers: ['cpu'], deviceResident }, data);
    let error: unknown;
    try {
      await t.trainEpoch(data);              // 5 batches: one fused Loop would need 8, so these are single steps
      await t.trainSteps(data, 16);          // two fused chunks of 8
    } catch (e) { error = e; }
    return { t, error };
  };

  it('gives bit-identical parameters, optimizer state and checkpoints to the copying path (single steps and fused Loops, Adam)', async () => {
    const a = (await run(true, 0.01)).t, b = (await run(false, 0.01)).t;
    expect(a.deviceResident).toBe(true);
    expect(b.deviceResident).toBe(false);
    expect(a.steps).toBe(21);
    expect(Buffer.from(a.getParameters().buffer).equals(Buffer.from(b.getParameters().buffer))).toBe(true);
    expect(Buffer.from(a.checkpoint()).equals(Buffer.from(b.checkpoint()))).toBe(true);
    expect(a.getParameters()).not.toEqual((await Trainer.create({ model: { type: 'mlp', hidden: [6], classes: 2 }, optimizer: { type: 'adam', lr: 0.01 },
      batchSize: 8, seed: 4, providers: ['cpu'] }, tabular(40, 5, 3))).getParameters());
  });

  it('setParameters and restore replace the resident tensors (the next step starts from the host values)', async () => {
    const data = tabular(40, 5, 3);
    const mk = (deviceResident: boolean) => Trainer.create({ model: { type: 'mlp', hidden: [6], classes: 2 }, optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 },
      batchSize: 8, seed: 4, providers: ['cpu'], deviceResident }, data);
    const a = await mk(true), b = await mk(false);
    const ck = a.checkpoint();
    await a.trainSteps(data, 3);
    a.restore(ck);
    const v = a.getParameters().map((x) => x * 0.5);
    a.setParameters(v); b.setParameters(v);
    await a.trainSteps(data, 4); await b.trainSteps(data, 7);
    await b.trainSteps(data, 0);
    // a: 3 steps discarded by restore, then 4; b: 7 from the same host values but a different batch order, so compare a fresh pair
    const c = await mk(true), d = await mk(false);
    c.setParameters(v); d.setParameters(v);
    await c.trainSteps(data, 4); await d.trainSteps(data, 4);
    expect(c.getParameters()).toEqual(d.getParameters());
    expect(a.steps).toBe(4);
  });

  it('divergence: NON_FINITE_LOSS in both modes; the resident host keeps finite weights of a synchronisation and counts its steps', async () => {
    const a = await run(true, 1e30), b = await run(false, 1e30);
    expect(a.error).toMatchObject({ code: 'NON_FINITE_LOSS' });
    expect(b.error).toMatchObject({ code: 'NON_FINITE_LOSS' });
    expect(a.t.getParameters().every(Number.isFinite)).toBe(true);
    expect(b.t.getParameters().every(Number.isFinite)).toBe(true);
    // the copying path stops at the bad step; the resident path at the bad step or at the last synchronisation before it
    expect(a.t.steps).toBeLessThanOrEqual(b.t.steps);
    const fresh = await run(false, 1e30);
    expect(fresh.t.steps).toBe(b.t.steps);
  });
});

describe('cohort train --json reports providers per graph', () => {
  const cli = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'train', '--data', 'data/wdbc.csv', '--label', 'diagnosis', '--epochs', '1', '--json', ...args],
      { env: { ...process.env, COHORT_LOG_LEVEL: 'warn' }, maxBuffer: 1 << 24 }, (e, stdout, stderr) => resolve({ code: e ? Number(e.code) : 0, stdout, stderr }));
  });

  it.skipIf(!noCuda)("--providers cuda --provider-fallback error exits 2 naming the provider; with cpu fallback each graph says cpu, why, and 0 CPU-fallback nodes", async () => {
    const bad = await cli(['--providers', 'cuda', '--provider-fallback', 'error']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/execution provider cuda is unavailable here/);
    const ok = await cli(['--providers', 'cuda']);
    expect(ok.code).toBe(0);
    // an explicit list that falls back is a warning (visible at the default warn level), never silent
    expect(ok.stderr).toMatch(/execution provider cuda is unavailable; falling back to cpu/);
    const r = JSON.parse(ok.stdout) as { provider: string; graphs: { graph: string; provider: string; nodes: number; cpuFallbackNodes: number; refused: string[] }[] };
    expect(r.provider).toBe('cpu');
    expect(r.graphs.map((g) => g.graph)).toEqual(expect.arrayContaining(['step|32', 'loop|32|8', 'eval|32']));
    for (const g of r.graphs) {
      expect(g).toMatchObject({ provider: 'cpu', cpuFallbackNodes: 0 });
      expect(g.nodes).toBeGreaterThan(0);
      expect(g.refused[0]).toMatch(/^cuda: /);
    }
  });
});
