#!/usr/bin/env bash
# Builds, without any registry, the container images the upstream
# Kubernetes e2e suite (of the version hack/conformance.sh tests) runs, under exactly the names
# `e2e.test --list-images` prints, into the local Docker image store:
#
#   registry.k8s.io/e2e-test-images/agnhost:2.63.0   agnhost compiled from
#       k8s.io/kubernetes/test/images/agnhost (control module) on a Debian
#       bookworm minbase with the tools upstream's alpine image carries
#       (dig, curl, nc, ip/ss, iperf, bash, ipcs)
#   registry.k8s.io/e2e-test-images/busybox:1.37.0-1  upstream busybox built
#       from source (static, defconfig) with one symlink per applet
#   registry.k8s.io/e2e-test-images/nginx:1.27-0, nginx:1.28-0 (whatever
#       the suite names)  Debian's nginx, in the foreground on port 80
#   registry.k8s.io/e2e-test-images/kitten:1.8, nautilus:1.8  agnhost
#       test-webserver with upstream's html files (and its base's os-release)
#   registry.k8s.io/e2e-test-images/nonroot:1.5  the base as uid 1234
#   registry.k8s.io/e2e-test-images/glibc-dns-testing:2.0.0  the base (dig)
#   registry.k8s.io/e2e-test-images/nonewprivs:1.4  nnp compiled from
#       k8s.io/kubernetes/test/images/nonewprivs, setuid root
#   registry.k8s.io/etcd:3.6.8-0  /usr/local/bin/etcd compiled from
#       go.etcd.io/etcd/server/v3 at the version berth-node embeds
#   registry.k8s.io/e2e-test-images/sample-apiserver:1.29.2  /sample-apiserver
#       compiled from k8s.io/sample-apiserver at the cluster's version
#   berth-conformance/registry:latest  control/conformance/registry, the
#       read-only mirror hack/conformance.sh serves these images from
#
# registry.k8s.io/pause:3.10.2 is already in every berth node.
#
# Every image is labelled with a hash of its inputs and rebuilt only when
# they change; the Debian root filesystem is cached by package list and
# mirror. Outputs: the images in Docker and $OUT/images.list (one name a
# line) for `berth load image`.
#
# Usage: hack/conformance/images.sh LIST [OUT_DIR]
#   LIST: the output of `e2e.test --list-images` (the names and tags to
#   build come from there; images this script cannot build are skipped
#   and named in $OUT/images.missing).  OUT_DIR: ~/.cache/berth/conformance
set -euo pipefail
LIST=$(realpath "${1:?usage: images.sh LIST [OUT_DIR]}")
cd "$(dirname "$0")/../.."
OUT=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/berth/conformance}
mkdir -p "$OUT"
export GOWORK=off
export DOCKER_BUILDKIT=0 # FROM a local image, never a registry

log() { printf '[images %s] %s\n' "$(date +%T)" "$*" >&2; }

K8S=$(cd control && GOFLAGS="${CONTROL_GOFLAGS:--trimpath}" go list -m -f '{{.Dir}}' k8s.io/kubernetes)
TI=$K8S/test/images
REG=registry.k8s.io/e2e-test-images
# want NAME: the full reference the suite uses for image NAME (fails if none)
want() { grep -E "^$REG/$1:" "$LIST" | head -1 | grep .; }

# --- Debian mirror: from the host's apt sources, never written anywhere.
mirror() {
  local m
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)
  if [ -z "$m" ]; then
    m=$(grep -hs '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -1)
  fi
  [ -n "$m" ] || { echo "no Debian mirror in /etc/apt/sources*; set DEBIAN_MIRROR" >&2; exit 1; }
  echo "$m"
}
MIRROR=${DEBIAN_MIRROR:-$(mirror)}
SUITE=bookworm
# What upstream's alpine-based agnhost installs, in Debian's names, plus
# nginx (one shared base layer for every image but busybox), and
# busybox-static (whose version names the busybox source to build).
PACKAGES=bind9-dnsutils,curl,netcat-openbsd,iproute2,iperf,bash,util-linux,procps,iputils-ping,ca-certificates,nginx-light,busybox-static

# image_current NAME HASH: the image exists and was built from HASH.
image_current() {
  [ "$(docker image inspect -f '{{index .Config.Labels "berth.dev/conformance-recipe"}}' "$1" 2>/dev/null)" = "$2" ]
}

