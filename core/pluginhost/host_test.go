package pluginhost

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// mixedTimeout is the start timeout of hosts that start both real plugins
// and non-plugins: every non-plugin costs all of it.
const mixedTimeout = 5 * time.Second

func containsAll(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s %q\ndoes not contain %q", what, got, w)
		}
	}
}

// handEntry builds the lock entry of a binary without starting it, as an
// admin editing plugins.lock by hand would.
func handEntry(t *testing.T, path, name string, kind Kind) Entry {
	t.Helper()
	sum, err := FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	e := Entry{File: filepath.Base(path), SHA256: sum, Name: name, Kind: kind, Version: "1.0.0", APIVersions: []int{1}}
	if kind == KindOS {
		e.OSFamily, e.Shells = "linux", []string{"bash"}
	}
	return e
}

func TestOpenRefusesChangedBinary(t *testing.T) {
	dir := t.TempDir()
	path := install(t, dir, "os", "test-os")
	h, _ := newHost(t, dir, startTimeout)
	lock := lockDir(t, h)
	locked := lock.Plugins[0].SHA256

	flipByte(t, path)
	now, err := FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.Open(context.Background(), lock.Plugins[0])
	if err == nil {
		p.Close()
		t.Fatal("Open started a binary whose sha256 left the lock")
	}
	if got := StatusOf(err); got != StatusChecksumMismatch {
		t.Errorf("status = %s, want %s", got, StatusChecksumMismatch)
	}
	containsAll(t, "error", err.Error(), path, now, locked, "re-run `gitlab-runner-kubevirt plugins lock`")
	assertNoLeftovers(t, "", path)
}

func TestOpenRefusesSwappedSymlink(t *testing.T) {
	tests := []struct {
		name string
		// to is the variant the symlink points at when Open runs.
		to string
		// relock pins the new target's sha256 in the lock entry (a
		// hand-edited lock), so the GetInfo check must catch the swap.
		relock     bool
		wantStatus Status
		want       []string
	}{
		{name: "target replaced", to: "transport", wantStatus: StatusChecksumMismatch, want: []string{"sha256 is", "but plugins.lock pins"}},
		{name: "lock edited to another kind", to: "transport", relock: true, wantStatus: StatusKindMismatch,
			want: []string{"reports kind transport but plugins.lock records kind os"}},
		{name: "lock edited to another os plugin", to: "pwsh", relock: true, wantStatus: StatusInfoMismatch,
			want: []string{"reports test-win 2.0.0 (API [1]) but plugins.lock records test-os 1.0.0 (API [1])", "replaced by another plugin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := t.TempDir() // real binaries live outside the plugin dir
			orig := filepath.Join(store, "orig")
			other := filepath.Join(store, "other")
			copyFile(t, testBins(t)["os"], orig, 0o755)
			copyFile(t, testBins(t)[tt.to], other, 0o755)
			dir := t.TempDir()
			link := filepath.Join(dir, pluginapi.BinaryPrefix+"test-os")
			if err := os.Symlink(orig, link); err != nil {
				t.Fatal(err)
			}
			h, _ := newHost(t, dir, startTimeout)
			entry := lockDir(t, h).Plugins[0]

			// Swap the symlink atomically, as a package manager would.
			tmp := link + ".new"
			if err := os.Symlink(other, tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, link); err != nil {
				t.Fatal(err)
			}
			if tt.relock {
				sum, err := FileSHA256(other)
				if err != nil {
					t.Fatal(err)
				}
				entry.SHA256 = sum
			}
			p, err := h.Open(context.Background(), entry)
			if err == nil {
				p.Close()
				t.Fatalf("Open accepted %s behind the symlink", tt.to)
			}
			if got := StatusOf(err); got != tt.wantStatus {
				t.Errorf("status = %s, want %s (error: %v)", got, tt.wantStatus, err)
			}
			containsAll(t, "error", err.Error(), append(tt.want, link, "plugins lock")...)
			if h.Running() != 0 {
				t.Errorf("host still tracks %d plugins after a refused Open", h.Running())
			}
			assertNoLeftovers(t, "", orig, other)
		})
	}
}

