/**
 * scripts/gpu-check.sh (issue 14.3) on this machine: without a GPU it exits 0 with "no GPU here" and names what is missing; on
 * a software Vulkan device (lavapipe) it runs the webgpu-vs-cpu agreement check, labelled correctness only; its TypeScript half,
 * run cpu against cpu at quick sizes, trains every zoo model, compares the curves and runs 16 peers.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { vulkanKind } from '../../src/engine/providers.ts';

const run = (cmd: string, args: string[], env: Record<string, string> = {}) => new Promise<{ code: number; stdout: string }>((resolve) => {
  execFile(cmd, args, { env: { ...process.env, COHORT_LOG_LEVEL: 'warn', ...env }, maxBuffer: 1 << 24, timeout: 600_000 },
    (e, stdout) => resolve({ code: e ? Number(e.code ?? 1) : 0, stdout }));
});
const noCuda = !existsSync('/dev/nvidia0');
const kind = vulkanKind();

describe('npm run gpu-check', () => {
  it.skipIf(!noCuda || kind === 'hardware')('without a GPU and without a Vulkan driver: exit 0, "no GPU here", and what is missing for cuda and webgpu', async () => {
    // VK_DRIVER_FILES naming no file hides any installed ICD (lavapipe): the machine as CI saw it before mesa-vulkan-drivers
    const r = await run('bash', ['scripts/gpu-check.sh'], { VK_DRIVER_FILES: '/nonexistent/cohort-no-icd.json' });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^gpu-check: no GPU here, nothing to compare/);
    expect(r.stdout).toMatch(/cuda: {3}no NVIDIA device \(\/dev\/nvidia0 absent/);
    expect(r.stdout).toMatch(kind === 'no-loader' ? /webgpu: no Vulkan loader \(libvulkan\.so\.1/ : /webgpu: a Vulkan loader but no Vulkan driver \(no ICD/);
    expect(r.stdout).not.toMatch(/PASS|FAIL/);
  });

  it.skipIf(!noCuda || kind !== 'software')('on a software Vulkan device (lavapipe): the agreement check runs, labelled correctness only, speed "no GPU here"', async () => {
    const r = await run('bash', ['scripts/gpu-check.sh'], { GPU_CHECK_ARGS: '--models mlp,cnn2d --no-peers' });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^gpu-check: no GPU here/);
    if (!/correctness only/.test(r.stdout)) {
      // a lavapipe Dawn refuses (Mesa < 23): gpu-check names Dawn's reason instead of running
      expect(r.stdout).toMatch(/webgpu: WebGPU could not create a session: .*software Vulkan device: lavapipe/);
      return;
    }
    expect(r.stdout).toMatch(/^gpu-check: WebGPU on a software Vulkan device \(lavapipe [^)]*\): correctness only, not speed$/m);
    for (const m of ['mlp', 'cnn2d']) {
      expect(r.stdout).toMatch(new RegExp(`^ok {3}${m} +losses webgpu \\[.*max relative difference .*samples/s webgpu [\\d.]+ \\(CPU emulation`, 'm'));
      expect(r.stdout).toMatch(new RegExp(`^  ${m} on webgpu: step\\|\\d+: \\d+ of \\d+ nodes on CPU`, 'm'));
    }
    expect(r.stdout).not.toMatch(/speed-up \d/);
    expect(r.stdout).toMatch(/^gpu-check: no GPU here: the speed-up was not measured/m);
    expect(r.stdout.trim().split('\n').pop()).toBe('gpu-check: PASS');
  });

  it('the comparison itself (cpu against cpu, quick sizes): four models agree, 16 peers train, PASS', async () => {
    const r = await run(process.execPath, ['--import', 'tsx', 'scripts/gpu-check.ts', '--provider', 'cpu', '--quick']);
    expect(r.code).toBe(0);
    for (const m of ['mlp', 'cnn2d', 'unet2d', 'unet3d']) expect(r.stdout).toMatch(new RegExp(`^ok {3}${m} +losses cpu \\[`, 'm'));
    expect(r.stdout).toMatch(/^ok {3}16 peers \(cnn2d, ring averaging\) on cpu: 2 rounds/m);
    expect(r.stdout).toMatch(/speed-up \d+\.\d+x/);
    expect(r.stdout).toMatch(/^ok {3}cohort sim wdbc-epidemic, 16 peers on cpu: 2 rounds in [\d.]+ s, final accuracy mean 0\.\d+/m);
    expect(r.stdout.trim().split('\n').pop()).toBe('gpu-check: PASS');
  });
});
