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

here=$(pwd)
out=$here/dist
$check && out=$(mktemp -d)
mkdir -p "$out"
target=$(mktemp -d)
# The output must not depend on where the checkout is: cargo hashes a path
# dependency's location into symbol names (which decide the function order)
# and panics carry source paths. So the sources are built from one fixed
# place, one build at a time.
root=/tmp/leased-policy-build
exec 9>"$root.lock"
flock 9
rm -rf "$root" && mkdir -p "$root/policies"
crates=()
for crate in */Cargo.toml; do crates+=("$(dirname "$crate")"); done
tar -C .. --exclude=target --exclude=Cargo.lock -cf - wasm-sdk | tar -C "$root" -xf -
tar --exclude=target --exclude=Cargo.lock -cf - "${crates[@]}" | tar -C "$root/policies" -xf -
trap 'rm -rf "$target" "$root"; $check && rm -rf "$out"' EXIT
flags="-C link-arg=-zstack-size=65536 --remap-path-prefix=$root=/leased"
for name in "${crates[@]}"; do
    (cd "$root/policies/$name" && RUSTFLAGS="$flags" CARGO_TARGET_DIR="$target" \
        "${cargo[@]}" build --offline --quiet --release --target wasm32-unknown-unknown)
    cp "$target/wasm32-unknown-unknown/release/leased_policy_${name}.wasm" "$out/$name.wasm"
done
if $check; then
    if ! diff -r "$out" "$here/dist" >/dev/null; then
        echo "build.sh --check: policies/dist/ differs from a fresh build: run policies/build.sh and commit" >&2
        exit 1
    fi
    echo "policies/dist/ matches a fresh build"
fi