// TestOpenRefusesBrokenPlugins starts binaries that are not (working)
// plugins through the production path: each must be refused with a clear
// error within the start timeout, leaving no process behind.
func TestOpenRefusesBrokenPlugins(t *testing.T) {
	const timeout = 3 * time.Second
	tests := []struct {
		name       string
		variant    string // a test plugin variant, or
		script     string // an executable file's content
		wantStatus Status
		want       []string
	}{
		{name: "shell script that sleeps", script: sleeperScript(), wantStatus: StatusNotAPlugin,
			want: []string{"did not complete the go-plugin handshake within 3s", "not a gitlab-runner-kubevirt plugin"}},
		{name: "program that exits", script: "#!/bin/sh\necho 'usage: foo' >&2\nexit 2\n", wantStatus: StatusNotAPlugin,
			want: []string{"exited before the go-plugin handshake", "remove it from the plugin directory"}},
		{name: "text file with execute bit", script: "just some notes\n", wantStatus: StatusNotAPlugin,
			want: []string{"exec format error", "not a program for this machine"}},
		{name: "missing interpreter", script: "#!/nonexistent/interpreter\n", wantStatus: StatusMissing,
			want: []string{"interpreter"}},
		{name: "plugin writing to stdout", variant: "stdout", wantStatus: StatusNotAPlugin,
			want: []string{`printed "hello from a plugin that forgot stdout carries the handshake" on stdout before the go-plugin handshake`, "stderr"}},
		{name: "plugin of API 99 only", variant: "api99", wantStatus: StatusAPIUnsupported,
			want: []string{"serves no plugin API version this gitlab-runner-kubevirt speaks ([1])", "Plugin version: 99", "install a build of the plugin for plugin API [1]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var path string
			if tt.variant != "" {
				path = install(t, dir, tt.variant, "broken")
			} else {
				path = writeScript(t, dir, "broken", tt.script)
			}
			h, _ := newHost(t, dir, timeout)
			p, err := h.Open(context.Background(), handEntry(t, path, "broken", KindOS))
			if err == nil {
				p.Close()
				t.Fatal("Open accepted it")
			}
			if got := StatusOf(err); got != tt.wantStatus {
				t.Errorf("status = %s, want %s (error: %v)", got, tt.wantStatus, err)
			}
			containsAll(t, "error", err.Error(), append(tt.want, path)...)
			assertNoLeftovers(t, sleeperMarker(), path)
		})
	}
}

func TestPluginCallErrors(t *testing.T) {
	dir := t.TempDir()
	crash := install(t, dir, "crash", "test-crash")
	install(t, dir, "os", "test-os")
	install(t, dir, "transport", "test-transport")
	h, _ := newHost(t, dir, startTimeout)
	lockDir(t, h)
	ctx := context.Background()

	t.Run("crash in Render", func(t *testing.T) {
		p, err := h.OpenByName(ctx, KindOS, "test-crash")
		if err != nil {
			t.Fatal(err)
		}
		pid := p.Pid()
		osp, err := p.OS()
		if err != nil {
			t.Fatal(err)
		}
		_, err = osp.Render(ctx, &pluginv1.RenderRequest{Username: "ci", Hostname: "job-1"})
		if err == nil {
			t.Fatal("Render of a crashing plugin succeeded")
		}
		containsAll(t, "error", err.Error(), "plugin test-crash 1.0.0", crash, "Render", "stopped answering; it exited or crashed")
		p.Close()
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("/proc/%d still exists after Close (zombie or alive): %v", pid, err)
		}
		assertNoLeftovers(t, "", crash)
	})
	t.Run("invalid input passes through unchanged", func(t *testing.T) {
		p, err := h.OpenByName(ctx, KindOS, "test-os")
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		osp, err := p.OS()
		if err != nil {
			t.Fatal(err)
		}
		_, err = osp.Render(ctx, &pluginv1.RenderRequest{Username: "ci\nroot", Hostname: "job-1"})
		if !pluginapi.IsInvalidInput(err) {
			t.Fatalf("Render error %v is not an InvalidInput", err)
		}
		if got, want := pluginapi.ErrorMessage(err), `username "ci\nroot": must not contain a line break`; got != want {
			t.Errorf("message = %q, want %q", got, want)
		}
	})
	t.Run("kind guard", func(t *testing.T) {
		p, err := h.OpenByName(ctx, KindTransport, "test-transport")
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if _, err := p.OS(); err == nil || !strings.Contains(err.Error(), "is a transport plugin, not an os plugin") {
			t.Errorf("OS() of a transport plugin: error = %v", err)
		}
		tr, err := p.Transport()
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.WaitReady(ctx, &pluginv1.Target{Host: "127.0.0.1", Port: 22})
		containsAll(t, "WaitReady error", errString(err), "plugin test-transport 0.3.0", "WaitReady", "reaches no guest")
	})
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestHighestVersionWins(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "os", "test-os")
	install(t, dir, "os-new", "test-os-next")
	h, logs := newHost(t, dir, startTimeout)
	lockDir(t, h)
	open := map[string]func() (*Plugin, error){
		"by name":  func() (*Plugin, error) { return h.OpenByName(context.Background(), KindOS, "test-os") },
		"by shell": func() (*Plugin, error) { return h.OpenForShell(context.Background(), "bash") },
	}
	for name, fn := range open {
		t.Run(name, func(t *testing.T) {
			p, err := fn()
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if got := p.PluginInfo().GetVersion(); got != "1.10.0" {
				t.Errorf("started version %s, want 1.10.0 (1.10.0 > 1.0.0)", got)
			}
			if got := p.Entry().File; got != pluginapi.BinaryPrefix+"test-os-next" {
				t.Errorf("started file %s", got)
			}
			containsAll(t, "log", logs.String(), "[WARN]", "using the highest version", "name=test-os",
				"using=\""+pluginapi.BinaryPrefix+"test-os-next 1.10.0\"", pluginapi.BinaryPrefix+"test-os 1.0.0")
		})
	}
}

