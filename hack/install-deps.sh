#!/usr/bin/env bash
# Installs Debian packages the build and the tests need. Idempotent: it only
# calls apt-get when something is missing. Needs root (or sudo).
#
#   hack/install-deps.sh            the packages below (core, plugins, tests)
#   hack/install-deps.sh PKG...     exactly these (microvm/install-deps.sh)
#
# Default packages:
#   protobuf-compiler  protoc, for `make generate` and the staleness check
#   openssh-server     a real sshd for the transport and lifecycle tests
#   openssh-client     ssh/ssh-keygen for tests and benchmarks
#   cloud-init         `cloud-init schema` validates every rendered user-data
#   procps, passwd     pgrep; useradd/chpasswd for the throwaway test accounts
set -euo pipefail
if [ $# -gt 0 ]; then
  packages=("$@")
else
  packages=(protobuf-compiler openssh-server openssh-client cloud-init procps passwd)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Without recommends: qemu-system-x86 would pull in a whole desktop stack.
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
