package e2e_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// bed is the environment shared by the suite's tests, which run one after
// another: each asserts that the namespace is empty when it ends.
var bed *e2e.Bed

// binDir holds the binaries under test ($E2E_BIN_DIR, `make build`'s
// bin/, or built by TestMain).
var binDir string

// behaviours maps VMI names to stand-in behaviours; tests register before
// running a job.
var behaviours e2etest.Behaviours

// behave registers the behaviour of the VMI called name; seen counts the
// VMIs of that name the stand-in has met (1 for the first prepare try).
func behave(name string, f func(seen int) standin.Behaviour) { behaviours.Set(name, f) }

// standinLog keeps the stand-in's log for failing tests.
var standinLog e2etest.Log

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if err := e2e.CheckTools(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, skipped, cleanup, err := e2etest.BinDir(ctx, "e2e-bin-")
	defer cleanup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	binDir = dir
	if len(skipped) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: plugin directories without a main package (not built): %s\n", strings.Join(skipped, ", "))
	}
	bed, err = e2e.Start(ctx, e2e.Options{BinDir: binDir, Behaviour: behaviours.Choose, Logf: standinLog.Logf})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: start the environment: %v\n", err)
		return 1
	}
	code := m.Run()
	if err := bed.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: stop the environment: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
