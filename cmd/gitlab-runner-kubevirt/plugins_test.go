package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost/testplugins"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// The gitlab-runner-kubevirt binary and the test plugins, built once with
// go build by the first test that needs them.
var (
	buildOnce sync.Once
	coreBin   string
	plugBins  map[string]string
	buildErr  error
)

func binaries(t *testing.T) (string, map[string]string) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "plugins-cmd-test-")
		if err != nil {
			buildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		coreBin = filepath.Join(dir, "gitlab-runner-kubevirt")
		out, err := exec.CommandContext(ctx, "go", "build", "-o", coreBin, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New("go build gitlab-runner-kubevirt: " + err.Error() + "\n" + string(out))
			return
		}
		plugBins, buildErr = testplugins.Build(ctx, dir, testplugins.Standard())
	})
	if buildErr != nil {
		t.Fatalf("build binaries: %v", buildErr)
	}
	return coreBin, plugBins
}

// result is a finished gitlab-runner-kubevirt process.
type result struct {
	code           int
	stdout, stderr string
}

// runCore runs the built binary with args and the environment env (plus
// PATH), as an admin would.
func runCore(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	r := result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	t.Logf("$ gitlab-runner-kubevirt %s\nexit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

func install(t *testing.T, dir, key, suffix string) string {
	t.Helper()
	_, bins := binaries(t)
	dst := filepath.Join(dir, pluginapi.BinaryPrefix+suffix)
	copyFile(t, bins[key], dst)
	return dst
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
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

func expect(t *testing.T, r result, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d", r.code, code)
	}
	for _, w := range stdout {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("stdout lacks %q", w)
		}
	}
	for _, w := range stderr {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q", w)
		}
	}
}

// listJSON runs `plugins list -o json` and returns its rows by file name.
func listJSON(t *testing.T, bin, dir string, extra ...string) map[string]pluginhost.Report {
	t.Helper()
	r := runCore(t, bin, nil, append([]string{"--plugin-dir", dir, "plugins", "list", "-o", "json"}, extra...)...)
	if r.code != 0 {
		t.Fatalf("plugins list -o json: exit %d", r.code)
	}
	var rows []pluginhost.Report
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("plugins list -o json printed invalid JSON: %v", err)
	}
	out := map[string]pluginhost.Report{}
	for _, row := range rows {
		out[filepath.Base(row.Path)] = row
	}
	return out
}

