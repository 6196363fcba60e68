#!/usr/bin/env bash
# The GPU checks in one script (docs/gpu.md), for a machine with a GPU: builds copro with its tests, prints
# the GPU, CUDA and NCCL it found, runs the ctest label `gpu` and the device compile checks, and writes the
# output to OUT_DIR (default: gpu-check-out/, or $OUT when set). Finishes in a few minutes on one GPU,
# including the build (only the shared library and the test targets are built).
#   scripts/gpu-check.sh [BUILD_DIR]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-gpu}
out=${OUT:-$root/gpu-check-out}
mkdir -p "$out"
log="$out/gpu-check.log"
: > "$log"
say() { echo "$@" | tee -a "$log"; }

say "# copro gpu-check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log"
else
  say "nvidia-smi: not found (no NVIDIA driver on this machine)"
fi
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [ -x "$nvcc" ]; then "$nvcc" --version | tail -1 | tee -a "$log"; else say "nvcc: not found; the GPU tests cannot be built"; fi
# NCCL: the one CMake finds (the toolkit's, or pip's nvidia-nccl wheel through NCCL_ROOT / python).
nccl_h=$(ls /usr/local/cuda/include/nccl.h /usr/include/nccl.h 2> /dev/null | head -1)
if [ -z "$nccl_h" ] && command -v python3 > /dev/null; then
  nccl_h=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], "include", "nccl.h"))' 2> /dev/null)
fi
if [ -n "$nccl_h" ] && [ -f "$nccl_h" ]; then
  say "NCCL: $(grep -E '#define NCCL_(MAJOR|MINOR|PATCH) ' "$nccl_h" | awk '{printf "%s%s", sep, $3; sep="."}') ($nccl_h)"
else
  say "NCCL: not found"
fi

start=$(date +%s)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCOPRO_BUILD_BENCH=OFF -DCOPRO_TORCH=OFF \
  -DCUDAToolkit_ROOT="$(dirname "$(dirname "$nvcc")")" >> "$log" 2>&1 || { say "configure failed (see $log)"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target copro_shared copro_unit_core copro_conformance >> "$log" 2>&1 ||
  { say "build failed (see $log)"; exit 1; }
# The CUDA plugin of the cuda backend (built where configure found nvcc >= 12; cuda_conformance needs it).
cmake --build "$build" -j"$(nproc)" --target copro_cuda >> "$log" 2>&1 || say "no CUDA plugin built (see $log)"
say "build: $(( $(date +%s) - start )) s"

status=0
ctest --test-dir "$build" -L gpu -R . --output-on-failure -V 2>&1 | tee "$out/ctest-gpu.log" | grep -E '^[0-9]+: |tests passed|Skipped|Failed' | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
ctest --test-dir "$build" -R '_nvcc$' --output-on-failure 2>&1 | tail -3 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
say "total: $(( $(date +%s) - start )) s; result: $([ $status -eq 0 ] && echo ok || echo FAILED)"
exit $status
