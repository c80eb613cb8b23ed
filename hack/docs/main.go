// Command docs regenerates the CLI reference in docs/cli from the
// gitlab-runner-kubevirt command tree (make docs).
//
// The command tree lives in package main of cmd/gitlab-runner-kubevirt,
// which cannot be imported; its test TestCLIDocs builds the tree and, with
// -update-cli-docs, writes it through package clidocs. This command runs
// that test from the repository root, so `go run ./hack/docs` and the
// staleness check in `go test` share one generator.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "docs:", err)
		os.Exit(1)
	}
}

// run regenerates docs/cli. It must run in the repository root (make
// does); go test resolves ./cmd/... from there.
func run(ctx context.Context) error {
	if _, err := os.Stat("go.mod"); err != nil {
		return fmt.Errorf("run from the repository root (go.mod not found): %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", "^TestCLIDocs$",
		"./cmd/gitlab-runner-kubevirt", "-args", "-update-cli-docs")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go test -run TestCLIDocs -update-cli-docs: %w", err)
	}
	return nil
}