// TestPluginsLockListHealth walks an admin through install, lock, list,
// health, a changed binary, and a re-lock.
func TestPluginsLockListHealth(t *testing.T) {
	bin, _ := binaries(t)
	dir := t.TempDir()
	install(t, dir, "os", "test-os")
	tr := install(t, dir, "transport", "test-transport")
	osFile, trFile := pluginapi.BinaryPrefix+"test-os", pluginapi.BinaryPrefix+"test-transport"

	// Before locking: listed as not-locked; health refuses to run.
	rows := listJSON(t, bin, dir)
	if rows[osFile].Status != pluginhost.StatusNotLocked || rows[trFile].Status != pluginhost.StatusNotLocked {
		t.Errorf("before lock: statuses %s, %s; want not-locked", rows[osFile].Status, rows[trFile].Status)
	}
	expect(t, runCore(t, bin, nil, "--plugin-dir", dir, "plugins", "health"), 1, nil,
		[]string{"Error: no plugins.lock in " + dir, "plugins lock"})

	// Lock.
	r := runCore(t, bin, nil, "--plugin-dir", dir, "plugins", "lock")
	expect(t, r, 0, []string{"added", "test-os", "test-transport", "wrote " + filepath.Join(dir, "plugins.lock") + " (2 plugins)"}, nil)
	fi, err := os.Stat(filepath.Join(dir, pluginhost.LockFileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("plugins.lock mode %v, want 0644", fi.Mode().Perm())
	}
	lock, err := pluginhost.ReadLock(dir)
	if err != nil {
		t.Fatalf("the written lock does not parse: %v", err)
	}
	if len(lock.Plugins) != 2 {
		t.Fatalf("lock has %d plugins, want 2", len(lock.Plugins))
	}

	// List and health: all ok.
	rows = listJSON(t, bin, dir)
	for _, f := range []string{osFile, trFile} {
		row := rows[f]
		if row.Status != pluginhost.StatusOK || len(row.SHA256) != 64 || row.SHA256 != row.LockedSHA256 || row.Version == "" || row.Kind == "" {
			t.Errorf("after lock: row %+v, want ok with GetInfo and full sums", row)
		}
	}
	expect(t, runCore(t, bin, nil, "--plugin-dir", dir, "plugins", "health"), 0,
		[]string{"STATUS", "ok      test-os", "ready", "test-transport"}, nil)

	// One byte of a binary changes: health fails and names it; list shows
	// it; lock pins the new sum.
	flipByte(t, tr)
	r = runCore(t, bin, nil, "--plugin-dir", dir, "plugins", "health")
	expect(t, r, 1, []string{"checksum-mismatch", tr}, []string{
		"Error: 1 of 2 plugins failed: test-transport (" + trFile + ": checksum-mismatch)"})
	if rows := listJSON(t, bin, dir); rows[trFile].Status != pluginhost.StatusChecksumMismatch || !strings.Contains(rows[trFile].Error, rows[trFile].LockedSHA256) {
		t.Errorf("list after the change: %+v, want checksum-mismatch naming the locked sum", rows[trFile])
	}
	expect(t, runCore(t, bin, nil, "--plugin-dir", dir, "plugins", "lock"), 0, []string{"changed", "unchanged"}, nil)
	expect(t, runCore(t, bin, nil, "--plugin-dir", dir, "plugins", "health"), 0, nil, nil)

	// A removed plugin: lock reports it, list shows nothing stale.
	if err := os.Remove(tr); err != nil {
		t.Fatal(err)
	}
	expect(t, runCore(t, bin, nil, "--plugin-dir", dir, "plugins", "lock"), 0, []string{"removed", "(1 plugins)"}, nil)
}

func TestPluginsNonPlugins(t *testing.T) {
	bin, _ := binaries(t)
	dir := t.TempDir()
	install(t, dir, "os", "test-os")
	sleeper := filepath.Join(dir, pluginapi.BinaryPrefix+"sleeper")
	// The sleep's argument holds this process's pid, so a concurrent run
	// of this test elsewhere on the machine is not mistaken for ours.
	marker := fmt.Sprintf("sleep %d", 800000+os.Getpid())
	if err := os.WriteFile(sleeper, []byte("#!/bin/sh\n"+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, dir, "api99", "test-api99")
	timeout := []string{"--start-timeout", "3s"}

	// A random executable is listed as not-a-plugin, within the start
	// timeout (the test's own deadline catches a hang).
	rows := listJSON(t, bin, dir, timeout...)
	if row := rows[filepath.Base(sleeper)]; row.Status != pluginhost.StatusNotAPlugin || !strings.Contains(row.Error, "within 3s") {
		t.Errorf("sleeper row %+v, want not-a-plugin", row)
	}
	if row := rows[pluginapi.BinaryPrefix+"test-api99"]; row.Status != pluginhost.StatusAPIUnsupported {
		t.Errorf("api99 row %+v, want api-unsupported", row)
	}
	r := runCore(t, bin, nil, append([]string{"--plugin-dir", dir, "plugins", "list"}, timeout...)...)
	expect(t, r, 0, []string{"NAME", "KIND", "VERSION", "API", "PATH", "SHA256", "STATUS", "not-a-plugin", "api-unsupported", "not-locked"},
		[]string{"not-a-plugin: plugin " + sleeper})

	// lock refuses, names the files, writes nothing.
	r = runCore(t, bin, nil, append([]string{"--plugin-dir", dir, "plugins", "lock"}, timeout...)...)
	expect(t, r, 1, nil, []string{"refusing to write plugins.lock", sleeper, "test-api99", "--skip-invalid"})
	if _, err := os.Stat(filepath.Join(dir, pluginhost.LockFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused lock wrote plugins.lock: %v", err)
	}
	// --skip-invalid locks the rest.
	r = runCore(t, bin, nil, append([]string{"--plugin-dir", dir, "plugins", "lock", "--skip-invalid"}, timeout...)...)
	expect(t, r, 0, []string{"test-os", "(1 plugins)"}, []string{"skipped (--skip-invalid)", sleeper})

	// No process survives: not the script, not its sleep.
	if left := processesMatching(t, marker); len(left) > 0 {
		t.Errorf("a non-plugin's processes are still running: %v", left)
	}
}

// processesMatching returns the command lines in /proc that contain s.
func processesMatching(t *testing.T, s string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the process ended meanwhile
		}
		if cl := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cl, s) {
			out = append(out, filepath.Dir(f)+": "+cl)
		}
	}
	return out
}

