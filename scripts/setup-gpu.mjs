// `npm run setup:gpu`: download onnxruntime-node's CUDA 12 execution provider binaries (a hospital machine with CUDA 12 + cuDNN 9;
// docs/engine.md "GPU").
// `npm ci` never runs onnxruntime-node's install script (package.json allowScripts denies it; CI also exports
// ONNXRUNTIME_NODE_INSTALL=skip), so that a plain install stays offline.
//
// Why the variable is ONNXRUNTIME_NODE_INSTALL_CUDA=v12 and not ONNXRUNTIME_NODE_INSTALL=cuda12: onnxruntime-node 1.30's
// parseInstallFlag (script/install-utils.js) has no `return` for a named value such as `cuda12`, so the installer sees "no flag";
// under `npm run` (npm_package_json set: a "local install") it then exits 0 at once and installs nothing. Measured here: 0.44 s, exit
// 0, no file. The deprecated CUDA variable is parsed correctly (v12 -> 'cuda12'), and it is only read when ONNXRUNTIME_NODE_INSTALL
// and npm_config_onnxruntime_node_install are both unset, so both are removed (an inherited `skip`, e.g. from CI, would win).
// After the installer this script checks that the provider library is really there: a silent no-op cannot pass as success.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const installer = require.resolve('onnxruntime-node/script/install.js');

/** The environment the installer runs in: the one variable it parses correctly set, the ones that would override it removed. */
export function installerEnv(base) {
  const env = { ...base, ONNXRUNTIME_NODE_INSTALL_CUDA: 'v12' };
  for (const k of ['ONNXRUNTIME_NODE_INSTALL', 'npm_config_onnxruntime_node_install', 'npm_config_onnxruntime_node_install_cuda']) delete env[k];
  return env;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main(process.argv[2] ?? 'cuda12');

function main(flavour) {
  if (flavour !== 'cuda12') fail(`unknown flavour '${flavour}': onnxruntime-node 1.30 offers only cuda12`);
  if (`${process.platform}/${process.arch}` !== 'linux/x64') fail(`the CUDA provider download exists for linux/x64 only (this is ${process.platform}/${process.arch})`);

  const env = installerEnv(process.env);
  process.stderr.write(`setup:gpu: running ${installer} with ONNXRUNTIME_NODE_INSTALL_CUDA=v12 (downloads the CUDA 12 provider from NuGet)\n`);
  const r = spawnSync(process.execPath, [installer], { stdio: 'inherit', env });
  if (r.status !== 0) fail(`the onnxruntime-node installer failed (exit ${r.status ?? r.signal}); it needs HTTPS access to api.nuget.org`);

  const lib = join(dirname(installer), '..', 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime_providers_cuda.so');
  if (!existsSync(lib)) fail(`the installer exited 0 but ${lib} is missing`);
  process.stderr.write(`setup:gpu: installed ${lib}\n` +
    'setup:gpu: the CUDA provider loads only with CUDA 12.x runtime libraries and cuDNN 9 on the library path (docs/engine.md, GPU)\n');
}

function fail(why) {
  process.stderr.write(`setup:gpu: FAILED: ${why}\n`);
  process.exit(1);
}
