#!/usr/bin/env bash
# Builds the standard policy modules into policies/dist/ (committed: the
# engine embeds them, so users need no wasm toolchain).
#
#   policies/build.sh          build with Debian's cargo + rustc 1.63 if present, else rustup's
#   policies/build.sh --check  rebuild into a scratch directory and fail if dist/ differs
#
# Debian's toolchain is the reference: CI rebuilds with it and compares.
set -euo pipefail
cd "$(dirname "$0")"
check=false
[[ ${1:-} == --check ]] && check=true

if [[ -x /usr/bin/cargo && -d /usr/lib/rustlib/wasm32-unknown-unknown ]]; then
    cargo=(env PATH=/usr/bin:/bin /usr/bin/cargo)
elif rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
    cargo=(cargo)
else
    echo "build.sh: no wasm32 toolchain: apt-get install rustc cargo libstd-rust-dev-wasm32 lld-14" >&2
    exit 1
fi

out=dist
$check && out=$(mktemp -d)
mkdir -p "$out"
target=$(mktemp -d)
trap 'rm -rf "$target"; $check && rm -rf "$out"' EXIT
# Panic locations carry source paths: make them independent of the checkout.
root=$(cd .. && pwd)
flags="-C link-arg=-zstack-size=65536 --remap-path-prefix=$root=/leased"
for crate in */Cargo.toml; do
    dir=$(dirname "$crate")
    [[ $dir == dist ]] && continue
    (cd "$dir" && RUSTFLAGS="$flags" CARGO_TARGET_DIR="$target" \
        "${cargo[@]}" build --offline --quiet --release --target wasm32-unknown-unknown && rm -f Cargo.lock)
    name=$(basename "$dir")
    cp "$target/wasm32-unknown-unknown/release/leased_policy_${name}.wasm" "$out/$name.wasm"
done
if $check; then
    if ! diff -r "$out" dist >/dev/null; then
        echo "build.sh --check: policies/dist/ differs from a fresh build: run policies/build.sh and commit" >&2
        exit 1
    fi
    echo "policies/dist/ matches a fresh build"
fi
