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
exec bash "$(dirname "$0")/../hack/install-deps.sh" debootstrap debian-archive-keyring e2fsprogs qemu-utils \
  qemu-system-x86 xorriso util-linux openssh-client openssh-server cloud-init
