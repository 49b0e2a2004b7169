/**
 * scripts/gpu-check.sh (issue 14.3) on this machine: without a GPU it exits 0 with "no GPU here" and names what is missing; its
 * TypeScript half, run cpu against cpu at quick sizes, trains every zoo model, compares the curves and runs 16 peers.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { quietProbe } from '../../src/engine/providers.ts';

const run = (cmd: string, args: string[]) => new Promise<{ code: number; stdout: string }>((resolve) => {
  execFile(cmd, args, { env: { ...process.env, COHORT_LOG_LEVEL: 'warn' }, maxBuffer: 1 << 24, timeout: 600_000 },
    (e, stdout) => resolve({ code: e ? Number(e.code ?? 1) : 0, stdout }));
});
const noGpu = !existsSync('/dev/nvidia0') && quietProbe('webgpu') !== undefined;

describe('npm run gpu-check', () => {
  it.skipIf(!noGpu)('on a CPU machine: exit 0, "no GPU here", and what is missing for cuda and webgpu', async () => {
    const r = await run('bash', ['scripts/gpu-check.sh']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^gpu-check: no GPU here/);
    expect(r.stdout).toMatch(/cuda: {3}no NVIDIA device \(\/dev\/nvidia0 absent/);
    expect(r.stdout).toMatch(/webgpu: no Vulkan loader \(libvulkan\.so\.1\)/);
    expect(r.stdout).not.toMatch(/PASS|FAIL/);
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
