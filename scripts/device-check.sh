#!/usr/bin/env bash
# The prepared GPU check (docs/DEVICE_CHECK.md): on a bare GPU machine with a driver and
# PyTorch but no Rust and no Vulkan loader, runs gpu-nn from the bundle that
# scripts/device-bundle.sh builds, and PyTorch on the same card for the same work, and writes
# summary.json, summary.md and device-check-logs.tar.gz into OUTDIR.
#
#   bash scripts/device-check.sh [OUTDIR]      (default: $OUT where set, else ./device-check-out)
#
# The bundle: $GPU_NN_BUNDLE, else this script's own folder when it lies in the bundle, else
# ../dist/device-check beside it. GPU_NN_BIN overrides the bundle's binary, GPU_NN_DATA its
# MNIST folder. Every step has its own timeout and all of them share one budget
# (DEVICE_CHECK_BUDGET seconds, default 450), so the whole ends within 8 minutes; a step that
# fails is recorded and the next one runs. The summary is rewritten after every step, so a
# run cut short still leaves what it measured. DEVICE_CHECK_QUICK=1 runs short versions of
# every step (a rehearsal on lavapipe and a CPU build of PyTorch).
set -uo pipefail

start=$(date +%s)
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${GPU_NN_BUNDLE:-}" ]; then bundle=$GPU_NN_BUNDLE
elif [ -f "$here/gpu-nn" ] && [ -d "$here/debs" ]; then bundle=$here
else bundle=$here/../dist/device-check
fi
bundle=$(cd "$bundle" 2>/dev/null && pwd) || { echo "device-check: no bundle at $bundle; build it with scripts/device-bundle.sh" >&2; exit 2; }
bin=${GPU_NN_BIN:-$bundle/gpu-nn}
data=${GPU_NN_DATA:-$bundle/mnist}
outdir=${1:-${OUT:-$PWD/device-check-out}}
quick=${DEVICE_CHECK_QUICK:-0}
[ "$quick" = 0 ] || [ "$quick" = 1 ] || { echo "DEVICE_CHECK_QUICK must be 0 or 1" >&2; exit 2; }
deadline=$((start + ${DEVICE_CHECK_BUDGET:-450}))
reserve=20   # seconds kept for the last summary and the archive

mkdir -p "$outdir" || exit 2
outdir=$(cd "$outdir" && pwd)
work=$(mktemp -d /tmp/device-check.XXXXXX)   # the raw logs, archived into OUTDIR
scratch=$(mktemp -d /tmp/device-check-runs.XXXXXX)   # run directories, not archived
trap 'rm -rf "$work" "$scratch"' EXIT

meta() { printf '%s=%s\n' "$1" "$2" >>"$work/meta.txt"; }
meta started "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta quick "$quick"
meta host "$(hostname)"
meta bundle "$bundle"
meta budget_s "$((deadline - start))"
[ -f "$bundle/MANIFEST" ] && cp "$bundle/MANIFEST" "$work/MANIFEST"

# The Vulkan loader (and GL/EGL, for wgpu's GL backend), unpacked from the bundle's .debs
# when the machine has none. (Not `grep -q`: under pipefail its early exit can kill ldconfig
# with SIGPIPE and read as "no loader".)
has_loader() { ldconfig -p 2>/dev/null | grep 'libvulkan.so.1 ' >/dev/null; }
if has_loader; then
  meta loader "already installed"
