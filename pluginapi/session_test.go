package pluginapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
)

// sessionWait bounds every wait for a session plugin to end: a guard
// against hangs, not a performance expectation.
const sessionWait = 60 * time.Second

// helperEnv makes the test binary act as a short-lived core (see
// TestSessionHelperProcess).
const helperEnv = "PLUGINAPI_SESSION_HELPER_OUT"

func launchDetachable(t *testing.T, env ...string) *pluginapi.Plugin {
	t.Helper()
	p, err := pluginapi.Launch(t.Context(), pluginapi.LaunchOptions{
		Path: testPlugin, SHA256: testPluginSHA256, Detachable: true,
		SocketDir: t.TempDir(), Env: append([]string{"PATH=" + os.Getenv("PATH")}, env...),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(sessionWait)
	for err := plugintest.CheckExited(pid); err != nil; err = plugintest.CheckExited(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("session plugin still runs after %s: %v", sessionWait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSessionHelperProcess is not a test: run with helperEnv set, it
// launches the test plugin, detaches it, writes the session state to the
// file named by helperEnv and exits, as prepare does.
func TestSessionHelperProcess(t *testing.T) {
	out := os.Getenv(helperEnv)
	if out == "" {
		return
	}
	p, err := pluginapi.Launch(context.Background(), pluginapi.LaunchOptions{
		Path: os.Getenv("PLUGINAPI_SESSION_HELPER_PLUGIN"), SHA256: testPluginSHA256, Detachable: true,
		SocketDir: filepath.Dir(out), Env: []string{"PATH=" + os.Getenv("PATH")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("PLUGINAPI_SESSION_HELPER_NODETACH") != "" {
		if err := os.WriteFile(out, []byte(strconv.Itoa(p.Pid())), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Exit(0) // a core killed before it detached its plugin
	}
	st, err := p.Detach(context.Background(), pluginapi.DetachOptions{IdleTimeout: time.Minute, MaxLifetime: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p.Close()
	os.Exit(0) // no cleanup of any kind: the process just ends
}

// TestSessionSurvivesParent: a plugin detached by a process that then
// exits keeps running; another process reattaches, calls it, and stops it
// (process gone, socket removed).
func TestSessionSurvivesParent(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "state.json")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestSessionHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+out, "PLUGINAPI_SESSION_HELPER_PLUGIN="+testPlugin)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var st pluginapi.SessionState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if plugintest.CheckExited(st.Pid) == nil {
		t.Fatalf("the detached plugin (pid %d) died with its parent", st.Pid)
	}
	if filepath.Dir(st.Addr) != dir {
		t.Errorf("socket %s is not in the SocketDir %s", st.Addr, dir)
	}
	p, err := pluginapi.Reattach(t.Context(), &st, pluginapi.ReattachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	got, err := info.GetInfo(t.Context())
	if err != nil {
		t.Fatalf("GetInfo over the reattached session: %v", err)
	}
	if got.GetName() != "testplugin" {
		t.Errorf("reattached plugin is %q, want testplugin", got.GetName())
	}
	// Close only disconnects: the session survives it.
	p.Close()
	if plugintest.CheckExited(st.Pid) == nil {
		t.Fatal("Close of a reattached plugin ended it")
	}
	if err := pluginapi.StopSession(t.Context(), &st, pluginapi.ReattachOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, st.Pid)
	if _, err := os.Stat(st.Addr); !os.IsNotExist(err) {
		t.Errorf("socket %s left after StopSession (stat: %v)", st.Addr, err)
	}
	// Stopping a session that is gone is success.
	if err := pluginapi.StopSession(t.Context(), &st, pluginapi.ReattachOptions{}); err != nil {
		t.Errorf("second StopSession: %v", err)
	}
}

// TestDetachableDiesWithParentUntilDetached: a detachable launch has no
// parent-death signal, but until it detaches the plugin still ends when
// the process that started it is gone.
func TestDetachableDiesWithParentUntilDetached(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pid")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestSessionHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+out, "PLUGINAPI_SESSION_HELPER_PLUGIN="+testPlugin, "PLUGINAPI_SESSION_HELPER_NODETACH=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil || pid <= 1 {
		t.Fatalf("helper wrote pid %q: %v", b, err)
	}
	waitGone(t, pid)
}

// TestSessionEndsByItself: the watchdog ends an idle session, and a
// session whose target is gone (SessionLiveness fails).
func TestSessionEndsByItself(t *testing.T) {
	for _, tc := range []struct {
		name string
		idle time.Duration
		// alive is removed after Detach when set.
		alive bool
	}{
		{name: "idle timeout", idle: time.Second},
		{name: "target gone", idle: time.Hour, alive: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			aliveFile := filepath.Join(t.TempDir(), "alive")
			if tc.alive {
				if err := os.WriteFile(aliveFile, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				env = append(env, "TESTPLUGIN_ALIVE_FILE="+aliveFile)
			}
			p := launchDetachable(t, env...)
			st, err := p.Detach(t.Context(), pluginapi.DetachOptions{IdleTimeout: tc.idle, MaxLifetime: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			p.Close()
			if tc.alive {
				// Alive while the file exists: still running after
				// a few watchdog rounds.
				time.Sleep(3 * time.Second)
				if plugintest.CheckExited(st.Pid) == nil {
					t.Fatal("the session ended while its target was there")
				}
				if err := os.Remove(aliveFile); err != nil {
					t.Fatal(err)
				}
			}
			waitGone(t, st.Pid)
			if _, err := os.Stat(st.Addr); !os.IsNotExist(err) {
				t.Errorf("socket %s left after the plugin ended (stat: %v)", st.Addr, err)
			}
		})
	}
}

// TestReattachRefuses: a recycled pid, a dead process, a foreign plugin
// certificate, a foreign client certificate and invalid states are
// refused.
func TestReattachRefuses(t *testing.T) {
	a := launchDetachable(t)
	stA, err := a.Detach(t.Context(), pluginapi.DetachOptions{IdleTimeout: time.Minute, MaxLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b := launchDetachable(t)
	stB, err := b.Detach(t.Context(), pluginapi.DetachOptions{IdleTimeout: time.Minute, MaxLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.Stop(context.Background())
		_ = b.Stop(context.Background())
	})
	mod := func(f func(s *pluginapi.SessionState)) *pluginapi.SessionState {
		c := *stA
		f(&c)
		return &c
	}
	for _, tc := range []struct {
		name    string
		state   *pluginapi.SessionState
		want    string
		wantErr error
	}{
		{name: "recycled pid", state: mod(func(s *pluginapi.SessionState) { s.StartTime++ }), wantErr: pluginapi.ErrSessionGone},
		{name: "foreign plugin certificate", state: mod(func(s *pluginapi.SessionState) { s.ServerCert = stB.ServerCert }), want: "reattach plugin"},
		{name: "foreign client certificate", state: mod(func(s *pluginapi.SessionState) { s.ClientCert, s.ClientKey = stB.ClientCert, stB.ClientKey }), want: "reattach plugin"},
		{name: "no pid", state: mod(func(s *pluginapi.SessionState) { s.Pid = 0 }), want: "pid 0 must be above 1"},
		{name: "relative socket", state: mod(func(s *pluginapi.SessionState) { s.Addr = "plugin.sock" }), want: "absolute unix socket path"},
		{name: "unknown format", state: mod(func(s *pluginapi.SessionState) { s.Format = 99 }), want: "format 99"},
		{name: "nil", state: nil, want: "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			p, err := pluginapi.Reattach(ctx, tc.state, pluginapi.ReattachOptions{})
			if err == nil {
				p.Close()
				t.Fatal("Reattach succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	// The right state still works after all the refusals.
	p, err := pluginapi.Reattach(t.Context(), stA, pluginapi.ReattachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitGone(t, stA.Pid)
}

func TestDetachOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts pluginapi.DetachOptions
		want string
	}{
		{name: "ok", opts: pluginapi.DetachOptions{IdleTimeout: time.Minute, MaxLifetime: time.Hour}},
		{name: "no idle", opts: pluginapi.DetachOptions{MaxLifetime: time.Hour}, want: `idle_timeout "0s"`},
		{name: "idle too long", opts: pluginapi.DetachOptions{IdleTimeout: 25 * time.Hour, MaxLifetime: time.Hour}, want: "idle_timeout"},
		{name: "no lifetime", opts: pluginapi.DetachOptions{IdleTimeout: time.Minute}, want: `max_lifetime "0s"`},
		{name: "lifetime too long", opts: pluginapi.DetachOptions{IdleTimeout: time.Minute, MaxLifetime: 8 * 24 * time.Hour}, want: "max_lifetime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(pluginapi.ErrorMessage(err), tc.want)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestDetachRefusesBadOptions: nothing is detached with invalid options.
func TestDetachRefusesBadOptions(t *testing.T) {
	p := launchDetachable(t)
	defer p.Close()
	_, err := p.Detach(t.Context(), pluginapi.DetachOptions{IdleTimeout: 0, MaxLifetime: time.Hour})
	if err == nil || !strings.Contains(pluginapi.ErrorMessage(err), "idle_timeout") {
		t.Fatalf("Detach with no idle timeout = %v, want an idle_timeout error", err)
	}
	if p.Session() != nil {
		t.Error("a refused Detach marked the plugin detached")
	}
}
