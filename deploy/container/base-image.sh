#!/usr/bin/env bash
# base-image.sh [IMAGE] — build a Debian bookworm base image for podman without any container registry:
#   debootstrap --variant=minbase bookworm ROOTFS <mirror>  →  tar | podman import  →  IMAGE
# IMAGE defaults to localhost/debian:bookworm-local. Cached: does nothing if IMAGE already exists
# (FORCE=1 rebuilds). Must run as root. Needs: apt-get install -y podman runc debootstrap.
#
# Environment knobs (optional):
#   MIRROR          Debian mirror; default: the one apt uses on this machine (sources.list(.d)),
#                   else http://deb.debian.org/debian
#   SECURITY_MIRROR default: the host's debian-security URI, else http://deb.debian.org/debian-security
#   CONTAINERS_CONF default: containers.conf next to this script (runc, default_ulimits = [] …)
#   KEEP_ROOTFS=DIR keep the debootstrapped tree in DIR instead of a temporary folder
#   FORCE=1         rebuild even if IMAGE exists
set -euo pipefail

die() { echo "base-image: ERROR: $*" >&2; exit 1; }
log() { echo "base-image: $*" >&2; }

HERE=$(dirname "$(realpath "$0")")
IMAGE=${1:-localhost/debian:bookworm-local}
SUITE=bookworm
export CONTAINERS_CONF=${CONTAINERS_CONF:-$HERE/containers.conf}

[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, rootful podman)"
for b in debootstrap podman tar; do command -v "$b" >/dev/null || die "missing $b — apt-get install -y podman runc debootstrap"; done
[[ -f $CONTAINERS_CONF ]] || die "CONTAINERS_CONF=$CONTAINERS_CONF not found"

if [[ ${FORCE:-0} != 1 ]] && podman image exists "$IMAGE"; then
    log "$IMAGE exists — nothing to do (FORCE=1 to rebuild)"
    exit 0
fi

# ---------- mirror: reuse what apt uses here ----------
# deb822 (*.sources): "URIs: X" + "Suites: bookworm ..."; one-line format: "deb [opts] X bookworm main".
apt_uri_for() { # apt_uri_for SUITE → first URI that serves exactly that suite
    local suite=$1 f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        awk -v s="$suite" '
            /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; done=1; exit } uri=""; ok=0; next }
            /^URIs:/   { uri=$2 }
            /^Suites:/ { for (i=2;i<=NF;i++) if ($i==s) ok=1 }
            END { if (!done && uri != "" && ok) print uri }' "$f"
    done
    # (missing files are normal: no sources.list on deb822-only systems)
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk -v s="$suite" '$1=="deb" { sub(/\[[^]]*\] */, ""); if ($3==s) { print $2; exit } }'
    return 0
}
MIRROR=${MIRROR:-$(apt_uri_for "$SUITE" | head -n1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-$(apt_uri_for "$SUITE-security" | head -n1 || true)}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
log "mirror $MIRROR, security $SECURITY_MIRROR"

# ---------- debootstrap ----------
if [[ -n ${KEEP_ROOTFS:-} ]]; then
    ROOTFS=$KEEP_ROOTFS
    [[ -e $ROOTFS && -n $(ls -A "$ROOTFS" 2>/dev/null) ]] && die "KEEP_ROOTFS=$ROOTFS is not empty"
    mkdir -p "$ROOTFS"
else
    WORK=$(mktemp -d /var/tmp/base-image.XXXXXX)
    trap 'rm -rf --one-file-system "$WORK"' EXIT
    ROOTFS=$WORK/rootfs
fi
t0=$SECONDS
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"${WORK:-/tmp}/debootstrap.log" 2>&1 \
    || { tail -n 30 "${WORK:-/tmp}/debootstrap.log" >&2; die "debootstrap failed"; }
log "debootstrap done in $((SECONDS - t0)) s"

# apt inside the image: same mirror as the host, plus updates and security (FFmpeg gets security fixes there)
rm -f "$ROOTFS/etc/apt/sources.list"
cat > "$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# smaller image: no downloaded .debs / package lists (every RUN apt-get update fetches fresh lists)
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log \
       "$ROOTFS"/var/cache/apt/*.bin
# don't keep this machine's resolv.conf/hostname; podman provides them at run time
: > "$ROOTFS/etc/resolv.conf"
echo localhost > "$ROOTFS/etc/hostname"

# ---------- import ----------
# An imported tarball has no config: set PATH/CMD explicitly, otherwise `podman run IMAGE` has no command.
tar --numeric-owner --xattrs -C "$ROOTFS" -c . \
  | podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["/bin/bash"]' \
      - "$IMAGE" >/dev/null
log "imported $IMAGE ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes) in $((SECONDS - t0)) s total"
