#!/usr/bin/env bash
# Regenerates the plugin contract's Go code from pluginapi/proto/*/*.proto.
# Generator versions are pinned in tools/go.mod; protoc comes from Debian's
# protobuf-compiler (hack/install-deps.sh installs it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v protoc >/dev/null || { echo "protoc not found: run 'bash hack/install-deps.sh' (Debian package protobuf-compiler)" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd tools && go build -o "$bin/" google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc)
for dir in pluginapi/proto/*/; do
  protoc -I "$dir" \
    --plugin=protoc-gen-go="$bin/protoc-gen-go" --go_out="$dir" --go_opt=paths=source_relative \
    --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" --go-grpc_out="$dir" --go-grpc_opt=paths=source_relative \
    "$dir"*.proto
done
