package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
)

// exitWait bounds each wait for a stopped session plugin to exit: a guard
// against hangs, not a performance expectation.
const exitWait = 60 * time.Second

// socketDir returns a fresh directory short enough for a unix socket path
// (t.TempDir's names can exceed the 108 bytes of sun_path).
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "phd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// waitReaped waits until pid, a child of this test process, has exited
// and go-plugin's wait for it has reaped it.
func waitReaped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(exitWait)
	for err := plugintest.CheckReaped(pid); err != nil; err = plugintest.CheckReaped(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin not reaped after %s: %v", exitWait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOpenDetachableLifetime starts the real test transport plugin
// detachable: until it is detached, the plugin's Close and the host's
// Close end it like any plugin; once detached, neither does, and the
// session is reachable over its socket in the given directory until it is
// stopped.
func TestOpenDetachableLifetime(t *testing.T) {
	tests := []struct {
		name   string
		detach bool
		// close is how the stage lets go of the plugin.
		close func(h *Host, p *Plugin)
	}{
		{name: "never detached, host closed", close: func(h *Host, _ *Plugin) { h.Close() }},
		{name: "never detached, plugin closed", close: func(_ *Host, p *Plugin) { p.Close() }},
		{name: "detached, host closed", detach: true, close: func(h *Host, _ *Plugin) { h.Close() }},
		{name: "detached, plugin closed", detach: true, close: func(_ *Host, p *Plugin) { p.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			path := install(t, dir, "transport", "test-transport")
			h, _ := newHost(t, dir, startTimeout)
			lockDir(t, h)
			sockets := socketDir(t)

			p, err := h.OpenDetachable(ctx, KindTransport, "test-transport", sockets)
			if err != nil {
				t.Fatalf("OpenDetachable: %v", err)
			}
			if got := p.Entry().Name; got != "test-transport" {
				t.Errorf("opened plugin %q, want test-transport", got)
			}
			if h.Running() != 1 {
				t.Errorf("host tracks %d plugins, want 1", h.Running())
			}
			tr, err := p.Transport()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tr.GetInfo(ctx); err != nil {
				t.Fatalf("GetInfo: %v", err)
			}
			pid := p.Pid()
			var st *pluginapi.SessionState
			if tt.detach {
				st, err = p.Detach(ctx, pluginapi.DetachOptions{IdleTimeout: time.Minute, MaxLifetime: time.Hour})
				if err != nil {
					t.Fatalf("Detach: %v", err)
				}
				if filepath.Dir(st.Addr) != sockets {
					t.Errorf("socket %s is not in the socket dir %s", st.Addr, sockets)
				}
			}
			tt.close(h, p)
			if h.Running() != 0 {
				t.Errorf("host tracks %d plugins after Close", h.Running())
			}
			if !tt.detach {
				// The host reaps what it ends before Close returns.
				if err := plugintest.CheckReaped(pid); err != nil {
					t.Errorf("after Close: %v", err)
				}
				assertNoLeftovers(t, "", path)
				return
			}
			if err := plugintest.CheckExited(pid); err == nil {
				t.Fatal("Close ended the detached plugin")
			}
			// The session still serves this job's later stages.
			rp, err := pluginapi.Reattach(ctx, st, pluginapi.ReattachOptions{})
			if err != nil {
				t.Fatalf("Reattach after Close: %v", err)
			}
			info, err := rp.Info()
			if err != nil {
				t.Fatal(err)
			}
			if got, err := info.GetInfo(ctx); err != nil || got.GetName() != "test-transport" {
				t.Errorf("GetInfo over the session = %v, %v; want test-transport", got, err)
			}
			rp.Close()
			if err := pluginapi.StopSession(ctx, st, pluginapi.ReattachOptions{}); err != nil {
				t.Fatalf("StopSession: %v", err)
			}
			waitReaped(t, pid)
			assertNoLeftovers(t, "", path)
		})
	}
}

// TestOpenDetachableRefuses: a detachable start goes through every check
// of Open, with the same statuses and messages, and validates the socket
// directory; a refusal leaves nothing running or tracked.
func TestOpenDetachableRefuses(t *testing.T) {
	tests := []struct {
		name string
		// change breaks the installed, locked plugin at path (or its
		// lock); it returns the socket dir to ask for, "" for a good one.
		change     func(t *testing.T, dir, path string, l *Lock) string
		wantStatus Status
		// want are parts of the error; {path}, {locked} and {actual}
		// stand for the binary, its locked and its current sha256.
		want []string
	}{
		{name: "checksum mismatch", change: func(t *testing.T, _, path string, _ *Lock) string {
			flipByte(t, path)
			return ""
		}, wantStatus: StatusChecksumMismatch, want: []string{"{path}", "sha256 is {actual}", "pins {locked}", "plugins lock"}},
		{name: "missing binary", change: func(t *testing.T, _, path string, _ *Lock) string {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			return ""
		}, wantStatus: StatusMissing, want: []string{"{path}", "no such file", "reinstall the plugin"}},
		{name: "not a regular file", change: func(t *testing.T, _, path string, _ *Lock) string {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
			return ""
		}, wantStatus: StatusNotRegular, want: []string{"{path}", "is a directory, not a regular file"}},
		{name: "GetInfo differs from the lock", change: func(t *testing.T, dir, _ string, l *Lock) string {
			l.Plugins[0].Version = "9.9.9"
			if err := WriteLock(dir, l); err != nil {
				t.Fatal(err)
			}
			return ""
		}, wantStatus: StatusInfoMismatch, want: []string{"{path}", "reports test-transport 0.3.0", "records test-transport 9.9.9"}},
		{name: "relative socket dir", change: func(*testing.T, string, string, *Lock) string { return "sockets" },
			want: []string{`socket dir "sockets": must be an absolute path`}},
		{name: "missing socket dir", change: func(t *testing.T, _, _ string, _ *Lock) string {
			return filepath.Join(t.TempDir(), "gone")
		}, want: []string{"socket dir", "/gone\": must be an existing directory: it does not exist"}},
		{name: "socket dir is a file", change: func(t *testing.T, _, path string, _ *Lock) string { return path },
			want: []string{`socket dir "{path}": must be an existing directory: it is a regular file`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := install(t, dir, "transport", "test-transport")
			h, _ := newHost(t, dir, startTimeout)
			l := lockDir(t, h)
			locked := l.Plugins[0].SHA256
			sockets := tt.change(t, dir, path, l)
			if sockets == "" {
				sockets = socketDir(t)
			}
			actual, _ := FileSHA256(path) // "" when the file is gone

			p, err := h.OpenDetachable(context.Background(), KindTransport, "test-transport", sockets)
			if err == nil {
				p.Close()
				t.Fatal("OpenDetachable accepted it")
			}
			if tt.wantStatus != "" {
				if got := StatusOf(err); got != tt.wantStatus {
					t.Errorf("status = %s, want %s (error: %v)", got, tt.wantStatus, err)
				}
			}
			for _, w := range tt.want {
				w = strings.NewReplacer("{path}", path, "{locked}", locked, "{actual}", actual).Replace(w)
				containsAll(t, "error", err.Error(), w)
			}
			if h.Running() != 0 {
				t.Errorf("host tracks %d plugins after a refused start", h.Running())
			}
			assertNoLeftovers(t, "", path)
		})
	}
}

// detachHelper is the "detach" helper process (see TestMain): a short-lived
// stage that opens a transport plugin detachable with the production host,
// detaches it, writes the session state as JSON to stdout and closes the
// host, as prepare does.
func detachHelper() error {
	ctx := context.Background()
	h, err := New(Options{Dir: os.Getenv("PLUGINHOST_TEST_DIR"), StartTimeout: startTimeout})
	if err != nil {
		return err
	}
	defer h.Close()
	p, err := h.OpenDetachable(ctx, KindTransport, os.Getenv("PLUGINHOST_TEST_PLUGIN"), os.Getenv("PLUGINHOST_TEST_SOCKETS"))
	if err != nil {
		return err
	}
	st, err := p.Detach(ctx, pluginapi.DetachOptions{IdleTimeout: time.Minute, MaxLifetime: 5 * time.Minute})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(st)
}

// TestOpenDetachableOutlivesTheStage: a plugin the host started detachable
// and that was detached keeps running after the process that started it
// has exited (it was launched without the parent-death signal), and a
// later process can stop it.
func TestOpenDetachableOutlivesTheStage(t *testing.T) {
	dir := t.TempDir()
	path := install(t, dir, "transport", "test-transport")
	h, _ := newHost(t, dir, startTimeout)
	lockDir(t, h)
	sockets := socketDir(t)

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=detach", "PLUGINHOST_TEST_DIR="+dir,
		"PLUGINHOST_TEST_PLUGIN=test-transport", "PLUGINHOST_TEST_SOCKETS="+sockets)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("stage process: %v\n%s", err, stderr.String())
	}
	var st pluginapi.SessionState
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("session state %q: %v", out, err)
	}
	if err := plugintest.CheckExited(st.Pid); err == nil {
		t.Fatalf("the detached plugin (pid %d) ended with the stage that started it", st.Pid)
	}
	if filepath.Dir(st.Addr) != sockets {
		t.Errorf("socket %s is not in the socket dir %s", st.Addr, sockets)
	}
	if st.Path != path {
		t.Errorf("session runs %s, want %s", st.Path, path)
	}
	if err := pluginapi.StopSession(t.Context(), &st, pluginapi.ReattachOptions{}); err != nil {
		t.Fatalf("StopSession: %v", err)
	}
	// Not this process's child: its new parent reaps it.
	deadline := time.Now().Add(exitWait)
	for err := plugintest.CheckExited(st.Pid); err != nil; err = plugintest.CheckExited(st.Pid) {
		if time.Now().After(deadline) {
			t.Fatalf("session plugin still runs after StopSession and %s: %v", exitWait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
