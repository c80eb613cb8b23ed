#!/usr/bin/env bash
# Runs every fuzz target in the module for the given time each (default 30s).
# Seed corpora live in each package's testdata/fuzz/ and also run as plain
# tests in `make test`; findings are written there by go test.
set -euo pipefail
fuzztime=${1:-30s}
cd "$(dirname "$0")/.."
while read -r pkg; do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "== $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
  done
done < <(go list ./...)
