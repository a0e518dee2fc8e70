#!/usr/bin/env bash
# Builds the bundle scripts/device-check.sh takes to a bare GPU machine (docs/DEVICE_CHECK.md)
# into dist/device-check/ (ignored by git): the stripped gpu-nn binary, the Vulkan loader and
# GL/EGL packages, MNIST's four .gz files and the check's scripts. Fails when the bundle and
# the rest of the working tree would not fit the 64 MiB a device run takes along.
#
#   bash scripts/device-bundle.sh        (MNIST from $GPU_NN_DATA, else ../shared/datasets/mnist)
#
# The binary: the `dist` profile (release without line tables, stripped), without the default
# feature `download` (the GPU machine reaches no network; a missing dataset then says where
# the files belong). Measured on 2 cores: its first build compiles every dependency again
# (8m51s here, once; afterwards incremental like release), while `strip` of a release
# build would take a second. The profile is chosen all the same, because the release folder
# is shared with other checkouts and test builds (which rebuild release/gpu-nn with other
# features at any time), while the dist folder holds exactly this command's binary.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dest=dist/device-check
limit=$((64 * 1024 * 1024))
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gpu-nn-target}"
mkdir -p "$dest/debs" "$dest/mnist"

echo "building the dist binary ..." >&2
cargo build --profile dist --no-default-features --features cli --bin gpu-nn
install -m 755 "$CARGO_TARGET_DIR/dist/gpu-nn" "$dest/gpu-nn"

# The loader packages, downloaded once (the recipe of the device tool's notes: amd64, whatever
# this machine is, into lists of its own so the system's apt state stays untouched).
pkgs=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
missing=()
for p in "${pkgs[@]}"; do compgen -G "$dest/debs/${p}_*.deb" >/dev/null || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "downloading ${missing[*]} ..." >&2
  mkdir -p /tmp/amd64/partial
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${o[@]}" update -qq
  (cd "$dest/debs" && apt-get "${o[@]}" download "${missing[@]}")
fi

data=${GPU_NN_DATA:-$root/../shared/datasets/mnist}
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [ -f "$data/$f.gz" ] || { echo "error: $data/$f.gz is missing; set GPU_NN_DATA to a folder with MNIST's four .gz files" >&2; exit 2; }
  install -m 644 "$data/$f.gz" "$dest/mnist/"
done

# the Khronos validation layer (the build Chromium ships: Debian's own predates SPIR-V's WGSL
# source language), compressed, and its manifest with the library's path to fill in
layer=/usr/lib/chromium/libVkLayer_khronos_validation.so
if [ -f "$layer" ]; then
  mkdir -p "$dest/layers"
  gzip -9 -c "$layer" >"$dest/layers/libVkLayer_khronos_validation.so.gz"
  cat >"$dest/layers/VkLayer_khronos_validation.json.in" <<'JSON'
{"file_format_version": "1.2.0", "layer": {"name": "VK_LAYER_KHRONOS_validation", "type": "GLOBAL", "library_path": "@LIBRARY@", "api_version": "1.4.0", "implementation_version": "1", "description": "Khronos validation (Chromium's build)"}}
JSON
else
  echo "note: no validation layer at $layer (apt-get install chromium): the device check runs its kernel parity without it" >&2
fi

cp scripts/device-check.sh scripts/device_summary.py scripts/torch_gpu_bench.py scripts/compare_cpu.py scripts/compare_cpu_peers.py "$dest/"
{
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src shaders Cargo.toml Cargo.lock || echo '+changes')"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "binary dist profile, no default features, $(stat -c %s "$dest/gpu-nn") bytes"
} >"$dest/MANIFEST"

bundle=$(du -sb "$dest" | cut -f1)
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
total=$((bundle + tree))
mib() { awk "BEGIN { printf \"%.1f MiB\", $1 / 1048576 }"; }
echo "bundle $dest: $(mib "$bundle") (binary $(mib "$(stat -c %s "$dest/gpu-nn")")); with the rest of the working tree $(mib "$total") of $(mib "$limit")"
if [ "$total" -ge "$limit" ]; then
  echo "error: the bundle and the working tree come to $(mib "$total"), over the $(mib "$limit") a device run takes along" >&2
  exit 1
fi
