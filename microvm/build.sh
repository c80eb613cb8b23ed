#!/usr/bin/env bash
# build.sh builds a guest image for gitlab-runner-kubevirt from the recipe in
# microvm/guests/<guest>/, without Docker and without loop mounts:
#
#   debootstrap (recipe.conf, packages) -> optional apt-get dist-upgrade
#   -> rootfs/ overlay -> customize.sh (chroot) -> remove SSH host keys and
#   machine-id -> manifest.txt (dpkg-query -W) -> mkfs.ext4 -d
#   -> qemu-img convert -c (qcow2) + kernel and initrd for direct boot
#
# Usage:
#   build.sh [--print-dir] <guest>
#
# The output directory is printed on stdout (progress goes to stderr):
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/gitlab-runner-kubevirt/images/<guest>-<hash>/
#     disk.qcow2   compressed qcow2 of the ext4 root file system (no partitions)
#     vmlinuz      kernel for direct boot
#     initrd.img   its initramfs
#     manifest.txt package, version and architecture of every installed package
#     image.json   what the files are, the kernel command line, the build settings
#
# <hash> is a sha256 over the build inputs: this script, every file of the
# recipe, and the effective mirrors. A second run with the same inputs is a
# cache hit and prints the same directory. Downloaded .debs are kept in
# .../gitlab-runner-kubevirt/debs/<suite>-<arch>/ for the next build.
# --print-dir prints the output directory without building.
#
# Environment:
#   MICROVM_MIRROR           overrides the recipe's MIRROR
#   MICROVM_SECURITY_MIRROR  overrides the recipe's SECURITY_MIRROR
#   XDG_CACHE_HOME           cache root (default $HOME/.cache)
#
# Needs root (debootstrap, chroot) and the Debian packages listed in
# microvm/install-deps.sh.
set -euo pipefail
umask 022
export LC_ALL=C
start=$(date +%s)

