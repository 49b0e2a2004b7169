/**
 * On a machine without the CUDA provider and without a Vulkan loader (CPU-only), the default provider list (cuda, webgpu, cpu)
 * is probed quietly: no red "Failed to load library" from onnxruntime, no Vulkan warning from Dawn, one line naming what runs.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { quietProbe } from '../../src/engine/providers.ts';

const run = promisify(execFile);
const cpuOnly = quietProbe('cuda') !== undefined && quietProbe('webgpu') !== undefined;

describe('execution providers on a CPU-only machine', () => {
  it('cpu is always worth trying; the probe names why cuda and webgpu cannot run here', () => {
    expect(quietProbe('cpu')).toBeUndefined();
    if (cpuOnly) {
      expect(quietProbe('cuda')).toMatch(/setup:gpu/);
      expect(quietProbe('webgpu')).toMatch(/Vulkan/);
    }
  });

  it.skipIf(!cpuOnly)('`cohort train` with the default providers prints no onnxruntime or Dawn noise, one line for the fallback', async () => {
    const { stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'train', '--data', 'data/wdbc.csv', '--label', 'diagnosis', '--epochs', '1', '--json'],
      { env: { ...process.env, COHORT_LOG_LEVEL: 'info' }, maxBuffer: 1 << 24 });
    // only the logger's JSON lines: nothing printed by onnxruntime or Dawn themselves
    expect(stderr.split('\n').filter((l) => l.trim() && !l.startsWith('{'))).toEqual([]);
    expect(stderr).not.toMatch(/Failed to load|provider_bridge|\[E:onnxruntime/);
    const lines = stderr.split('\n').filter((l) => l.includes('engine:providers'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/execution provider cuda, webgpu are unavailable; falling back to cpu/);
    expect(stderr).toMatch(/training mlp on cpu/);
  });
});
