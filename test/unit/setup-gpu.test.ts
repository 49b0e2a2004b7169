/**
 * `npm run setup:gpu` (issue 14.1): the environment it gives onnxruntime-node's installer must make the installer's own flag parser
 * return 'cuda12', even when npm or CI pass `skip` (ONNXRUNTIME_NODE_INSTALL, npm_config_onnxruntime_node_install from an .npmrc).
 * onnxruntime-node 1.30's parser returns nothing for ONNXRUNTIME_NODE_INSTALL=cuda12 (the old setting), which under `npm run`
 * made the installer exit 0 at once without installing anything; the first case pins that down.
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** What the installer's parseInstallFlag returns in a child whose environment is `env` (after setup-gpu's installerEnv if asked). */
const parsedFlag = (env: Record<string, string>, throughSetup: boolean) => new Promise<string>((resolve, reject) => {
  const code = `
    const { installerEnv } = await import('./scripts/setup-gpu.mjs');
    const { createRequire } = await import('node:module');
    const req = createRequire(process.cwd() + '/package.json');
    const env = ${throughSetup ? 'installerEnv(process.env)' : 'process.env'};
    for (const k of Object.keys(process.env)) if (!(k in env)) delete process.env[k];
    Object.assign(process.env, env);
    const { parseInstallFlag } = req('onnxruntime-node/script/install-utils.js');
    console.log(JSON.stringify(parseInstallFlag() ?? 'undefined'));`;
  execFile(process.execPath, ['--input-type=module', '-e', code], { env: { PATH: process.env.PATH ?? '', ...env } },
    (e, stdout, stderr) => (e ? reject(new Error(stderr)) : resolve(JSON.parse(stdout.trim()) as string)));
});

const npmLike = { npm_package_json: `${process.cwd()}/package.json`, npm_config_local_prefix: process.cwd() };

describe('setup:gpu hands the installer a flag it parses', () => {
  it('the old setting ONNXRUNTIME_NODE_INSTALL=cuda12 parses as "no flag" (why setup:gpu was a silent no-op)', async () => {
    expect(await parsedFlag({ ...npmLike, ONNXRUNTIME_NODE_INSTALL: 'cuda12' }, false)).toBe('undefined');
  });

  it("installerEnv parses as 'cuda12', also with skip inherited from CI and from an .npmrc", async () => {
    expect(await parsedFlag({ ...npmLike }, true)).toBe('cuda12');
    expect(await parsedFlag({ ...npmLike, ONNXRUNTIME_NODE_INSTALL: 'skip', npm_config_onnxruntime_node_install: 'skip',
      npm_config_onnxruntime_node_install_cuda: 'skip' }, true)).toBe('cuda12');
  });
});
