#!/usr/bin/env bash
# build.sh [IMAGE] — build the vqtokenize runtime image (Containerfile beside this script).
#   IMAGE       default localhost/vqtok:latest
# Environment:
#   ENGINE      podman (default) or docker
#   BASE        the Debian bookworm base image (default localhost/debian:bookworm-local, made by
#               base-image.sh here because no registry is reachable; debian:bookworm-slim elsewhere)
#   VQTOKENIZE  the binary to ship (default: target/release/vqtokenize, built with
#               `cargo build --release -p vqtok-infer --bin vqtokenize` when missing)
#   ORT_LIB     libonnxruntime.so to ship (default: .cache/vqtok/libonnxruntime.so, from `cargo xtask setup`)
# With podman on these sandboxed machines, CONTAINERS_CONF defaults to containers.conf beside this script.
set -euo pipefail

die() { echo "build.sh: ERROR: $*" >&2; exit 1; }
HERE=$(dirname "$(realpath "$0")")
ROOT=$(realpath "$HERE/../..")
IMAGE=${1:-localhost/vqtok:latest}
ENGINE=${ENGINE:-podman}
BASE=${BASE:-localhost/debian:bookworm-local}
VQTOKENIZE=${VQTOKENIZE:-$ROOT/target/release/vqtokenize}
ORT_LIB=${ORT_LIB:-$ROOT/.cache/vqtok/libonnxruntime.so}
[[ $ENGINE == podman ]] && export CONTAINERS_CONF=${CONTAINERS_CONF:-$HERE/containers.conf}
command -v "$ENGINE" >/dev/null || die "$ENGINE not found"

if [[ ! -x $VQTOKENIZE ]]; then
    (cd "$ROOT" && cargo build --release -p vqtok-infer --bin vqtokenize)
fi
[[ -x $VQTOKENIZE ]] || die "no binary at $VQTOKENIZE"
[[ -e $ORT_LIB ]] || die "no ONNX Runtime at $ORT_LIB (run cargo xtask setup, or set ORT_LIB)"

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cp "$HERE/Containerfile" "$STAGE/"
cp "$VQTOKENIZE" "$STAGE/vqtokenize"
cp -L "$ORT_LIB" "$STAGE/libonnxruntime.so"
# Host networking for the build: apt-get needs the network, and the default bridge leaves firewall
# chains behind on these machines.
"$ENGINE" build --network host --build-arg "BASE=$BASE" -t "$IMAGE" -f "$STAGE/Containerfile" "$STAGE"
echo "built $IMAGE" >&2
