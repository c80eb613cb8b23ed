package reliability_test

import (
	"os"
	"testing"

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

func TestMain(m *testing.M) {
	os.Exit(e2etest.RunSuite(m, "reliability", e2e.Options{Behaviour: behaviours.Choose, Logf: standinLog.Logf},
		func(b *e2e.Bed, dir string) { bed, binDir = b, dir }))
}
