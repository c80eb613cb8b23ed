package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// bed is the environment shared by the suite's tests, which run one after
// another: each asserts that the namespace is empty when it ends.
var bed *e2e.Bed

// binDir holds the binaries under test.
var binDir string

// binDirEnv names a directory of prebuilt binaries (`make build`'s bin/)
// to test instead of building them; unset, TestMain builds its own.
const binDirEnv = "E2E_BIN_DIR"

// behaviours maps VMI names to stand-in behaviours; tests register before
// running a job. A func lets a behaviour change between prepare tries.
var behaviours = struct {
	sync.Mutex
	m map[string]func(seen int) standin.Behaviour
	n map[string]int
}{m: map[string]func(int) standin.Behaviour{}, n: map[string]int{}}

// behave registers the behaviour of the VMI called name; seen counts the
// VMIs of that name the stand-in has met (1 for the first prepare try).
func behave(name string, f func(seen int) standin.Behaviour) {
	behaviours.Lock()
	defer behaviours.Unlock()
	behaviours.m[name] = f
	behaviours.n[name] = 0
}

func chooseBehaviour(v *kubevirtv1.VirtualMachineInstance) standin.Behaviour {
	behaviours.Lock()
	defer behaviours.Unlock()
	behaviours.n[v.Name]++
	if f := behaviours.m[v.Name]; f != nil {
		return f(behaviours.n[v.Name])
	}
	return standin.Normal()
}

// standinLog keeps the stand-in's log for failing tests.
var standinLog = struct {
	sync.Mutex
	strings.Builder
}{}

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
	var err error
	if binDir = os.Getenv(binDirEnv); binDir != "" {
		// Binaries built by `make build`: test exactly those.
		if binDir, err = filepath.Abs(binDir); err == nil {
			err = e2e.CheckBinDir(binDir)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s: %v\n", binDirEnv, err)
			return 1
		}
	} else {
		if binDir, err = os.MkdirTemp("", "e2e-bin-"); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		defer os.RemoveAll(binDir)
		skipped, err := e2e.BuildBinaries(ctx, binDir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		if len(skipped) > 0 {
			fmt.Fprintf(os.Stderr, "e2e: plugin directories without a main package (not built): %s\n", strings.Join(skipped, ", "))
		}
	}
	bed, err = e2e.Start(ctx, e2e.Options{
		BinDir:    binDir,
		Behaviour: chooseBehaviour,
		Logf: func(format string, args ...any) {
			standinLog.Lock()
			defer standinLog.Unlock()
			fmt.Fprintf(&standinLog, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
		},
	})
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
