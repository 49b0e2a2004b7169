#!/usr/bin/env bash
# npm run gpu-check (issue 14.3): on a machine with a usable GPU provider, compare GPU and CPU training of every zoo model and run 16
# peers on the GPU (scripts/gpu-check.ts); on a machine without one, say exactly what is missing and exit 0 (CI runs this).
# Checks, in order: cuda = an NVIDIA device node + the CUDA provider library from `npm run setup:gpu` + CUDA 12 runtime + cuDNN 9;
# webgpu = a Vulkan loader (libvulkan.so.1) + a Vulkan driver (ICD) that Dawn accepts (tried for real by creating a session).
# GPU_CHECK_ARGS="--quick" passes options to the TypeScript half.
set -uo pipefail
cd "$(dirname "$0")/.."

bin_dir="node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
has_lib() { ldconfig -p 2>/dev/null | grep -q "$1" || { [ -n "${LD_LIBRARY_PATH:-}" ] && ls ${LD_LIBRARY_PATH//:/ } 2>/dev/null | grep -q "$1"; }; }

cuda_missing=()
ls /dev/nvidia0 >/dev/null 2>&1 || cuda_missing+=("no NVIDIA device (/dev/nvidia0 absent: no GPU or no driver)")
[ -f "$bin_dir/libonnxruntime_providers_cuda.so" ] || cuda_missing+=("no CUDA provider library ($bin_dir/libonnxruntime_providers_cuda.so: run npm run setup:gpu)")
has_lib 'libcudart.so.12' || cuda_missing+=("no CUDA 12 runtime (libcudart.so.12 not on the library path$(has_lib 'libcudart.so.13' && echo '; CUDA 13 is installed, onnxruntime-node 1.30 needs 12'))")
has_lib 'libcudnn.so.9' || cuda_missing+=("no cuDNN 9 (libcudnn.so.9 not on the library path)")

webgpu_missing=()
has_lib 'libvulkan.so.1' || webgpu_missing+=("no Vulkan loader (libvulkan.so.1)")

provider=""
if [ ${#cuda_missing[@]} -eq 0 ]; then provider=cuda
elif [ ${#webgpu_missing[@]} -eq 0 ]; then
  # a loader alone is not enough (Dawn rejects e.g. Mesa 22's lavapipe): try a session and keep its reason
  why=$(COHORT_PROBE_PROVIDERS=ort node --import tsx -e "
    import('./src/engine/providers.ts').then(async ({ createSession }) => {
      const { GraphBuilder } = await import('./src/engine/graph/index.ts');
      const g = new GraphBuilder('probe'); g.output(g.relu(g.input('x', [2, 2])), 'y');
      try { await createSession(g.toModelProto(), ['webgpu'], 1, 'error'); console.log('OK'); } catch (e) { console.log(e.message); }
    });" 2>/dev/null | tail -1)
  if [ "$why" = "OK" ]; then provider=webgpu; else webgpu_missing+=("WebGPU could not create a session: ${why:-no answer}"); fi
fi

if [ -z "$provider" ]; then
  echo "gpu-check: no GPU here, nothing to compare (exit 0)."
  for m in "${cuda_missing[@]}"; do echo "  cuda:   $m"; done
  for m in "${webgpu_missing[@]}"; do echo "  webgpu: $m"; done
  exit 0
fi
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu-check: GPU /'
echo "gpu-check: provider found: $provider"
exec node --import tsx scripts/gpu-check.ts --provider "$provider" ${GPU_CHECK_ARGS:-}