func TestPluginEnvironment(t *testing.T) {
	// The core's environment has credentials and job variables; none may
	// reach a plugin.
	t.Setenv("KUBECONFIG", "/root/.kube/config")
	t.Setenv("CUSTOM_ENV_CI_JOB_TOKEN", "glcbt-not-for-plugins")
	t.Setenv("CUSTOM_ENV_VM_CPU_REQUEST", "2")
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	dir := t.TempDir()
	install(t, dir, "os", "test-os")
	h, err := New(Options{Dir: dir, StartTimeout: startTimeout, PluginLogLevel: "debug"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lockDir(t, h)
	p, err := h.OpenByName(context.Background(), KindOS, "test-os")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/environ")
	if err != nil {
		t.Fatalf("read the plugin's environment: %v", err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	// What go-plugin itself adds for the handshake and AutoMTLS.
	allowed := []string{"PATH", pluginapi.LogLevelEnv, pluginapi.Handshake().MagicCookieKey,
		"PLUGIN_MIN_PORT", "PLUGIN_MAX_PORT", "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_CLIENT_CERT"}
	for k := range env {
		if !slices.Contains(allowed, k) {
			t.Errorf("plugin environment has %s; only %v are allowed", k, allowed)
		}
	}
	checks := []struct{ key, want string }{
		{"PATH", os.Getenv("PATH")},
		{pluginapi.LogLevelEnv, "debug"},
		{pluginapi.Handshake().MagicCookieKey, pluginapi.Handshake().MagicCookieValue},
	}
	for _, c := range checks {
		if got := env[c.key]; got != c.want {
			t.Errorf("plugin %s = %q, want %q", c.key, got, c.want)
		}
	}
	if strings.Contains(string(raw), "glcbt-not-for-plugins") || strings.Contains(string(raw), "KUBECONFIG") || strings.Contains(string(raw), "CUSTOM_ENV_") {
		t.Errorf("core environment leaked into the plugin: %q", raw)
	}
}

// TestCloseFromSignal closes the host from a signal handler while plugins
// run, as a stage does on GitLab's SIGTERM.
func TestCloseFromSignal(t *testing.T) {
	dir := t.TempDir()
	osPath := install(t, dir, "os", "test-os")
	trPath := install(t, dir, "transport", "test-transport")
	h, _ := newHost(t, dir, startTimeout)
	lockDir(t, h)
	ctx := context.Background()
	var pids []int
	for _, open := range []struct {
		kind Kind
		name string
	}{{KindOS, "test-os"}, {KindTransport, "test-transport"}} {
		p, err := h.OpenByName(ctx, open.kind, open.name)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, p.Pid())
	}
	// Each plugin leads its own process group, so GitLab's SIGTERM to the
	// stage's group reaches only the core.
	for _, pr := range processes(t) {
		if slices.Contains(pids, pr.pid) && pr.pgrp != pr.pid {
			t.Errorf("plugin %s is not its own process group leader", pr)
		}
	}

	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGUSR1)
	defer stop()
	closed := make(chan struct{})
	context.AfterFunc(sigCtx, func() { h.Close(); close(closed) })
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	<-closed
	h.Close() // again: a no-op

	if n := h.Running(); n != 0 {
		t.Errorf("host tracks %d plugins after Close", n)
	}
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("plugin pid %d still in /proc after Close", pid)
		}
	}
	assertNoLeftovers(t, "", osPath, trPath)
	if _, err := h.OpenByName(ctx, KindOS, "test-os"); !errors.Is(err, ErrClosed) {
		t.Errorf("Open after Close: error = %v, want ErrClosed", err)
	}
}

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	okPath := install(t, dir, "os", "test-os")
	changed := install(t, dir, "transport", "test-transport")
	gone := install(t, dir, "failing", "test-failing")
	h, _ := newHost(t, dir, mixedTimeout)
	lock := lockDir(t, h)
	lockedTransport, _ := lock.Entry(filepath.Base(changed))

	// After locking: a new plugin, a changed one, a removed one, and
	// files that are not plugins.
	newPath := install(t, dir, "pwsh", "test-win")
	flipByte(t, changed)
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	noExec := install(t, dir, "os", "noexec")
	if err := os.Chmod(noExec, 0o644); err != nil {
		t.Fatal(err)
	}
	subdir := filepath.Join(dir, pluginapi.BinaryPrefix+"subdir")
	if err := os.Mkdir(subdir, 0o755); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, pluginapi.BinaryPrefix+"dangling")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	badName := writeScript(t, dir, "Bad_Name", "#!/bin/sh\n")
	sleeper := writeScript(t, dir, "sleeper", sleeperScript())
	api99 := install(t, dir, "api99", "test-api99")
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("not a plugin, ignored"), 0o755); err != nil {
		t.Fatal(err)
	}
	changedSum, _ := FileSHA256(changed)

	rows, err := h.Inspect(context.Background())
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	want := []struct {
		path   string
		name   string
		status Status
		errs   []string
	}{
		{okPath, "test-os", StatusOK, nil},
		{changed, "test-transport", StatusChecksumMismatch, []string{changedSum, lockedTransport.SHA256, "plugins lock"}},
		{gone, "test-failing", StatusMissing, []string{"no such file", "plugins lock"}},
		{newPath, "test-win", StatusNotLocked, []string{"plugins.lock does not list it", "run `gitlab-runner-kubevirt plugins lock`"}},
		{noExec, "noexec", StatusNotExecutable, []string{"no execute bit", "chmod 0755"}},
		{subdir, "subdir", StatusNotRegular, []string{"is a directory"}},
		{dangling, "dangling", StatusNotRegular, []string{"no such file", "target is gone"}},
		{badName, "Bad_Name", StatusInvalidName, []string{"DNS-1123 label"}},
		{sleeper, "sleeper", StatusNotAPlugin, []string{"did not complete the go-plugin handshake within 5s"}},
		{api99, "test-api99", StatusAPIUnsupported, []string{"Plugin version: 99"}},
	}
	if len(rows) != len(want) {
		for _, r := range rows {
			t.Logf("row: %+v", r)
		}
		t.Fatalf("Inspect returned %d rows, want %d", len(rows), len(want))
	}
	byPath := map[string]Report{}
	for _, r := range rows {
		byPath[r.Path] = r
	}
	for _, w := range want {
		t.Run(filepath.Base(w.path), func(t *testing.T) {
			r, ok := byPath[w.path]
			if !ok {
				t.Fatalf("no row for %s", w.path)
			}
			if r.Status != w.status || r.Name != w.name {
				t.Errorf("row = %+v, want name %s status %s", r, w.name, w.status)
			}
			if w.status == StatusOK && r.Error != "" {
				t.Errorf("ok row has error %q", r.Error)
			}
			containsAll(t, "row error", r.Error, w.errs...)
		})
	}
	if r := byPath[okPath]; r.Kind != KindOS || r.Version != "1.0.0" || !slices.Equal(r.APIVersions, []int{1}) || r.SHA256 != r.LockedSHA256 || len(r.SHA256) != 64 {
		t.Errorf("ok row lacks GetInfo or sums: %+v", r)
	}
	assertNoLeftovers(t, sleeperMarker(), okPath, changed, newPath, api99, sleeper)
}

