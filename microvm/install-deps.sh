#!/usr/bin/env bash
# Installs the Debian packages that building a guest image (microvm/build.sh)
# and booting it (test/qemu) need. Idempotent: it calls apt-get only when
# something is missing. Needs root (or sudo).
#
#   debootstrap             the guest's root filesystem from Debian packages
#   debian-archive-keyring  lets debootstrap verify the Release signature
#   e2fsprogs               mkfs.ext4 -d: the root disk without a loop mount
#   qemu-utils              qemu-img convert -c: the compressed qcow2
#   qemu-system-x86         qemu-system-x86_64: boots the image (test/qemu)
#   xorriso                 xorrisofs builds the cidata / config-2 seed ISO the
#                           way KubeVirt's virt-launcher does; tests read it back
#   util-linux              flock (one build at a time), blkid
#   openssh-client          ssh-keygen in the image recipe tests
#   openssh-server          sshd -t checks the guest's sshd drop-in
#   cloud-init              cloud-init schema checks the guest's cloud.cfg.d
set -euo pipefail
packages=(debootstrap debian-archive-keyring e2fsprogs qemu-utils qemu-system-x86
  xorriso util-linux openssh-client openssh-server cloud-init)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "microvm/install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "microvm/install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
