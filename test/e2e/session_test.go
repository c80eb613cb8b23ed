package e2e_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/session"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// sessionProbe watches one job's session through the harness's hooks: the
// job's TMPDIR, the session state after prepare, and the guest sshd's log
// just before cleanup.
type sessionProbe struct {
	t     *testing.T
	vmi   string
	token string

	mu      sync.Mutex
	tmpdir  string
	state   *pluginapi.SessionState
	sshdLog string
	// afterStage, when set, is called when that run sub-stage ended.
	afterStage string
	after      func(p *sessionProbe)
}

func (p *sessionProbe) hooks() runner.Hooks {
	return runner.Hooks{
		StageStarted: func(s runner.StageInfo) {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, kv := range s.Env {
				if v, ok := strings.CutPrefix(kv, "TMPDIR="); ok {
					p.tmpdir = v
				}
			}
			if s.Stage == runner.StageCleanup || s.Stage == runner.StageStepScript {
				if srv, err := bed.Standin.SSHD(p.vmi); err == nil {
					p.sshdLog = srv.LogTail(100000)
				}
			}
		},
		StageEnded: func(r runner.StageResult) {
			p.mu.Lock()
			defer p.mu.Unlock()
			if r.Stage == runner.StagePrepare {
				p.state = p.loadLocked()
			}
			if r.Stage == p.afterStage && p.after != nil {
				p.after(p)
			}
		},
	}
}

func (p *sessionProbe) store() *session.Store {
	s, err := session.NewStore(p.tmpdir, p.token, p.vmi)
	if err != nil {
		p.t.Errorf("session store: %v", err)
		return nil
	}
	return s
}

func (p *sessionProbe) loadLocked() *pluginapi.SessionState {
	s := p.store()
	if s == nil {
		return nil
	}
	st, err := s.Load("")
	if errors.Is(err, session.ErrNoSession) {
		return nil
	}
	if err != nil {
		p.t.Errorf("load the session prepare saved: %v", err)
		return nil
	}
	return st
}

// accepted counts the SSH logins the guest's sshd accepted.
func (p *sessionProbe) accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Count(p.sshdLog, "Accepted publickey")
}

func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for err := plugintest.CheckExited(pid); err != nil; err = plugintest.CheckExited(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: session plugin still runs after %s: %v", what, waitLimit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sessionJob(id int64, token string) runner.Job {
	return runner.Job{
		ID:          id,
		Name:        "session",
		Token:       token,
		Script:      []string{"echo one", "echo two"},
		AfterScript: []string{"echo after"},
	}
}

// TestSessionOneConnection: with the session, prepare and every run
// sub-stage share ONE SSH connection; without it each stage dials its own.
// cleanup leaves no process, no socket and no session file, and neither
// the session file nor the plugin's environment or command line holds a
// guest credential or the job token.
func TestSessionOneConnection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		session bool
	}{
		{name: "session", session: true},
		{name: "no session", args: []string{"--session=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jobID := int64(601)
			if !tc.session {
				jobID = 602
			}
			token := "glcbt-session-token-" + strconv.FormatInt(jobID, 10)
			p := &sessionProbe{t: t, vmi: e2e.VMIName(runnerID, jobID), token: token}
			var leak []string
			p.afterStage = runner.StageGetSources
			p.after = func(p *sessionProbe) {
				if p.state == nil {
					return
				}
				raw, _ := os.ReadFile(p.store().Path())
				leak = append(leak, string(raw), procEnviron(p.state.Pid), e2etest.Cmdline(p.state.Pid))
			}
			cfg := bed.RunnerConfig(tc.args...)
			cfg.Hooks = p.hooks()
			// run stages read --session from the environment, as an
			// administrator would set it for every stage.
			if !tc.session {
				cfg.Env = append(cfg.Env, "GITLAB_RUNNER_KUBEVIRT_SESSION=false")
			}
			e := e2etest.NewExecutor(t, cfg)
			res := runJob(t.Context(), t, e, sessionJob(jobID, token))
			if res.Status != runner.StatusSuccess {
				t.Fatalf("status %s (%s), want success", res.Status, res.Reason)
			}
			n := p.accepted()
			if tc.session {
				if p.state == nil {
					t.Fatal("prepare kept no session")
				}
				if dir := p.store().Dir(); !strings.HasPrefix(p.state.Addr, dir+"/") {
					t.Errorf("session socket %s is not in the job's session directory %s", p.state.Addr, dir)
				}
				if n != 1 {
					t.Errorf("the guest sshd accepted %d logins for the job, want 1 (prepare and every run stage over one connection)", n)
				}
				waitGone(t, p.state.Pid, "after cleanup")
				if _, err := os.Stat(p.state.Addr); !os.IsNotExist(err) {
					t.Errorf("session socket %s left after cleanup (stat: %v)", p.state.Addr, err)
				}
				if _, err := os.Stat(p.store().Path()); !os.IsNotExist(err) {
					t.Errorf("session file left after cleanup (stat: %v)", err)
				}
				if strings.Contains(res.JobLog(), "transport session unavailable") {
					t.Error("a run stage fell back to a fresh plugin")
				}
				secrets := []string{token, "PRIVATE KEY", "ssh-ed25519 "}
				for i, s := range leak {
					for _, sec := range secrets {
						if strings.Contains(s, sec) {
							t.Errorf("leak source %d (0: session file, 1: plugin environ, 2: plugin cmdline) contains %q", i, sec)
						}
					}
				}
			} else {
				if p.state != nil {
					t.Error("--session=false kept a session")
				}
				if n < 3 {
					t.Errorf("without a session the guest sshd accepted %d logins by step_script, want one per stage (>= 3)", n)
				}
			}
			assertClean(t)
		})
	}
}

