#!/usr/bin/env bash
# npm run gpu-check (issue 14.3): on a machine with a usable GPU provider, compare GPU and CPU training of every zoo model and run 16
# peers on the GPU (scripts/gpu-check.ts); on a machine without one, say exactly what is missing and exit 0 (CI runs this).
# Checks, in order: cuda = an NVIDIA device node + the CUDA provider library from `npm run setup:gpu` + CUDA 12 runtime + cuDNN 9;
# webgpu = a Vulkan loader (libvulkan.so.1) + a Vulkan driver (ICD) that Dawn accepts (tried for real by creating a session).
# A software Vulkan device only (Mesa's lavapipe, no GPU device node): the agreement check runs on it (correctness, labelled
# as a CPU emulation), the speed part says "no GPU here".
# GPU_CHECK_ARGS="--quick" passes options to the TypeScript half.
set -uo pipefail
cd "$(dirname "$0")/.."
provider=""

bin_dir="node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
# grep without -q reads to the end: with -q, ldconfig can die of SIGPIPE and pipefail turns a hit into a miss
has_lib() { ldconfig -p 2>/dev/null | grep "$1" >/dev/null || { [ -n "${LD_LIBRARY_PATH:-}" ] && ls ${LD_LIBRARY_PATH//:/ } 2>/dev/null | grep -q "$1"; }; }

cuda_missing=()
ls /dev/nvidia0 >/dev/null 2>&1 || cuda_missing+=("no NVIDIA device (/dev/nvidia0 absent: no GPU or no driver)")
[ -f "$bin_dir/libonnxruntime_providers_cuda.so" ] || cuda_missing+=("no CUDA provider library ($bin_dir/libonnxruntime_providers_cuda.so: run npm run setup:gpu)")
has_lib 'libcudart.so.12' || cuda_missing+=("no CUDA 12 runtime (libcudart.so.12 not on the library path$(has_lib 'libcudart.so.13' && echo '; CUDA 13 is installed, onnxruntime-node 1.30 needs 12'))")
has_lib 'libcudnn.so.9' || cuda_missing+=("no cuDNN 9 (libcudnn.so.9 not on the library path)")

webgpu_missing=()
software=""
# Try a real webgpu session (a loader and a driver are not enough: Mesa 22's lavapipe lacks descriptor indexing Dawn requires);
# prints OK, or ORT's error followed by Dawn's own warnings (its reason goes to stderr, not into the error).
probe_webgpu() {
  env "$@" COHORT_PROBE_PROVIDERS=ort node --import tsx -e "
    import('./src/engine/providers.ts').then(async ({ createSession }) => {
      const { GraphBuilder } = await import('./src/engine/graph/index.ts');
      const g = new GraphBuilder('probe'); g.output(g.relu(g.input('x', [2, 2])), 'y');
      try { await createSession(g.toModelProto(), ['webgpu'], 1, 'error'); console.log('OK'); } catch (e) { console.log('ORT: ' + e.message.split('\\n')[0]); }
    });" 2>&1 | grep -v 'artificially reduced\|XDG_RUNTIME_DIR'
}
webgpu_reason() {  # one line: Dawn's warnings (why the adapter was refused), else ORT's error
  local dawn; dawn=$(grep '^Warning:' <<<"$1" | sed 's/^Warning: //' | paste -sd ';' -)
  if [ -n "$dawn" ]; then echo "Dawn refused the Vulkan adapter: $dawn"; else grep '^ORT: ' <<<"$1" | tail -1 | sed 's/^ORT: //'; fi
}
vk_kind=$(node --import tsx -e "import('./src/engine/providers.ts').then((m) => console.log(m.vulkanKind()))" 2>/dev/null)
case "$vk_kind" in
  no-loader) webgpu_missing+=("no Vulkan loader (libvulkan.so.1: apt-get install libvulkan1)") ;;
  no-driver) webgpu_missing+=("a Vulkan loader but no Vulkan driver (no ICD in /usr/share/vulkan/icd.d; apt-get install mesa-vulkan-drivers gives lavapipe, a software one)") ;;
  hardware|software)
    [ "$vk_kind" = software ] && flag=COHORT_WEBGPU_SOFTWARE=1 || flag=COHORT_WEBGPU_SOFTWARE=0
    out=$(probe_webgpu "$flag")
    if grep -qx 'OK' <<<"$out"; then
      [ "$vk_kind" = software ] && software=1
    else
      why=$(webgpu_reason "$out")
      if [ "$vk_kind" = software ]; then
        mesa=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null)
        why="$why (a software Vulkan device: lavapipe ${mesa:-of unknown version}"
        # measured: Dawn refuses Debian 12's lavapipe 22.3.6 (no sampled/storage image array dynamic indexing); 25.0.7 works
        if [ -n "$mesa" ] && dpkg --compare-versions "$mesa" lt 23; then why="$why; Dawn needs Mesa >= 23, on Debian 12: apt-get install -t bookworm-backports mesa-vulkan-drivers"; fi
        why="$why)"
      fi
      webgpu_missing+=("WebGPU could not create a session: ${why:-no answer}")
    fi ;;
  *) webgpu_missing+=("could not classify the Vulkan setup (node failed)") ;;
esac

if [ ${#cuda_missing[@]} -eq 0 ]; then provider=cuda
elif [ ${#webgpu_missing[@]} -eq 0 ] && [ -z "$software" ]; then provider=webgpu
fi

if [ -z "$provider" ] && [ -n "$software" ]; then
  # lavapipe runs the real WebGPU kernels (Dawn, WGSL) on the CPU: the agreement check means something, the speed does not
  echo "gpu-check: no GPU here, no speed to measure (exit 0 unless the agreement check fails)."
  for m in "${cuda_missing[@]}"; do echo "  cuda:   $m"; done
  echo "gpu-check: WebGPU on a software Vulkan device (lavapipe $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null)): correctness only, not speed"
  COHORT_WEBGPU_SOFTWARE=1 exec node --import tsx scripts/gpu-check.ts --provider webgpu --software ${GPU_CHECK_ARGS:-}
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