# build NAME DIR: docker build DIR as NAME unless its inputs are unchanged.
build() {
  local name=$1 dir=$2 hash
  hash=$( (cd "$dir" && find . -type f -o -type l | LC_ALL=C sort | while read -r f; do
    if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; else sha256sum "$f"; fi
  done; docker image inspect -f "{{.Id}}" "$(sed -n "s/^FROM //p" "$dir/Dockerfile" | head -1)" 2>/dev/null || true) | sha256sum | cut -c1-16)
  if image_current "$name" "$hash"; then
    log "$name is current"
    return
  fi
  log "building $name"
  echo "LABEL berth.dev/conformance-recipe=$hash" >> "$dir/Dockerfile"
  docker build -q -t "$name" "$dir" >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log" >&2; exit 1; }
}

# --- 1. Debian base root filesystem -> berth-conformance/base:<hash>
BASE_HASH=$(printf '%s\n' "$SUITE" "$MIRROR" "$PACKAGES" "users-v1" | sha256sum | cut -c1-12)
BASE=berth-conformance/base:$BASE_HASH
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  ROOTFS=$OUT/rootfs-$BASE_HASH
  if [ ! -f "$ROOTFS/.done" ]; then
    log "debootstrap $SUITE minbase (+ $PACKAGES)"
    rm -rf "$ROOTFS"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 ||
      { tail -20 "$OUT/debootstrap.log" >&2; exit 1; }
    # Upstream agnhost: user-defined-in-image (uid 1000) in
    # group-defined-in-image (gid 50000), used by the SupplementalGroups tests.
    chroot "$ROOTFS" groupadd -g 50000 group-defined-in-image
    chroot "$ROOTFS" useradd -u 1000 -M -N -G group-defined-in-image user-defined-in-image
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc \
      "$ROOTFS"/usr/share/man "$ROOTFS"/usr/share/locale "$ROOTFS"/usr/share/info
    : >"$ROOTFS/etc/resolv.conf"
    touch "$ROOTFS/.done"
  fi
  log "importing $BASE"
  tar -C "$ROOTFS" --exclude=./.done --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' -c . |
    docker import -c 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
fi
# Root filesystems of earlier package lists are not needed any more.
for old in "$OUT"/rootfs-*; do
  [ "$old" = "$OUT/rootfs-$BASE_HASH" ] || [ ! -d "$old" ] || rm -rf "$old"
done

# --- 2. agnhost, compiled from the control module
AGNHOST=$(grep -E "^$REG/agnhost:" "$LIST" | sort -V | tail -1 | grep .)
log "compiling agnhost (${AGNHOST##*:})"
(cd control && CGO_ENABLED=0 GOFLAGS="${CONTROL_GOFLAGS:--trimpath}" go build -ldflags '-s -w' -o "$OUT/agnhost" k8s.io/kubernetes/test/images/agnhost)

CTX=$(mktemp -d)
trap 'rm -rf "$CTX"' EXIT

d=$CTX/agnhost; mkdir -p "$d/layer/uploads"
cp "$OUT/agnhost" "$d/layer/agnhost"
ln -s agnhost "$d/layer/agnhost-2"
cp "$TI/agnhost/porter/localhost.crt" "$TI/agnhost/porter/localhost.key" "$d/layer/"
tar -C "$d/layer" --owner=0 --group=0 --mtime=@0 --sort=name -cf "$d/layer.tar" . && rm -rf "$d/layer"
cat >"$d/Dockerfile" <<EOF
FROM $BASE
ADD layer.tar /
EXPOSE 80 8080 8081 9376 5000
ENTRYPOINT ["/agnhost"]
CMD ["pause"]
EOF
build "$AGNHOST" "$d"
IMAGES=("$AGNHOST")
# Older agnhost tags the suite names (AgnhostPrev) get the same image.
for ref in $(grep -E "^$REG/agnhost:" "$LIST" | grep -vxF "$AGNHOST"); do
  docker tag "$AGNHOST" "$ref"
  IMAGES+=("$ref")
done

# --- 3. kitten and nautilus: agnhost test-webserver with upstream's files
# Upstream builds both on agnhost's alpine:3.21, and the ImageVolume test
# mounts kitten as a volume and reads its /etc/os-release expecting
# "Alpine Linux": these two images carry a copy of that base's
# os-release (the rest of them is the Debian base, like agnhost here).
for n in kitten nautilus; do
  d=$CTX/$n; mkdir -p "$d/layer/etc"
  cp "$TI/$n/html/"* "$d/layer/"
  cat >"$d/layer/etc/os-release" <<'EOF'
NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.21.0
PRETTY_NAME="Alpine Linux v3.21"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
EOF
  tar -C "$d/layer" --owner=0 --group=0 --mtime=@0 --sort=name -cf "$d/layer.tar" . && rm -rf "$d/layer"
  cat >"$d/Dockerfile" <<EOF
FROM $AGNHOST
ADD layer.tar /
CMD ["test-webserver"]
EOF
  ref=$(want $n) || continue
  build "$ref" "$d"
  IMAGES+=("$ref")
done

# --- 4. nginx (every tag the suite names), Debian's nginx in the foreground
d=$CTX/nginx; mkdir -p "$d/layer/var/log/nginx" "$d/layer/usr/share/nginx/html"
ln -s /dev/stdout "$d/layer/var/log/nginx/access.log"
ln -s /dev/stderr "$d/layer/var/log/nginx/error.log"
echo '<html><body><h1>Welcome to nginx!</h1></body></html>' >"$d/layer/usr/share/nginx/html/index.html"
tar -C "$d/layer" --owner=0 --group=0 --mtime=@0 --sort=name -cf "$d/layer.tar" . && rm -rf "$d/layer"
cat >"$d/Dockerfile" <<EOF
FROM $BASE
ADD layer.tar /
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
EOF
for ref in $(grep -E "^$REG/nginx:" "$LIST"); do
  cp -r "$d" "$CTX/nginx-${ref##*:}"
  build "$ref" "$CTX/nginx-${ref##*:}"
  IMAGES+=("$ref")
done

# --- 5. glibc-dns-testing: Debian with dig (upstream: bookworm-slim + dnsutils)
if ref=$(want glibc-dns-testing); then
  d=$CTX/glibc-dns-testing; mkdir -p "$d"
  printf 'FROM %s\n' "$BASE" >"$d/Dockerfile"
  build "$ref" "$d"
  IMAGES+=("$ref")
fi

# --- 6. nonewprivs: nnp (prints its effective uid), setuid root
if ref=$(want nonewprivs); then
  d=$CTX/nonewprivs; mkdir -p "$d/layer/usr/local/bin"
  (cd control && CGO_ENABLED=0 GOFLAGS="${CONTROL_GOFLAGS:--trimpath}" go build -ldflags '-s -w' -o "$OUT/nnp" k8s.io/kubernetes/test/images/nonewprivs)
  install -m 4755 "$OUT/nnp" "$d/layer/usr/local/bin/nnp"
  tar -C "$d/layer" --owner=0 --group=0 --mtime=@0 --sort=name -cf "$d/layer.tar" . && rm -rf "$d/layer"
  printf 'FROM %s\nADD layer.tar /\nCMD ["nnp"]\n' "$BASE" >"$d/Dockerfile"
  build "$ref" "$d"
  IMAGES+=("$ref")
fi

# --- 6b. etcd and sample-apiserver (the aggregator test runs both in one
# pod): static Go binaries from the control module on the Debian base.
# go_image REF PACKAGE PATH [ENTRYPOINT]: PACKAGE's binary at PATH in REF.
go_image() {
  local ref=$1 pkg=$2 path=$3 entry=${4:-} d
  d=$CTX/$(basename "$path"); mkdir -p "$d/layer$(dirname "$path")"
  log "compiling $pkg"
  (cd control && CGO_ENABLED=0 GOFLAGS="${CONTROL_GOFLAGS:--trimpath}" go build -ldflags '-s -w' -o "$d/layer$path" "$pkg")
  tar -C "$d/layer" --owner=0 --group=0 --mtime=@0 --sort=name -cf "$d/layer.tar" . && rm -rf "$d/layer"
  printf 'FROM %s\nADD layer.tar /\n' "$BASE" >"$d/Dockerfile"
  [ -z "$entry" ] || printf 'ENTRYPOINT ["%s"]\n' "$entry" >>"$d/Dockerfile"
  build "$ref" "$d"
  IMAGES+=("$ref")
}
if ref=$(grep -E '^registry.k8s.io/etcd:' "$LIST" | head -1 | grep .); then
  go_image "$ref" go.etcd.io/etcd/server/v3 /usr/local/bin/etcd
fi
if ref=$(want sample-apiserver); then
  go_image "$ref" k8s.io/sample-apiserver /sample-apiserver /sample-apiserver
fi

# --- 7. nonroot: the base as uid 1234
d=$CTX/nonroot; mkdir -p "$d"
printf 'FROM %s\nUSER 1234\n' "$BASE" >"$d/Dockerfile"
if ref=$(want nonroot); then
  build "$ref" "$d"
  IMAGES+=("$ref")
fi

# --- 8. busybox: upstream's busybox, built from source, and its applets.
# Not Debian's busybox-static: Debian patches ash to drop environment
# variables whose names are not shell identifiers (debian/patches/
# revert-9c143ce5...), which upstream's ash passes on and the
# ConfigMap/Secret envFrom tests print with `sh -c env`; and the
# read-only root filesystem test expects ash's own error message. The
# source is Debian's pristine upstream tarball (the .orig.tar.bz2 of the
# busybox version the base carries), from the same mirror; upstream
# defconfig, static.
BB_VERSION=$(docker run --rm --entrypoint dpkg-query "$BASE" -W -f '${Version}' busybox-static | sed 's/^[0-9]*://; s/-[^-]*$//')
BB=$OUT/busybox-$BB_VERSION/busybox
if [ ! -x "$BB" ]; then
  log "compiling busybox $BB_VERSION from upstream's source"
  src=$(mktemp -d)
  curl -fsSL "$MIRROR/pool/main/b/busybox/busybox_$BB_VERSION.orig.tar.bz2" | tar -xj -C "$src" --strip-components=1
  (cd "$src" && make defconfig >/dev/null &&
    sed -i 's/^# CONFIG_STATIC is not set/CONFIG_STATIC=y/; s/^CONFIG_TC=y/# CONFIG_TC is not set/' .config &&
    make -j"$(nproc)" busybox >"$OUT/busybox-build.log" 2>&1) || { tail -20 "$OUT/busybox-build.log" >&2; exit 1; }
  mkdir -p "$(dirname "$BB")" && cp "$src/busybox" "$BB.tmp" && mv "$BB.tmp" "$BB"
  rm -rf "$src"
fi
d=$CTX/busybox; r=$d/layer; mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/root" "$r/var/www" "$r/home"
chmod 1777 "$r/tmp"
cp "$BB" "$r/bin/busybox"
for a in $("$BB" --list); do
  [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"
done
mkdir -p "$r/usr"; ln -s ../bin "$r/usr/bin"; ln -s bin "$r/sbin"; ln -s ../bin "$r/usr/sbin"
cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
cat >"$r/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
EOF
tar -C "$r" --owner=0 --group=0 --mtime=@0 --sort=name -cf "$d/layer.tar" . && rm -rf "$r"
printf 'FROM scratch\nADD layer.tar /\nENV PATH=/usr/sbin:/usr/bin:/sbin:/bin\nCMD ["sh"]\n' >"$d/Dockerfile"
BUSYBOX=$(grep -E "^$REG/busybox:" "$LIST" | sort -V | tail -1 | grep .)
build "$BUSYBOX" "$d"
IMAGES+=("$BUSYBOX")
for ref in $(grep -E "^$REG/busybox:" "$LIST" | grep -vxF "$BUSYBOX"); do
  docker tag "$BUSYBOX" "$ref"
  IMAGES+=("$ref")
done

# --- 9. the mirror: control/conformance/registry serves the images above
# to the nodes as registry.k8s.io (for tests that must pull). Not a test
# image, so not in images.list.
d=$CTX/registry; mkdir -p "$d/layer"
(cd control && CGO_ENABLED=0 GOFLAGS="${CONTROL_GOFLAGS:--trimpath}" go build -ldflags '-s -w' -o "$d/layer/registry" ./conformance/registry)
tar -C "$d/layer" --owner=0 --group=0 --mtime=@0 --sort=name -cf "$d/layer.tar" . && rm -rf "$d/layer"
printf 'FROM scratch\nADD layer.tar /\nENTRYPOINT ["/registry"]\n' >"$d/Dockerfile"
build berth-conformance/registry:latest "$d"

printf '%s\n' "${IMAGES[@]}" >"$OUT/images.list"
grep -vxF -f "$OUT/images.list" "$LIST" | grep -v '^registry.k8s.io/pause:' >"$OUT/images.missing" || true
log "images ready: ${IMAGES[*]}"
