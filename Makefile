# gitlab-runner-kubevirt — build, test and developer tasks.
#
#   make demo      run examples/jobs/hello.yaml end to end on the embedded environment (DEMO_MODE=sshd|qemu)
#   make build     core + first-party plugins into bin/ (plugins in bin/plugins/, pinned by plugins.lock)
#   make test      everything CI runs: deps, generated-code check, lint, unit + integration + e2e tests
#   make e2e       the lifecycle suite on a real kube-apiserver + etcd
#   make lint      gofmt, go vet, staticcheck (pinned in tools/go.mod)
#   make generate  regenerate the plugin contract's Go code from its .proto
#   make image     build the Debian guest image (cached by recipe hash)
#   make containerdisk  the guest as a KubeVirt containerDisk archive in dist/
#   make container  multi-arch image (linux/amd64, linux/arm64) as an OCI archive in dist/, without Docker
#   make docs      regenerate the CLI reference in docs/cli
#   make reliability-load  100 concurrent jobs on the real API server + stand-in
#   make bench     benchmark suite (~8 min, kube-binaries cached) -> bench/latest.json, BENCHMARKS.md
#   make fuzz      run every fuzz target for FUZZTIME each
#   make clean

SHELL       := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO          ?= go
BIN         := bin
PLUGIN_DIR  := $(BIN)/plugins
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The core's version; each plugin carries its own semantic version.
LDFLAGS     := -s -w -X main.version=$(VERSION)
PLUGINS     := $(notdir $(wildcard plugins/*-*))
CORE        := $(BIN)/gitlab-runner-kubevirt
FUZZTIME    ?= 30s
TEST_TIMEOUT ?= 40m
# Extra modules with their own go.mod (the example third-party plugin).
EXAMPLE_MODULES := $(patsubst %/go.mod,%,$(wildcard examples/*/go.mod))

.PHONY: image containerdisk container demo docs docs-check bench reliability-load
.PHONY: all build test e2e unit lint vet staticcheck fmt-check generate generate-check deps kube-binaries fuzz clean help

all: build

help:
	@sed -n 's/^#   //p' Makefile

deps:
	@bash hack/install-deps.sh
	@bash microvm/install-deps.sh

# The Debian guest image (cached by a hash of its recipe) and its KubeVirt
# containerDisk archive.
GUEST     ?= debian-bookworm
IMAGE_REF ?= registry.example.com/gitlab-runner-kubevirt/$(GUEST):latest
image: deps
	bash microvm/build.sh $(GUEST)

containerdisk: image
	@mkdir -p dist
	$(GO) run ./microvm/cmd/containerdisk -image-dir "$$(bash microvm/build.sh --print-dir $(GUEST))" -ref $(IMAGE_REF) -tarball dist/$(GUEST)-containerdisk.tar

# The real kube-apiserver and etcd, built from the Go module proxy and cached
# under the user's cache dir by version (about 6.5 min cold, instant after).
kube-binaries:
	@bash hack/kube-binaries.sh >/dev/null

# The README's first command: a CI job through config/prepare/run/cleanup on
# a real kube-apiserver + etcd with the KubeVirt CRDs and a VMI stand-in.
DEMO_MODE ?= qemu
demo: deps kube-binaries build
	$(GO) run ./test/demo --bin-dir $(BIN) --mode $(DEMO_MODE)

build:
	@mkdir -p $(PLUGIN_DIR)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(CORE) ./cmd/gitlab-runner-kubevirt
	@for p in $(PLUGINS); do \
	  echo "$(GO) build -o $(PLUGIN_DIR)/gitlab-runner-kubevirt-plugin-$$p ./plugins/$$p"; \
	  $(GO) build -trimpath -ldflags '-s -w' -o $(PLUGIN_DIR)/gitlab-runner-kubevirt-plugin-$$p ./plugins/$$p; \
	done
	$(CORE) plugins lock --plugin-dir $(PLUGIN_DIR)

test: deps kube-binaries generate-check lint build
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	@for m in $(EXAMPLE_MODULES); do echo "== $$m"; (cd $$m && $(GO) test -count=1 ./...); done

unit:
	$(GO) test -count=1 -short ./...

e2e: deps kube-binaries build
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./test/...

lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	@for m in $(EXAMPLE_MODULES); do (cd $$m && $(GO) vet ./...); done

staticcheck:
	$(GO) tool -modfile=tools/go.mod staticcheck ./...

generate:
	bash hack/generate-proto.sh

# Regenerates into the work tree and fails if anything changed: the committed
# generated code must match the .proto and the pinned generators.
generate-check: generate
	@if ! git diff --quiet -- pluginapi/proto; then \
	  echo "generated code in pluginapi/proto is stale: run 'make generate' and commit"; \
	  git diff --stat -- pluginapi/proto; exit 1; fi

container:
	$(GO) run ./hack/container --version $(VERSION)

# CLI reference in docs/cli, generated from the cobra commands. go test
# (TestCLIDocs) fails when it is stale; docs-check says so without tests.
docs:
	$(GO) run ./hack/docs

docs-check: docs
	git diff --exit-code -- docs/cli

# 100 concurrent jobs through prepare, 5 runs and cleanup (make test runs 20).
reliability-load: deps kube-binaries
	RELIABILITY_LOAD_JOBS=100 $(GO) test -count=1 -run '^TestLoad$$' -timeout 30m -v ./test/reliability/

bench: deps kube-binaries
	$(GO) run ./bench/cmd/bench -out bench/latest.json -md BENCHMARKS.md

fuzz:
	@bash hack/fuzz.sh $(FUZZTIME)

clean:
	rm -rf $(BIN) dist