func TestPluginsHealthFailures(t *testing.T) {
	bin, _ := binaries(t)
	tests := []struct {
		name    string
		install map[string]string // suffix -> variant
		code    int
		stdout  []string
		stderr  []string
	}{
		{name: "all healthy, one degraded", install: map[string]string{"test-os": "os", "test-degraded": "degraded"}, code: 0,
			stdout: []string{"degraded", "slow disk", "ok"}},
		{name: "one unhealthy", install: map[string]string{"test-os": "os", "test-failing": "failing"}, code: 1,
			stdout: []string{"unhealthy", "helper tool missing"},
			stderr: []string{"Error: 1 of 2 plugins failed: test-failing (" + pluginapi.BinaryPrefix + "test-failing: unhealthy)"}},
		{name: "plugin crashing in a call still answers Health", install: map[string]string{"test-crash": "crash"}, code: 0,
			stdout: []string{"ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for suffix, variant := range tt.install {
				install(t, dir, variant, suffix)
			}
			expect(t, runCore(t, bin, nil, "--plugin-dir", dir, "plugins", "lock"), 0, nil, nil)
			expect(t, runCore(t, bin, nil, "--plugin-dir", dir, "plugins", "health"), tt.code, tt.stdout, tt.stderr)
		})
	}
}

func TestPluginsDirectoryAndFlags(t *testing.T) {
	bin, _ := binaries(t)
	dir := t.TempDir()
	install(t, dir, "os", "test-os")
	// The core installed with plugins/ beside it.
	home := t.TempDir()
	installed := filepath.Join(home, "gitlab-runner-kubevirt")
	copyFile(t, bin, installed)
	if err := os.Mkdir(filepath.Join(home, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, filepath.Join(home, "plugins"), "transport", "test-transport")
	bare := filepath.Join(t.TempDir(), "gitlab-runner-kubevirt")
	copyFile(t, bin, bare)

	tests := []struct {
		name   string
		bin    string
		env    []string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "env names the dir", bin: bin, env: []string{pluginhost.DirEnv + "=" + dir}, args: []string{"plugins", "list"},
			stdout: []string{"test-os", filepath.Join(dir, pluginapi.BinaryPrefix+"test-os")}},
		{name: "flag wins over env", bin: bin, env: []string{pluginhost.DirEnv + "=/nonexistent"}, args: []string{"--plugin-dir", dir, "plugins", "list"},
			stdout: []string{"test-os"}},
		{name: "default: plugins/ beside the binary", bin: installed, args: []string{"plugins", "list"},
			stdout: []string{"test-transport", filepath.Join(home, "plugins")}},
		{name: "missing flag dir", bin: bin, args: []string{"--plugin-dir", "/nonexistent/plugins", "plugins", "list"}, code: 1,
			stderr: []string{"plugin directory /nonexistent/plugins (from --plugin-dir) does not exist"}},
		{name: "missing env dir", bin: bin, env: []string{pluginhost.DirEnv + "=/nonexistent/env"}, args: []string{"plugins", "health"}, code: 1,
			stderr: []string{"/nonexistent/env (from " + pluginhost.DirEnv + ")"}},
		{name: "missing default dir", bin: bare, args: []string{"plugins", "lock"}, code: 1,
			stderr: []string{filepath.Join(filepath.Dir(bare), "plugins") + " (from default: plugins/ beside " + bare + ") does not exist"}},
		{name: "bad output format", bin: bin, args: []string{"--plugin-dir", dir, "plugins", "list", "-o", "yaml"}, code: 1,
			stderr: []string{`--output "yaml": must be table or json`}},
		{name: "bad start timeout", bin: bin, args: []string{"--plugin-dir", dir, "plugins", "list", "--start-timeout", "0s"}, code: 1,
			stderr: []string{`--start-timeout "0s": must be more than 0s`}},
		{name: "bad log level", bin: bin, args: []string{"--plugin-dir", dir, "--log-level", "loud", "plugins", "list"}, code: 1,
			stderr: []string{`--log-level "loud": must be one of`}},
		{name: "json logs on stderr", bin: bin, args: []string{"--plugin-dir", dir, "--log-level", "debug", "--log-format", "json", "plugins", "list"},
			stdout: []string{"NAME"}, stderr: []string{`"@level":"debug"`, `"@message":"plugin directory"`}},
		{name: "extra argument", bin: bin, args: []string{"--plugin-dir", dir, "plugins", "health", "now"}, code: 1,
			stderr: []string{`unknown command "now"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expect(t, runCore(t, tt.bin, tt.env, tt.args...), tt.code, tt.stdout, tt.stderr)
		})
	}
}

func TestPluginsHelp(t *testing.T) {
	bin, _ := binaries(t)
	for _, sub := range []string{"list", "health", "lock"} {
		t.Run(sub, func(t *testing.T) {
			r := runCore(t, bin, nil, "plugins", sub, "--help")
			expect(t, r, 0, []string{"Examples:", "gitlab-runner-kubevirt plugins " + sub, "--start-timeout", "--plugin-dir"}, nil)
		})
	}
}