func TestBuildLock(t *testing.T) {
	dir := t.TempDir()
	osPath := install(t, dir, "os", "test-os")
	trPath := install(t, dir, "transport", "test-transport")
	bad := writeScript(t, dir, "sleeper", sleeperScript())
	h, _ := newHost(t, dir, mixedTimeout)

	_, rows, err := h.BuildLock(context.Background(), false)
	if err == nil {
		t.Fatal("BuildLock accepted a non-plugin")
	}
	containsAll(t, "error", err.Error(), "refusing to write plugins.lock", bad, "not-a-plugin", "--skip-invalid")
	if len(rows) != 3 {
		t.Errorf("got %d report rows, want 3", len(rows))
	}

	lock, _, err := h.BuildLock(context.Background(), true)
	if err != nil {
		t.Fatalf("BuildLock(skipInvalid): %v", err)
	}
	osSum, _ := FileSHA256(osPath)
	trSum, _ := FileSHA256(trPath)
	want := []Entry{
		{File: pluginapi.BinaryPrefix + "test-os", SHA256: osSum, Name: "test-os", Kind: KindOS, Version: "1.0.0", APIVersions: []int{1},
			OSFamily: "linux", Shells: []string{"bash"}, Capabilities: []string{"test"}},
		{File: pluginapi.BinaryPrefix + "test-transport", SHA256: trSum, Name: "test-transport", Kind: KindTransport, Version: "0.3.0", APIVersions: []int{1},
			Capabilities: []string{"test"}},
	}
	if len(lock.Plugins) != len(want) {
		t.Fatalf("lock has %d plugins, want %d: %+v", len(lock.Plugins), len(want), lock.Plugins)
	}
	for i := range want {
		if got := lock.Plugins[i]; got.String() != want[i].String() || got.SHA256 != want[i].SHA256 ||
			!slices.Equal(got.Shells, want[i].Shells) || !slices.Equal(got.Capabilities, want[i].Capabilities) || got.OSFamily != want[i].OSFamily {
			t.Errorf("plugins[%d] = %+v, want %+v", i, got, want[i])
		}
	}
	assertNoLeftovers(t, sleeperMarker(), osPath, trPath, bad)
}

