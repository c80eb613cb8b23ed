package reliability_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// bed is the environment shared by the suite. Tests that stop the API
// server or scan the namespace run one after another; the hostile-input
// table runs in parallel (it creates nothing).
var bed *e2e.Bed

// binDir holds the binaries under test ($E2E_BIN_DIR, `make build`'s
// bin/, or built by TestMain).
var binDir string

// behaviours maps VMI names to stand-in behaviours.
var behaviours e2etest.Behaviours

// behave registers the behaviour of the VMI called name until the test
// ends.
func behave(t *testing.T, name string, b standin.Behaviour) {
	behaviours.Set(name, func(int) standin.Behaviour { return b })
	t.Cleanup(func() { behaviours.Delete(name) })
}

// standinLog keeps the stand-in's log for failing tests.
var standinLog e2etest.Log

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if err := e2e.CheckTools(); err != nil {
		fmt.Fprintf(os.Stderr, "reliability: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, _, cleanup, err := e2etest.BinDir(ctx, "reliability-bin-")
	defer cleanup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "reliability: %v\n", err)
		return 1
	}
	binDir = dir
	bed, err = e2e.Start(ctx, e2e.Options{BinDir: binDir, Behaviour: behaviours.Choose, Logf: standinLog.Logf})
	if err != nil {
		fmt.Fprintf(os.Stderr, "reliability: start the environment: %v\n", err)
		return 1
	}
	code := m.Run()
	if err := bed.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "reliability: stop the environment: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
