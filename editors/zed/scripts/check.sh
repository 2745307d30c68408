#!/usr/bin/env bash
# Check the Zed extension on the host target: `cargo check` plus its unit tests. Zed builds the
# real thing for wasm32-wasip2, a target this machine cannot install (no rustup downloads).
# Uses its own target dir under the repository's target/ so it never touches the main build.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
manifest="$repo/editors/zed/Cargo.toml"
target_dir="$repo/target/zed-extension"

cargo check --manifest-path "$manifest" --target-dir "$target_dir" --all-targets
cargo clippy --manifest-path "$manifest" --target-dir "$target_dir" --all-targets -- -D warnings
cargo test --manifest-path "$manifest" --target-dir "$target_dir"
if rustup target list --installed 2>/dev/null | grep -qx 'wasm32-wasip2'; then
  cargo check --manifest-path "$manifest" --target-dir "$target_dir" --target wasm32-wasip2
fi
