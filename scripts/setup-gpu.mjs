// `npm run setup:gpu`: download onnxruntime-node's CUDA 12 execution provider binaries (a hospital machine with CUDA 12).
// `npm ci` never runs onnxruntime-node's install script (package.json allowScripts denies it; CI also exports
// ONNXRUNTIME_NODE_INSTALL=skip), so that a plain install stays offline. The installer reads ONNXRUNTIME_NODE_INSTALL before its
// command line, so this script sets the variable itself: an inherited `skip` cannot turn the GPU setup into a silent no-op.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const installer = require.resolve('onnxruntime-node/script/install.js');
const flavour = process.argv[2] ?? 'cuda12';
process.stderr.write(`setup:gpu: running ${installer} with ONNXRUNTIME_NODE_INSTALL=${flavour}\n`);
const r = spawnSync(process.execPath, [installer], { stdio: 'inherit', env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: flavour } });
process.exit(r.status ?? 1);
