#!/usr/bin/env bash
# Builds deploy/container/Containerfile here, without any registry, and
# unpacks the image into an OCI runtime bundle (OUT/bundle: config.json and
# rootfs/), as tests/deploy.rs does before starting leased from it.
#
# The Containerfile's two bases come from this machine instead of a
# registry: its build stage is replaced by an image holding what that stage
# leaves in /out (this checkout's release build), and the distroless runtime
# by one made from scratch with the same content: Debian 12's glibc and
# libgcc (the libraries the binary links), users root and nonroot (65532),
# /tmp. Then `buildah bud` builds the Containerfile itself, `buildah push`
# writes an OCI layout and `umoci unpack` makes the bundle.
#
# Needs root, buildah and umoci (Debian packages). Uses its own container
# storage under OUT, removed at the end; leaves OUT/oci and OUT/bundle.
#
#   deploy/container/build-local.sh OUT [LEASED_BINARY]
set -euo pipefail
OUT=$(realpath -m "${1:?usage: build-local.sh OUT [LEASED_BINARY]}")
cd "$(dirname "$0")/../.."
LEASED=${2:-target/release/leased}
[[ -x $LEASED ]] || cargo build --release -q -p leased
rm -rf "$OUT" && mkdir -p "$OUT"
B=(buildah --root "$OUT/storage" --runroot "$OUT/run" --storage-driver vfs)
cleanup() { "${B[@]}" rm --all >/dev/null 2>&1 || true; rm -rf "$OUT/storage" "$OUT/run"; }
trap cleanup EXIT

# 1. What the build stage leaves in /out.
ctr=$("${B[@]}" from scratch)
mnt=$("${B[@]}" mount "$ctr")
mkdir -p "$mnt"/out/{usr/bin,usr/lib/leased,etc/leased,var/lib/leased}
# Stripped, as the build stage does: release builds carry debug info.
install -m 0755 -s "$LEASED" "$mnt/out/usr/bin/leased"
cp -r policies/dist "$mnt/out/usr/lib/leased/policies"
sed 's#path = "./data"#path = "/var/lib/leased"#' deploy/examples/quickstart.hcl > "$mnt/out/etc/leased/leased.hcl"
"${B[@]}" commit -q "$ctr" localhost/leased-binary >/dev/null

# 2. A runtime like gcr.io/distroless/cc-debian12:nonroot.
ctr=$("${B[@]}" from scratch)
mnt=$("${B[@]}" mount "$ctr")
mkdir -p "$mnt"/{etc,tmp,home/nonroot}
chmod 1777 "$mnt/tmp"
for lib in $(ldd "$LEASED" | grep -o '/[^ ]*'); do
    mkdir -p "$mnt$(dirname "$lib")"
    cp -L "$lib" "$mnt$lib"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$mnt/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$mnt/etc/group"
chown 65532:65532 "$mnt/home/nonroot"
"${B[@]}" commit -q "$ctr" localhost/leased-runtime >/dev/null

# 3. The Containerfile, on those bases.
"${B[@]}" bud -q --pull=never --layers=false \
    --build-arg BINARY_FROM=localhost/leased-binary --build-arg RUNTIME_IMAGE=localhost/leased-runtime \
    -f deploy/container/Containerfile -t localhost/leased . >/dev/null

# 4. Out of the store without a registry, and unpacked.
"${B[@]}" push -q localhost/leased "oci:$OUT/oci:leased"
umoci unpack --image "$OUT/oci:leased" "$OUT/bundle" >/dev/null
echo "build-local: image localhost/leased unpacked in $OUT/bundle"
