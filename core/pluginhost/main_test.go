package pluginhost

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost/testplugins"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
)

// helperEnv makes the test binary act as a helper process (see TestMain).
const helperEnv = "PLUGINHOST_TEST_HELPER"

// startTimeout is generous: real plugins start in well under a second, but
// the tests must not fail on a loaded machine. Only the tests that start a
// non-plugin use a short one, since they wait for all of it.
const startTimeout = 20 * time.Second

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "resolve-dir" {
		// Resolve the directory named by GITLAB_RUNNER_KUBEVIRT_PLUGIN_DIR
		// as whatever user this process runs as; print the error.
		if _, err := ResolveDir(""); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(helperEnv) == "detach" {
		// Be a prepare stage: open the locked plugin named by
		// PLUGINHOST_TEST_PLUGIN detachable, detach it, print its
		// session state and end without stopping it.
		if err := detachHelper(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// Test plugin binaries, built once on first use by the tests that need
// them (parsing tests and the fuzzer do not).
var (
	buildOnce sync.Once
	buildDir  string
	bins      map[string]string
	buildErr  error
)

// testBins returns the test plugin binaries by variant key
// (testplugins.Standard).
func testBins(t testing.TB) map[string]string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "pluginhost-bins-")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		bins, buildErr = testplugins.Build(ctx, buildDir, testplugins.Standard())
	})
	if buildErr != nil {
		t.Fatalf("build test plugins: %v", buildErr)
	}
	return bins
}

// install copies the test plugin variant key into dir as
// gitlab-runner-kubevirt-plugin-<suffix> and returns its path.
func install(t testing.TB, dir, key, suffix string) string {
	t.Helper()
	src, ok := testBins(t)[key]
	if !ok {
		t.Fatalf("no test plugin variant %q", key)
	}
	dst := filepath.Join(dir, pluginapi.BinaryPrefix+suffix)
	copyFile(t, src, dst, 0o755)
	return dst
}

func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeScript writes an executable file into dir.
func writeScript(t *testing.T, dir, suffix, content string) string {
	t.Helper()
	p := filepath.Join(dir, pluginapi.BinaryPrefix+suffix)
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// sleeperMarker is the command line of the sleep that sleeperScript starts.
// It holds this test process's pid: others may run these tests at the same
// time on the same machine, and their sleepers must not count as ours.
func sleeperMarker() string { return fmt.Sprintf("sleep %d", 900000+os.Getpid()) }

// sleeperScript is a random executable that is no plugin: a shell script
// whose child (the sleep) keeps the script's stdout open.
func sleeperScript() string { return "#!/bin/sh\n" + sleeperMarker() + "\n" }

// flipByte changes one byte in the middle of the file at path.
func flipByte(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// newHost returns a host for dir whose log is returned too; it is closed
// when the test ends.
func newHost(t testing.TB, dir string, timeout time.Duration) (*Host, *plugintest.SyncBuffer) {
	t.Helper()
	logs := &plugintest.SyncBuffer{}
	h, err := New(Options{
		Dir:          dir,
		Logger:       hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}),
		StartTimeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h, logs
}

// lockDir writes plugins.lock for every plugin in dir, as `plugins lock`.
func lockDir(t testing.TB, h *Host) *Lock {
	t.Helper()
	l, _, err := h.BuildLock(context.Background(), false)
	if err != nil {
		t.Fatalf("BuildLock: %v", err)
	}
	if err := WriteLock(h.Dir(), l); err != nil {
		t.Fatalf("WriteLock: %v", err)
	}
	return l
}

// proc is a process seen in /proc.
type proc struct {
	pid, ppid, pgrp int
	state           string
	exe, cmdline    string
}

func (p proc) String() string {
	return fmt.Sprintf("pid %d (ppid %d, pgrp %d, state %s, exe %s, cmdline %q)", p.pid, p.ppid, p.pgrp, p.state, p.exe, p.cmdline)
}

// processes lists every process in /proc.
func processes(t *testing.T) []proc {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 3 {
			continue
		}
		p := proc{pid: pid, state: f[0]}
		p.ppid, _ = strconv.Atoi(f[1])
		p.pgrp, _ = strconv.Atoi(f[2])
		p.exe, _ = os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		p.cmdline = strings.ReplaceAll(string(bytes.TrimRight(cmd, "\x00")), "\x00", " ")
		out = append(out, p)
	}
	return out
}

// assertNoLeftovers fails if a process runs one of paths (or has marker in
// its command line), or if this test process has an unreaped (zombie)
// child.
func assertNoLeftovers(t *testing.T, marker string, paths ...string) {
	t.Helper()
	self := os.Getpid()
	for _, p := range processes(t) {
		switch {
		case p.ppid == self && p.state == "Z":
			t.Errorf("zombie child left: %s", p)
		case marker != "" && strings.Contains(p.cmdline, marker):
			t.Errorf("process left running: %s", p)
		default:
			for _, path := range paths {
				if p.exe == path || strings.HasPrefix(p.cmdline, path) {
					t.Errorf("plugin process left running: %s", p)
				}
			}
		}
	}
}
