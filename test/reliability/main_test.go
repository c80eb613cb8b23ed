package reliability_test

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

// bed is the environment shared by the suite. Tests that stop the API
// server or scan the namespace run one after another; the hostile-input
// table runs in parallel (it creates nothing).
var bed *e2e.Bed

// binDir holds the binaries under test.
var binDir string

// binDirEnv names a directory of prebuilt binaries (`make build`'s bin/).
const binDirEnv = "E2E_BIN_DIR"

// behaviours maps VMI names to stand-in behaviours.
var behaviours = struct {
	sync.Mutex
	m map[string]standin.Behaviour
}{m: map[string]standin.Behaviour{}}

// behave registers the behaviour of the VMI called name until the test
// ends.
func behave(t *testing.T, name string, b standin.Behaviour) {
	behaviours.Lock()
	defer behaviours.Unlock()
	behaviours.m[name] = b
	t.Cleanup(func() {
		behaviours.Lock()
		defer behaviours.Unlock()
		delete(behaviours.m, name)
	})
}

func chooseBehaviour(v *kubevirtv1.VirtualMachineInstance) standin.Behaviour {
	behaviours.Lock()
	defer behaviours.Unlock()
	if b, ok := behaviours.m[v.Name]; ok {
		return b
	}
	return standin.Normal()
}

// standinLog keeps the stand-in's log for failing tests.
var standinLog = struct {
	sync.Mutex
	strings.Builder
}{}

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if err := e2e.CheckTools(); err != nil {
		fmt.Fprintf(os.Stderr, "reliability: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var err error
	if binDir = os.Getenv(binDirEnv); binDir != "" {
		if binDir, err = filepath.Abs(binDir); err == nil {
			err = e2e.CheckBinDir(binDir)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "reliability: %s: %v\n", binDirEnv, err)
			return 1
		}
	} else {
		if binDir, err = os.MkdirTemp("", "reliability-bin-"); err != nil {
			fmt.Fprintf(os.Stderr, "reliability: %v\n", err)
			return 1
		}
		defer os.RemoveAll(binDir)
		if _, err := e2e.BuildBinaries(ctx, binDir); err != nil {
			fmt.Fprintf(os.Stderr, "reliability: %v\n", err)
			return 1
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