// TestSessionFallback: a session plugin killed between two run stages, or
// a corrupt or foreign session file, makes the next run start its own
// plugin; the job still passes and nothing is left behind.
func TestSessionFallback(t *testing.T) {
	for _, tc := range []struct {
		name  string
		id    int64
		after func(t *testing.T, p *sessionProbe)
	}{
		{name: "plugin killed", id: 611, after: func(t *testing.T, p *sessionProbe) {
			if err := syscall.Kill(p.state.Pid, syscall.SIGKILL); err != nil {
				t.Errorf("kill session plugin: %v", err)
			}
			for plugintest.CheckExited(p.state.Pid) != nil {
				time.Sleep(10 * time.Millisecond)
			}
		}},
		{name: "corrupt file", id: 612, after: func(t *testing.T, p *sessionProbe) {
			if err := os.WriteFile(p.store().Path(), []byte("GRKVSESS1\nnot a session at all, just garbage"), 0o600); err != nil {
				t.Error(err)
			}
		}},
		{name: "foreign file", id: 613, after: func(t *testing.T, p *sessionProbe) {
			// A session saved under another job's token.
			other, err := session.NewStore(p.tmpdir, "glcbt-another-job", p.vmi)
			if err != nil {
				t.Fatal(err)
			}
			if err := other.Save("some-uid", p.state); err != nil {
				t.Error(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := "glcbt-fallback-" + strconv.FormatInt(tc.id, 10)
			p := &sessionProbe{t: t, vmi: e2e.VMIName(runnerID, tc.id), token: token, afterStage: runner.StagePrepareScript}
			p.after = func(p *sessionProbe) {
				if p.state == nil {
					t.Error("prepare kept no session")
					return
				}
				tc.after(t, p)
			}
			e := newExecutor(t, p.hooks())
			res := runJob(t.Context(), t, e, sessionJob(tc.id, token))
			if res.Status != runner.StatusSuccess {
				t.Fatalf("status %s (%s), want success", res.Status, res.Reason)
			}
			if !strings.Contains(res.JobLog(), "transport session unavailable") {
				t.Error("the stage log does not say the run fell back")
			}
			if !strings.Contains(res.JobLog(), "after\n") {
				t.Error("after_script output missing from the job log")
			}
			assertClean(t)
		})
	}
}

// TestSessionEndsWithoutCleanup: when cleanup never runs and gc deletes
// the VM, the session plugin ends by itself (its guest is gone).
func TestSessionEndsWithoutCleanup(t *testing.T) {
	const jobID = 621
	token := "glcbt-nocleanup"
	p := &sessionProbe{t: t, vmi: e2e.VMIName(runnerID, jobID), token: token}
	cfg := bed.RunnerConfig()
	cfg.Hooks = p.hooks()
	cfg.CleanupExec = ""
	e := e2etest.NewExecutor(t, cfg)
	res := runJob(t.Context(), t, e, sessionJob(jobID, token))
	if res.Status != runner.StatusSuccess {
		t.Fatalf("status %s (%s), want success", res.Status, res.Reason)
	}
	if p.state == nil {
		t.Fatal("prepare kept no session")
	}
	if plugintest.CheckExited(p.state.Pid) == nil {
		t.Fatal("the session plugin ended before gc removed the VM")
	}
	time.Sleep(1100 * time.Millisecond) // --max-age counts whole seconds
	rep := runGC(t, "--max-age", "1s")
	if len(rep.names()) == 0 {
		t.Fatalf("gc deleted nothing: %+v", rep)
	}
	waitGone(t, p.state.Pid, "after gc deleted the VM")
	if _, err := os.Stat(p.state.Addr); !os.IsNotExist(err) {
		t.Errorf("session socket %s left after the plugin ended by itself (stat: %v)", p.state.Addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_ = bed.Standin.WaitIdle(ctx)
	assertClean(t)
}
