#!/bin/sh
# Guest-specific steps of the debian-bookworm image. microvm/build.sh runs
# this inside the guest's root filesystem (chroot, no services running) after
# the packages and the rootfs/ overlay are in place.
set -eu

# Network: DHCP by systemd-networkd (rootfs/etc/systemd/network), DNS by
# systemd-resolved's stub resolver.
systemctl enable systemd-networkd.service systemd-resolved.service
ln -sfn ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf

# A CI VM lives for one job: no background apt runs that hold the dpkg lock
# while the job installs packages, no periodic maintenance.
systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer

# cloud-init sets the real hostname from the instance's meta-data.
echo localhost > /etc/hostname