die() { echo "build.sh: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

print_dir=false
if [ "${1:-}" = "--print-dir" ]; then
  print_dir=true
  shift
fi
[ $# -eq 1 ] || die "usage: build.sh [--print-dir] <guest> (guests: $(ls "$(dirname "$0")/guests" | tr '\n' ' '))"
guest=$1
[[ $guest =~ ^[a-z0-9][a-z0-9.-]{0,62}$ ]] ||
  die "guest \"$guest\": must match ^[a-z0-9][a-z0-9.-]{0,62}$"

script=$(realpath "${BASH_SOURCE[0]}")
here=$(dirname "$script")
recipe=$here/guests/$guest
[ -d "$recipe" ] || die "guest \"$guest\": no recipe directory $recipe"
for f in recipe.conf packages; do
  [ -f "$recipe/$f" ] || die "guest \"$guest\": recipe file $recipe/$f is missing"
done

# --- recipe.conf: KEY=VALUE, known keys only, every value checked -----------
declare -A rules=(
  [SUITE]='^[a-z]+$'
  [VARIANT]='^(minbase|buildd|fakechroot)$'
  [ARCH]='^[a-z0-9]+$'
  [COMPONENTS]='^[a-z]+(,[a-z]+)*$'
  [MIRROR]='^https?://[A-Za-z0-9._~:/%-]+$'
  [SECURITY_MIRROR]='^https?://[A-Za-z0-9._~:/%-]+$'
  [UPGRADE]='^(yes|no)$'
  [DISK_SIZE]='^[1-9][0-9]*[MG]$'
  [ROOT_LABEL]='^[A-Za-z0-9_-]{1,16}$'
  [KERNEL_CMDLINE]='^[A-Za-z0-9 =._,:/-]{1,1024}$'
)
declare -A conf=()
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
  lineno=$((lineno + 1))
  [[ $line =~ ^[[:space:]]*(#.*)?$ ]] && continue
  [[ $line =~ ^([A-Z_]+)=(.*)$ ]] ||
    die "$recipe/recipe.conf:$lineno: \"$line\": must be KEY=VALUE"
  key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
  [ -n "${rules[$key]:-}" ] ||
    die "$recipe/recipe.conf:$lineno: unknown key $key (known: ${!rules[*]})"
  conf[$key]=$value
done <"$recipe/recipe.conf"
[ -n "${MICROVM_MIRROR:-}" ] && conf[MIRROR]=$MICROVM_MIRROR
[ -n "${MICROVM_SECURITY_MIRROR:-}" ] && conf[SECURITY_MIRROR]=$MICROVM_SECURITY_MIRROR
for key in "${!rules[@]}"; do
  [ -n "${conf[$key]+set}" ] || die "$recipe/recipe.conf: key $key is missing"
  [[ ${conf[$key]} =~ ${rules[$key]} ]] ||
    die "$recipe/recipe.conf: $key \"${conf[$key]}\": must match ${rules[$key]}"
done
[[ ${conf[KERNEL_CMDLINE]} == *"root=LABEL=${conf[ROOT_LABEL]} "* || ${conf[KERNEL_CMDLINE]} == *"root=LABEL=${conf[ROOT_LABEL]}" ]] ||
  die "$recipe/recipe.conf: KERNEL_CMDLINE \"${conf[KERNEL_CMDLINE]}\": must mount the root disk with root=LABEL=${conf[ROOT_LABEL]} (ROOT_LABEL)"

# --- packages: one name per line --------------------------------------------
packages=()
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
  lineno=$((lineno + 1))
  line=${line%%#*}
  line=${line//[[:space:]]/}
  [ -z "$line" ] && continue
  [[ $line =~ ^[a-z0-9][a-z0-9+.-]+$ ]] ||
    die "$recipe/packages:$lineno: \"$line\": not a Debian package name (^[a-z0-9][a-z0-9+.-]+$)"
  packages+=("$line")
done <"$recipe/packages"
[ ${#packages[@]} -gt 0 ] || die "$recipe/packages: lists no package"

# --- the cache key ----------------------------------------------------------
# Content only (no modes, no timestamps), so a checkout, a copy or the copy
# the Go package microvm embeds all hash the same.
while IFS= read -r -d '' f; do
  [ -L "$f" ] && die "recipe file $f: symbolic links are not supported in recipes"
done < <(find "$recipe" -print0)
hash=$(
  {
    printf 'build.sh\t%s\n' "$(sha256sum <"$script" | cut -d' ' -f1)"
    (cd "$recipe" && find . -type f -print0 | sort -z | while IFS= read -r -d '' f; do
      printf '%s\t%s\n' "${f#./}" "$(sha256sum <"$f" | cut -d' ' -f1)"
    done)
    printf 'MIRROR\t%s\nSECURITY_MIRROR\t%s\n' "${conf[MIRROR]}" "${conf[SECURITY_MIRROR]}"
  } | sha256sum | cut -c1-16
)

cache_home=${XDG_CACHE_HOME:-${HOME:?HOME or XDG_CACHE_HOME must be set}/.cache}
[[ $cache_home == /* ]] || die "XDG_CACHE_HOME \"$cache_home\": must be an absolute path"
cache=$cache_home/gitlab-runner-kubevirt
images=$cache/images
out=$images/$guest-$hash

if $print_dir; then
  echo "$out"
  exit 0
fi

# --- requirements -----------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and chroot need it); try: sudo $0 $guest"
need() { # command package
  command -v "$1" >/dev/null 2>&1 ||
    die "$1 not found: install the Debian package $2 (or run microvm/install-deps.sh)"
}
need debootstrap debootstrap
need mkfs.ext4 e2fsprogs
need qemu-img qemu-utils
need chroot coreutils
need flock util-linux
need dpkg-query dpkg
need sha256sum coreutils

mkdir -p "$images"
exec 9>"$images/.build.lock"
if ! flock -n 9; then
  log "another build holds $images/.build.lock: waiting"
  flock 9
fi

if [ -f "$out/image.json" ]; then
  log "cache hit: $out"
  echo "$out"
  exit 0
fi

log "building $guest ($hash): ${conf[SUITE]}/${conf[ARCH]} ${conf[VARIANT]} from ${conf[MIRROR]}"

work=$(mktemp -d "$images/.build-$guest-XXXXXX")
rootfs=$work/rootfs
debs=$cache/debs/${conf[SUITE]}-${conf[ARCH]}
mkdir -p "$debs" "$work/out"

# unmount_all unmounts whatever debootstrap or a failed step left mounted
# under the root file system, deepest first, so cleanup never deletes
# through a mount (e.g. the host's /proc or /dev).
unmount_all() {
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v root="$rootfs" '{ p = $5; gsub(/\\040/, " ", p); if (p == root || index(p, root "/") == 1) print p }' /proc/self/mountinfo | sort -r)
}
cleanup() {
  unmount_all
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_logged <name> <command...>: runs a step with its output in a log file
# and shows the log's end when the step fails.
run_logged() {
  local name=$1
  shift
  if ! "$@" >"$work/$name.log" 2>&1; then
    echo "build.sh: $name failed; last lines of its log:" >&2
    tail -n 40 "$work/$name.log" >&2
    exit 1
  fi
}

in_root() { chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }

# --- 1. debootstrap ---------------------------------------------------------
log "debootstrap: ${#packages[@]} packages on top of ${conf[VARIANT]} (debs cached in $debs)"
include=$(IFS=,; echo "${packages[*]}")
run_logged debootstrap debootstrap --variant="${conf[VARIANT]}" --arch="${conf[ARCH]}" \
  --components="${conf[COMPONENTS]}" --include="$include" --cache-dir="$debs" \
  "${conf[SUITE]}" "$rootfs" "${conf[MIRROR]}"
unmount_all

# --- 2. current fixes from SUITE-updates and SUITE-security ------------------
# apt runs inside the root file system; its downloads are exchanged with the
# deb cache by hard links, so a rebuild downloads nothing twice.
if [ "${conf[UPGRADE]}" = yes ]; then
  log "apt-get dist-upgrade from ${conf[SUITE]}-updates and ${conf[SUITE]}-security"
  comps=${conf[COMPONENTS]//,/ }
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb ${conf[MIRROR]} ${conf[SUITE]} $comps
deb ${conf[MIRROR]} ${conf[SUITE]}-updates $comps
deb ${conf[SECURITY_MIRROR]} ${conf[SUITE]}-security $comps
EOF
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf" 2>/dev/null || true
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
  archives=$rootfs/var/cache/apt/archives
  find "$debs" -maxdepth 1 -name '*.deb' -exec ln -f -t "$archives" {} + 2>/dev/null || true
  run_logged apt-update in_root apt-get -q update
  run_logged apt-upgrade in_root apt-get -q -y -o Dpkg::Options::=--force-confold dist-upgrade
  find "$archives" -maxdepth 1 -name '*.deb' -exec ln -f -t "$debs" {} + 2>/dev/null || true
  rm -f "$rootfs/usr/sbin/policy-rc.d"
  unmount_all
fi

# --- 3. recipe overlay and guest-specific customisation ---------------------
if [ -d "$recipe/rootfs" ]; then
  log "overlay: $recipe/rootfs"
  tar -C "$recipe/rootfs" --owner=0 --group=0 --numeric-owner --mode='u=rwX,go=rX' -cf - . |
    tar -C "$rootfs" --no-overwrite-dir -xf -
fi
printf 'LABEL=%s\t/\text4\tdefaults,errors=remount-ro\t0\t0\n' "${conf[ROOT_LABEL]}" >"$rootfs/etc/fstab"
if [ -f "$recipe/customize.sh" ]; then
  log "customize.sh"
  install -m 0755 "$recipe/customize.sh" "$rootfs/customize.sh"
  run_logged customize in_root /bin/sh /customize.sh
  rm -f "$rootfs/customize.sh"
fi

# sshd must accept the configuration as shipped (checked with a throwaway
# host key: the image has none).
mkdir -p "$rootfs/run/sshd"
in_root ssh-keygen -q -t ed25519 -N '' -f /run/sshd-check-key >/dev/null
run_logged sshd-check in_root /usr/sbin/sshd -t -h /run/sshd-check-key
rm -rf "$rootfs/run/sshd" "$rootfs"/run/sshd-check-key*

# --- 4. first boot must be a first boot --------------------------------------
# No SSH host keys (cloud-init installs the job's key; the guest must serve
# only that one), no machine-id (systemd makes a fresh one per boot), no
# apt indexes or logs from the build.
rm -f "$rootfs"/etc/ssh/ssh_host_*
: >"$rootfs/etc/machine-id"
[ -L "$rootfs/var/lib/dbus/machine-id" ] || rm -f "$rootfs/var/lib/dbus/machine-id"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old "$rootfs"/var/lib/cloud/* \
  "$rootfs"/tmp/* "$rootfs"/var/tmp/* "$rootfs"/root/.bash_history
find "$rootfs/var/log" -type f -delete
if [ ! -L "$rootfs/etc/resolv.conf" ]; then
  : >"$rootfs/etc/resolv.conf" # the build host's DNS servers do not belong in the image
fi
if compgen -G "$rootfs/etc/ssh/ssh_host_*" >/dev/null; then
  die "SSH host keys left in the image: $(ls "$rootfs"/etc/ssh/ssh_host_*)"
fi

# Every package must be installed and configured: a half-configured
# cloud-init (e.g. a missing python3-cffi-backend) boots but never runs.
broken=$(dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 != "ii" { print }')
[ -z "$broken" ] || die "packages not fully installed in the image:"$'\n'"$broken"

# --- 5. outputs -------------------------------------------------------------
dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f='${Package}\t${Version}\t${Architecture}\n' |
  sort >"$work/out/manifest.txt"

kernels=("$rootfs"/boot/vmlinuz-*)
[ ${#kernels[@]} -eq 1 ] && [ -f "${kernels[0]}" ] ||
  die "want exactly one kernel in /boot, found: ${kernels[*]}"
kver=${kernels[0]##*/vmlinuz-}
[ -f "$rootfs/boot/initrd.img-$kver" ] || die "no initrd.img-$kver in /boot for kernel $kver"
install -m 0644 "${kernels[0]}" "$work/out/vmlinuz"
install -m 0644 "$rootfs/boot/initrd.img-$kver" "$work/out/initrd.img"

log "mkfs.ext4 -d: ${conf[DISK_SIZE]} root file system labelled ${conf[ROOT_LABEL]}"
truncate -s "${conf[DISK_SIZE]}" "$work/root.raw"
run_logged mkfs mkfs.ext4 -F -L "${conf[ROOT_LABEL]}" -d "$rootfs" "$work/root.raw"
virtual_size=$(stat -c %s "$work/root.raw")
log "qemu-img convert -c: compressed qcow2"
run_logged qemu-img qemu-img convert -c -f raw -O qcow2 "$work/root.raw" "$work/out/disk.qcow2"
rm -f "$work/root.raw"
disk_size=$(stat -c %s "$work/out/disk.qcow2")

end=$(date +%s)
seconds=$((end - start))
cat >"$work/out/image.json" <<EOF
{
  "guest": "$guest",
  "hash": "$hash",
  "disk": "disk.qcow2",
  "diskFormat": "qcow2",
  "diskSize": $disk_size,
  "diskVirtualSize": $virtual_size,
  "kernel": "vmlinuz",
  "initrd": "initrd.img",
  "kernelVersion": "$kver",
  "kernelCmdline": "${conf[KERNEL_CMDLINE]}",
  "rootLabel": "${conf[ROOT_LABEL]}",
  "manifest": "manifest.txt",
  "suite": "${conf[SUITE]}",
  "variant": "${conf[VARIANT]}",
  "arch": "${conf[ARCH]}",
  "mirror": "${conf[MIRROR]}",
  "securityMirror": "${conf[SECURITY_MIRROR]}",
  "upgrade": "${conf[UPGRADE]}",
  "packages": $(wc -l <"$work/out/manifest.txt"),
  "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "buildSeconds": $seconds
}
EOF

rm -rf --one-file-system "$out"
mv "$work/out" "$out"

# Keep the newest $keep builds of this guest (a recipe edit makes a new
# hash; the old images would pile up at ~250 MB each).
keep=3
mapfile -t old < <(ls -1dt "$images/$guest"-* 2>/dev/null | tail -n +$((keep + 1)))
for dir in "${old[@]}"; do
  [[ ${dir##*/} =~ ^$guest-[0-9a-f]{16}$ ]] || continue
  log "removing old build $dir"
  rm -rf --one-file-system "$dir"
done
log "build time: ${seconds} s"
log "image size: $((disk_size / 1024 / 1024)) MiB qcow2 (virtual $((virtual_size / 1024 / 1024)) MiB), $(wc -l <"$out/manifest.txt") packages, kernel $kver"
echo "$out"