else
  ok=1
  for f in "$bundle"/debs/*.deb; do dpkg -x "$f" / >>"$work/loader.log" 2>&1 || ok=0; done
  ldconfig >>"$work/loader.log" 2>&1
  if [ $ok = 1 ] && has_loader; then meta loader "unpacked from the bundle"; else meta loader "unpacking failed (loader.log)"; fi
fi
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  meta vk_driver_files "$VK_DRIVER_FILES"
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
export GPU_NN_OFFLINE=1 PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null; then
  nvidia-smi >"$work/nvidia-smi.txt" 2>&1
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv >"$work/nvidia-smi.csv" 2>&1
fi
python3 -c 'import torch; print(f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}, GPU seen: {torch.cuda.is_available()}")' >"$work/python.txt" 2>&1

summarize() {
  python3 "$here/device_summary.py" "$work" "$outdir" 2>>"$work/summary.err"
  tar -czf "$outdir/device-check-logs.tar.gz.part" -C "$work" . && mv "$outdir/device-check-logs.tar.gz.part" "$outdir/device-check-logs.tar.gz"
}

# step NAME LIMIT_S COMMAND...: runs COMMAND with stdout in NAME.out and stderr in NAME.err
# under min(LIMIT_S, what the budget has left) and records its exit status and seconds.
step() {
  local name=$1 limit=$2; shift 2
  local left=$((deadline - reserve - $(date +%s)))
  if [ "$left" -lt 10 ]; then
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" skipped 0 0 "$*" >>"$work/steps.tsv"
    summarize
    return 1
  fi
  [ "$limit" -le "$left" ] || limit=$left
  echo "device-check: $name (at most ${limit}s) ..." >&2
  local t0 rc
  t0=$(date +%s.%N)
  timeout -k 10 "$limit" "$@" >"$work/$name.out" 2>"$work/$name.err"
  rc=$?
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }")" "$limit" "$*" >>"$work/steps.tsv"
  echo "device-check: $name exited $rc" >&2
  summarize
  return $rc
}

if [ "$quick" = 1 ]; then
  bench_counts=(--steps 20 --repeats 1); sizes=256,512; epochs=1
  torch_args=(--steps 20 --repeats 1 --sizes 256,512 --min-seconds 0.05)
else
  bench_counts=(); sizes=256,1024,2048,4096; epochs=3
  torch_args=(--sizes 256,1024,2048,4096)
fi

step adapters 60 "$bin" adapters
step parity 120 "$bin" parity --preset seed001 --data "$data"

# Correctness on the card before speed: every kernel configuration the adapter runs against the
# f64 reference at seed001's shapes and at odd ones (widths that are not multiples of 4, an
# odd batch), with the Khronos validation layer on where the bundle carries it: a line per
# run in kernel-parity.out, and any validation error fails the step.
kernel_parity() {
  local layers_dir=""
  if [ -f "$bundle/layers/libVkLayer_khronos_validation.so.gz" ]; then
    layers_dir=$(mktemp -d /tmp/device-check-layers.XXXXXX)
    gunzip -c "$bundle/layers/libVkLayer_khronos_validation.so.gz" >"$layers_dir/libVkLayer_khronos_validation.so"
    sed "s|@LIBRARY@|$layers_dir/libVkLayer_khronos_validation.so|" "$bundle/layers/VkLayer_khronos_validation.json.in" >"$layers_dir/VkLayer_khronos_validation.json"
  fi
  local failed=0 k shape out err
  for k in tiled-64 tiled-32 tiled-128 plain subgroup scalar; do
    for shape in seed001 odd; do
      local extra=()
      [ "$shape" = odd ] && extra=(--layers 784,37,19,10 --batch-size 37)
      err=$(mktemp)
      if [ -n "$layers_dir" ]; then
        out=$(WGPU_VALIDATION=1 VK_LAYER_PATH="$layers_dir" VK_LOADER_DEBUG=layer "$bin" parity --preset seed001 --data "$data" --steps 5 --kernels "$k" "${extra[@]}" 2>"$err")
      else
        out=$("$bin" parity --preset seed001 --data "$data" --steps 5 --kernels "$k" "${extra[@]}" 2>"$err")
      fi
      local rc=$? worst validation layer
      worst=$(printf '%s\n' "$out" | sed -n 's/^worst relative error \([^ ]*\).*/\1/p')
      validation=$(grep -c '^wgpu ERROR' "$err")
      layer=$(grep -q 'VK_LAYER_KHRONOS_validation' "$err" && echo on || echo off)
      printf 'kernels %s shape %s exit %s worst %s validation %s errors %s\n' "$k" "$shape" "$rc" "${worst:-?}" "$layer" "$validation"
      [ "$rc" = 0 ] && [ "$validation" = 0 ] || failed=1
      [ "$rc" = 0 ] || tail -n 3 "$err" >&2
      rm -f "$err"
    done
  done
  [ -n "$layers_dir" ] && rm -rf "$layers_dir"
  return $failed
}
export -f kernel_parity
export bin bundle data
step kernel-parity 150 bash -c kernel_parity
step bench 240 "$bin" bench --json --data "$data" "${bench_counts[@]}"
if ! step kernels 240 "$bin" bench --kernels --json --sizes "$sizes"; then
  # a binary from before --sizes: its own shapes (the training ones and 1024³)
  step kernels-fallback 150 "$bin" bench --kernels --json
fi
kernels_json=$work/kernels.out
[ -s "$work/kernels-fallback.out" ] && kernels_json=$work/kernels-fallback.out
step torch 180 python3 "$here/torch_gpu_bench.py" --data "$data" --also-shapes "$kernels_json" "${torch_args[@]}"
step train 200 "$bin" train --preset seed001 --epochs "$epochs" --data "$data" --out "$scratch/train-seed001" --log-format json
for f in metrics.csv config.json; do
  [ -f "$scratch/train-seed001/$f" ] && cp "$scratch/train-seed001/$f" "$work/train-$f"
done
meta finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta wall_s "$(($(date +%s) - start))"
summarize
echo "device-check: $outdir/summary.md" >&2
cat "$outdir/summary.md"