func TestCheckHealth(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "os", "test-os")
	install(t, dir, "degraded", "test-degraded")
	install(t, dir, "failing", "test-failing")
	changed := install(t, dir, "transport", "test-transport")
	h, _ := newHost(t, dir, startTimeout)
	if _, err := h.CheckHealth(context.Background()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("CheckHealth without a lock: error = %v, want ErrNotExist", err)
	}
	lockDir(t, h)
	flipByte(t, changed)

	reports, err := h.CheckHealth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		status Status
		failed bool
		text   []string
	}{
		"test-os":        {StatusOK, false, []string{"ready"}},
		"test-degraded":  {StatusDegraded, false, []string{"slow disk"}},
		"test-failing":   {StatusUnhealthy, true, []string{"STATE_FAILING", "helper tool missing"}},
		"test-transport": {StatusChecksumMismatch, true, []string{changed, "plugins lock"}},
	}
	if len(reports) != len(want) {
		t.Fatalf("got %d reports, want %d: %+v", len(reports), len(want), reports)
	}
	for _, r := range reports {
		w, ok := want[r.Entry.Name]
		if !ok {
			t.Errorf("unexpected report %+v", r)
			continue
		}
		if r.Status != w.status || r.Failed() != w.failed {
			t.Errorf("%s: status %s failed %v, want %s %v (%s)", r.Entry.Name, r.Status, r.Failed(), w.status, w.failed, r.Error)
		}
		containsAll(t, r.Entry.Name+" report", r.Description+" "+r.Error, w.text...)
	}
	if n := h.Running(); n != 0 {
		t.Errorf("%d plugins still running after CheckHealth", n)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no dir", Options{}, "a plugin directory is required"},
		{"negative timeout", Options{Dir: "/x", StartTimeout: -time.Second}, `start timeout "-1s": must be between 0`},
		{"huge timeout", Options{Dir: "/x", StartTimeout: time.Hour}, `start timeout "1h0m0s"`},
		{"bad level", Options{Dir: "/x", PluginLogLevel: "loud"}, `--log-level "loud"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%+v) error = %v, want it to contain %q", tt.opts, err, tt.want)
			}
		})
	}
}
