#!/usr/bin/env bash
# Builds the web page's WebAssembly package into web/pkg: the library for wasm32 with the `web`
# feature (no `cli`), then wasm-bindgen's JavaScript glue. wasm-bindgen-cli must be the version
# Cargo.lock pins for the wasm-bindgen crate; it is installed from crates.io when missing.
#   scripts/build-web.sh            # then: gpu-nn serve, and open the address it prints
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}

rustup target list --installed | grep -x wasm32-unknown-unknown >/dev/null || rustup target add wasm32-unknown-unknown
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -x "wasm-bindgen $version" >/dev/null; then
  # not --locked: the registry may lack a yanked version of one of its own dependencies
  cargo install wasm-bindgen-cli --version "$version"
fi
cargo rustc --lib --release --target wasm32-unknown-unknown --no-default-features --features web --crate-type cdylib
wasm-bindgen --target web --no-typescript --out-dir web/pkg "$target_dir/wasm32-unknown-unknown/release/gpu_nn.wasm"
echo "built web/pkg ($(du -h web/pkg/gpu_nn_bg.wasm | cut -f1) of WebAssembly)"
