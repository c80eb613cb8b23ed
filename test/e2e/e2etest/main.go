package e2etest

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

// BinDirEnv names a directory of prebuilt binaries (`make build`'s bin/)
// to test instead of building them.
const BinDirEnv = "E2E_BIN_DIR"

// BinDir returns the directory of the binaries under test. With
// $E2E_BIN_DIR set it is that directory, made absolute and checked with
// [e2e.CheckBinDir]: exactly the binaries `make build` made. Otherwise
// it builds them with [e2e.BuildBinaries] into a new temporary directory
// whose name starts with prefix; skipped lists the plugin directories
// without a main package. cleanup removes what BinDir created (nothing
// for $E2E_BIN_DIR); call it when the suite ends, also after an error.
func BinDir(ctx context.Context, prefix string) (dir string, skipped []string, cleanup func(), err error) {
	cleanup = func() {}
	if dir = os.Getenv(BinDirEnv); dir != "" {
		if dir, err = filepath.Abs(dir); err == nil {
			err = e2e.CheckBinDir(dir)
		}
		if err != nil {
			return "", nil, cleanup, fmt.Errorf("%s: %w", BinDirEnv, err)
		}
		return dir, nil, cleanup, nil
	}
	if dir, err = os.MkdirTemp("", prefix); err != nil {
		return "", nil, cleanup, fmt.Errorf("a directory for the binaries under test: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	if skipped, err = e2e.BuildBinaries(ctx, dir); err != nil {
		return "", skipped, cleanup, err
	}
	return dir, skipped, cleanup, nil
}

// Log keeps the stand-in's log for failing tests. Its zero value is an
// empty log; it is safe for concurrent use.
type Log struct {
	mu sync.Mutex
	b  strings.Builder
}

// Logf appends one timestamped line; it fits the Logf options of the
// beds and the stand-in.
func (l *Log) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// String returns the whole log.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Tail returns the last n bytes of the log (all of it when n <= 0 or the
// log is shorter).
func (l *Log) Tail(n int) string {
	s := l.String()
	if n > 0 && len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Behaviours maps VMI names to stand-in behaviours: tests register one
// before running a job, and [Behaviours.Choose] is the bed's
// standin.BehaviourFunc. Its zero value is empty (every VMI behaves
// normally); it is safe for concurrent use.
type Behaviours struct {
	mu sync.Mutex
	m  map[string]func(seen int) standin.Behaviour
	n  map[string]int
}

// Set registers the behaviour of the VMI called name. seen counts the
// VMIs of that name the stand-in has met since Set (1 for the first
// prepare try), so a behaviour can change between prepare tries.
func (b *Behaviours) Set(name string, f func(seen int) standin.Behaviour) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m, b.n = map[string]func(int) standin.Behaviour{}, map[string]int{}
	}
	b.m[name] = f
	b.n[name] = 0
}

// Delete forgets the behaviour of the VMI called name: it behaves
// normally again.
func (b *Behaviours) Delete(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, name)
	delete(b.n, name)
}

// Choose returns the behaviour registered for v's name, or
// standin.Normal().
func (b *Behaviours) Choose(v *kubevirtv1.VirtualMachineInstance) standin.Behaviour {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.m[v.Name]
	if f == nil {
		return standin.Normal()
	}
	b.n[v.Name]++
	return f(b.n[v.Name])
}

// RunSuite is the TestMain of a suite on an [e2e.Bed]: it checks the
// tools, finds or builds the binaries under test ([BinDir], temporary
// directory prefix name+"-bin-"), starts the bed with opts (BinDir filled
// in), hands bed and binary directory to setup, runs the tests and stops
// the bed. It returns the exit code: 1 when anything around the tests
// fails. Its messages on stderr start with name.
func RunSuite(m *testing.M, name string, opts e2e.Options, setup func(bed *e2e.Bed, binDir string)) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, name+": "+format+"\n", args...)
		return 1
	}
	if err := e2e.CheckTools(); err != nil {
		return fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, skipped, cleanup, err := BinDir(ctx, name+"-bin-")
	defer cleanup()
	if err != nil {
		return fail("%v", err)
	}
	if len(skipped) > 0 {
		fmt.Fprintf(os.Stderr, "%s: plugin directories without a main package (not built): %s\n", name, strings.Join(skipped, ", "))
	}
	opts.BinDir = dir
	bed, err := e2e.Start(ctx, opts)
	if err != nil {
		return fail("start the environment: %v", err)
	}
	setup(bed, dir)
	code := m.Run()
	if err := bed.Stop(); err != nil {
		fail("stop the environment: %v", err)
		code = max(code, 1)
	}
	return code
}
