package e2e_test

import (
	"os"
	"testing"

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
	os.Exit(e2etest.RunSuite(m, "e2e", e2e.Options{Behaviour: behaviours.Choose, Logf: standinLog.Logf},
		func(b *e2e.Bed, dir string) { bed, binDir = b, dir }))
}
