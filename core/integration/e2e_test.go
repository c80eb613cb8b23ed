package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/stages"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// e2e is a namespace driven by the VMI stand-in, a throwaway host account
// the "guests" log in as, and the stage arguments gitlab-runner would pass.
type e2e struct {
	*cluster
	standin *standin.Controller
	user    string
}

func newE2E(t testing.TB, behaviour standin.BehaviourFunc) *e2e {
	t.Helper()
	c := newCluster(t)
	u := sshd.CreateUserForTest(t)
	// linux-cloudinit gives the job's user /bin/bash (its run command
	// relies on bash's job control); the throwaway account has /bin/sh.
	if out, err := exec.Command("usermod", "-s", "/bin/bash", u.Name).CombinedOutput(); err != nil {
		t.Fatalf("usermod -s /bin/bash %s (Debian package passwd): %v\n%s", u.Name, err, out)
	}
	// The stand-in's guests share the host's /tmp: remove this test's
	// uploaded scripts before the account goes.
	t.Cleanup(func() { removeFilesOf(t, u.Name, "/tmp/gitlab-*.sh") })
	ctl, err := standin.Start(t.Context(), standin.Options{Config: env.AdminConfig(), Namespace: c.ns, Behaviour: behaviour, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ctl.Stop(); err != nil {
			t.Errorf("stop the stand-in: %v", err)
		}
	})
	return &e2e{cluster: c, standin: ctl, user: u.Name}
}

func (e *e2e) kubeArgs() []string { return []string{"--kubeconfig", e.kubeconfig} }

func (e *e2e) prepareArgs(extra ...string) []string {
	args := append([]string{"--plugin-dir", pluginDir, "prepare"}, e.kubeArgs()...)
	args = append(args, "--default-image", "registry.example.com/ci/debian:12", "--ssh-user", e.user,
		"--os-plugin", "linux-standin", "--timeout", "2m")
	return append(args, extra...)
}

// script writes a job script the way gitlab-runner hands it to run.
func script(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(p, []byte("#!/usr/bin/env bash\nset -eo pipefail\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestJobLifecycleEndToEnd(t *testing.T) {
	e := newE2E(t, nil)
	vars := jobVars("1000")
	vars["BUILD_EXIT_CODE_FILE"] = filepath.Join(t.TempDir(), "exit-code")

	// config: no cluster needed, only the plugins.
	r := stage(t, vars, "--plugin-dir", pluginDir, "config", "--os-plugin", "linux-standin", "--ssh-user", e.user)
	if r.code != 0 {
		t.Fatalf("config: code %d stderr %s", r.code, r.stderr)
	}
	var cfg stages.ConfigOutput
	if err := json.Unmarshal([]byte(r.stdout), &cfg); err != nil {
		t.Fatalf("config printed invalid JSON: %v\n%s", err, r.stdout)
	}
	if cfg.Shell != "bash" || cfg.Hostname != "runner-5-1000" || cfg.BuildsDir != "/home/"+e.user+"/builds" || cfg.BuildsDirIsShared || cfg.Driver.Name != stages.DriverName {
		t.Errorf("config = %+v", cfg)
	}

	// prepare: create, wait, reach, ready.
	r = stage(t, vars, e.prepareArgs()...)
	if r.code != 0 {
		t.Fatalf("prepare: code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"Created VMI " + e.ns + "/runner-5-1000", "VMI scheduled on node", "VMI running with IP 127.",
		"VM reachable over transport-ssh", "first boot done for " + e.user, "VM runner-5-1000 ready"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("prepare output lacks %q:\n%s", want, r.stdout)
		}
	}
	secret, err := e.admin.Kube.CoreV1().Secrets(e.ns).Get(t.Context(), "runner-5-1000-credentials", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range [][]byte{secret.Data["ssh-privatekey"], []byte(secret.Data["userdata"])} {
		if bytes.Contains([]byte(r.stdout+r.stderr), v) {
			t.Error("prepare printed secret material")
		}
	}

	// run: output streams back, the exit code is the script's.
	tests := []struct {
		name     string
		body     string
		wantCode int
		wantFile string
		wantOut  string
		wantErr  string
	}{
		{name: "success", body: `echo "hello from $(id -un)"; echo "to stderr" >&2`, wantCode: 0, wantOut: "hello from " + e.user, wantErr: "to stderr"},
		{name: "script failure", body: "echo before; exit 7", wantCode: 2, wantFile: "7", wantOut: "before"},
		{name: "state persists between stages", body: `find /tmp -maxdepth 1 -name 'gitlab-1000-step_script-*.sh' -user "$(id -un)" | wc -l | grep -qx 3 && echo "earlier scripts are there"`, wantCode: 0, wantOut: "earlier scripts are there"},
	}
	for _, tt := range tests {
		t.Run("run "+tt.name, func(t *testing.T) {
			os.Remove(vars["BUILD_EXIT_CODE_FILE"])
			args := append(append([]string{"--plugin-dir", pluginDir, "run"}, e.kubeArgs()...), script(t, tt.body), "step_script")
			r := stage(t, vars, args...)
			if r.code != tt.wantCode {
				t.Fatalf("run: code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.wantOut) || !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("run output:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
			got, _ := os.ReadFile(vars["BUILD_EXIT_CODE_FILE"])
			if string(got) != tt.wantFile {
				t.Errorf("BUILD_EXIT_CODE_FILE = %q, want %q", got, tt.wantFile)
			}
		})
	}

	// CI_JOB_TIMEOUT bounds run even if gitlab-runner never signals it.
	t.Run("run past the job timeout", func(t *testing.T) {
		timed := map[string]string{"CUSTOM_ENV_CI_JOB_TIMEOUT": "6"}
		for k, v := range vars {
			timed[k] = v
		}
		args := append(append([]string{"--plugin-dir", pluginDir, "run"}, e.kubeArgs()...), script(t, "echo started; sleep 600"), "step_script")
		r := stage(t, timed, args...)
		if r.code != 3 || !strings.Contains(r.stderr, "context deadline exceeded") || !strings.Contains(r.stdout, "started") {
			t.Errorf("run past its timeout: code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
	})

	// SIGTERM: the remote script is ended and run exits promptly.
	t.Run("run cancelled", func(t *testing.T) {
		// A unique sleep, so no other test's process can be mistaken for it.
		now := time.Now().UnixNano()
		marker := fmt.Sprintf("/tmp/gitlab-runner-kubevirt-it-%d", now)
		sleep := fmt.Sprintf("300.%09d", now%1e9)
		body := fmt.Sprintf(`echo started; sleep %s; touch %s`, sleep, marker)
		args := append(append([]string{"--plugin-dir", pluginDir, "--log-level", "debug", "run"}, e.kubeArgs()...), script(t, body), "step_script")
		cmd := exec.CommandContext(t.Context(), binary, args...)
		for k, v := range vars {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"))
		_, stderr := startUntil(t, cmd, "started", "the script never started")
		if err := terminateGroup(cmd); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if code := cmd.ProcessState.ExitCode(); code != 3 {
				t.Errorf("cancelled run exited %d (%v), want SYSTEM_FAILURE_EXIT_CODE 3; stderr: %s", code, err, stderr.String())
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatal("run did not exit after SIGTERM")
		}
		// The stand-in's guests are the host: the remote sleep must end
		// (the transport signals it when the Exec is cancelled), and what
		// the script would have done after it never happens.
		deadline := time.Now().Add(30 * time.Second)
		for processRunning(t, e.user, "sleep\x00"+sleep+"\x00") {
			if time.Now().After(deadline) {
				t.Fatalf("the cancelled script's sleep still runs on the guest; run stderr:\n%s", stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := os.Stat(marker); !os.IsNotExist(err) {
			t.Errorf("the cancelled script went on after its sleep: %v", err)
		}
	})

	// cleanup: gone, and a second cleanup is still fine.
	cleanup := func() {
		t.Helper()
		for i := range 2 {
			r := stage(t, vars, append([]string{"cleanup"}, e.kubeArgs()...)...)
			if r.code != 0 {
				t.Fatalf("cleanup %d: code %d stderr %s", i, r.code, r.stderr)
			}
		}
	}
	cleanup()

	// GitLab retries prepare after a cleanup; the old VMI may still be
	// terminating (the stand-in, like KubeVirt, holds a finalizer).
	r = stage(t, vars, e.prepareArgs()...)
	if r.code != 0 {
		t.Fatalf("retried prepare: code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	args := append(append([]string{"--plugin-dir", pluginDir, "run"}, e.kubeArgs()...), script(t, "echo second life"), "step_script")
	if r := stage(t, vars, args...); r.code != 0 || !strings.Contains(r.stdout, "second life") {
		t.Errorf("run after the retried prepare: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	cleanup()
	e.waitGone(t, "runner-5-1000")
}

// lineWaiter closes seen once want was written.
// startUntil starts cmd (a stage) in its own process group, as
// gitlab-runner does, and waits until its stdout contains want; after 60
// seconds it kills cmd and fails the test with never and both outputs.
func startUntil(t *testing.T, cmd *exec.Cmd, want, never string) (*lineWaiter, *bytes.Buffer) {
	t.Helper()
	out := &lineWaiter{want: want, seen: make(chan struct{})}
	cmd.Stdout = out
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-out.seen:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s; stdout %s stderr %s", never, out.buf.String(), stderr.String())
	}
	return out, stderr
}

type lineWaiter struct {
	buf  bytes.Buffer
	want string
	seen chan struct{}
	done bool
}

func (w *lineWaiter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want) {
		w.done = true
		close(w.seen)
	}
	return len(p), nil
}

// waitGone waits until the VMI and its Secret are gone (the stand-in holds
// a finalizer until its sshd stopped).
func (e *e2e) waitGone(t testing.TB, vmi string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, verr := e.admin.GetVMI(t.Context(), vmi)
		_, serr := e.admin.Kube.CoreV1().Secrets(e.ns).Get(t.Context(), vmi+"-credentials", metav1.GetOptions{})
		if apierrors.IsNotFound(verr) && apierrors.IsNotFound(serr) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("vmi %s or its secret still exists: %v, %v", vmi, verr, serr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPrepareFailsFastAndRemovesWhatItCreated(t *testing.T) {
	tests := []struct {
		name      string
		behaviour standin.Behaviour
		want      string
	}{
		{"failed", standin.Fail("ErrImagePull: registry.example.com/ci/debian:12 not found"), "phase Failed: ErrImagePull: registry.example.com/ci/debian:12 not found"},
		{"unschedulable", standin.Unschedulable("0/3 nodes are available: 3 Insufficient memory."), "unschedulable: 0/3 nodes are available: 3 Insufficient memory."},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newE2E(t, func(*kubevirtv1.VirtualMachineInstance) standin.Behaviour { return tt.behaviour })
			vars := jobVars(fmt.Sprint(2000 + i))
			start := time.Now()
			r := stage(t, vars, e.prepareArgs()...)
			if r.code != 3 {
				t.Fatalf("prepare: code %d, want 3\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr lacks the reason %q:\n%s", tt.want, r.stderr)
			}
			if !strings.Contains(r.stdout, "Removed VM") {
				t.Errorf("prepare did not report removing the VM:\n%s", r.stdout)
			}
			t.Logf("prepare failed after %s", time.Since(start))
			e.waitGone(t, fmt.Sprintf("runner-5-%d", 2000+i))
		})
	}
}

func TestPrepareTimeoutRemovesWhatItCreated(t *testing.T) {
	// The VMI runs but never gets an address: prepare's own deadline ends
	// the wait.
	e := newE2E(t, func(*kubevirtv1.VirtualMachineInstance) standin.Behaviour { return standin.NoIP() })
	r := stage(t, jobVars("2500"), e.prepareArgs("--timeout", "3s")...)
	if r.code != 3 {
		t.Fatalf("prepare: code %d, want 3\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, `to run (last phase "Running"): context deadline exceeded`) {
		t.Errorf("stderr does not explain the timeout:\n%s", r.stderr)
	}
	e.waitGone(t, "runner-5-2500")
}

func TestPrepareCancelledBySIGTERMRemovesWhatItCreated(t *testing.T) {
	e := newE2E(t, func(*kubevirtv1.VirtualMachineInstance) standin.Behaviour {
		return standin.DelayRunning(10 * time.Minute)
	})
	vars := jobVars("3000")
	cmd := exec.CommandContext(t.Context(), binary, e.prepareArgs()...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, stderr := startUntil(t, cmd, "VMI scheduled on node", "prepare never saw the VMI scheduled")
	if err := terminateGroup(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); cmd.ProcessState.ExitCode() != 3 {
		t.Errorf("cancelled prepare exited %d (%v), want 3; stderr %s", cmd.ProcessState.ExitCode(), err, stderr.String())
	}
	if !strings.Contains(out.buf.String(), "Removed VM runner-5-3000") {
		t.Errorf("stdout: %s", out.buf.String())
	}
	e.waitGone(t, "runner-5-3000")
}

// terminateGroup cancels a stage the way gitlab-runner does: SIGTERM to
// the stage's whole process group.
func terminateGroup(cmd *exec.Cmd) error {
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
}

// processRunning reports whether a process of user runs with exactly the
// command line cmdline (NUL-separated, as in /proc/PID/cmdline).
func processRunning(t *testing.T, user, cmdline string) bool {
	t.Helper()
	u, err := osuser.Lookup(user)
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list processes (needs Linux /proc): %v", err)
	}
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || string(cl) != cmdline {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", d.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(st), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] == u.Uid {
				return true
			}
		}
	}
	return false
}

func TestConfigProcess(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		check    func(t *testing.T, r result)
	}{
		{
			name: "plugin chosen by shell", args: []string{"--shell", "bash", "--ssh-user", "ci"},
			check: func(t *testing.T, r result) {
				var cfg map[string]any
				if err := json.Unmarshal([]byte(r.stdout), &cfg); err != nil {
					t.Fatalf("invalid JSON: %v\n%s", err, r.stdout)
				}
				for _, key := range []string{"builds_dir", "cache_dir", "builds_dir_is_shared", "hostname", "driver", "shell", "job_env"} {
					if _, ok := cfg[key]; !ok {
						t.Errorf("config lacks %q: %s", key, r.stdout)
					}
				}
				if cfg["builds_dir"] != "/home/ci/builds" || cfg["hostname"] != "runner-5-1" || cfg["builds_dir_is_shared"] != false {
					t.Errorf("config = %s", r.stdout)
				}
			},
		},
		{
			name: "builds dir override", args: []string{"--builds-dir", "/var/ci/builds", "--cache-dir", "/var/ci/cache"},
			check: func(t *testing.T, r result) {
				var cfg stages.ConfigOutput
				if err := json.Unmarshal([]byte(r.stdout), &cfg); err != nil || cfg.BuildsDir != "/var/ci/builds" || cfg.CacheDir != "/var/ci/cache" {
					t.Errorf("config = %s (%v)", r.stdout, err)
				}
			},
		},
		{
			name: "no plugin serves the shell", args: []string{"--shell", "pwsh"}, wantCode: 3,
			check: func(t *testing.T, r result) {
				if r.stdout != "" || !strings.Contains(r.stderr, "pwsh") {
					t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
				}
			},
		},
		{
			name: "named plugin does not serve the shell", args: []string{"--os-plugin", "linux-standin", "--shell", "pwsh"}, wantCode: 3,
			check: func(t *testing.T, r result) {
				if !strings.Contains(r.stderr, `--shell "pwsh": is not served by os plugin linux-standin (it serves bash`) {
					t.Errorf("stderr %q", r.stderr)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := stage(t, jobVars("1"), append([]string{"--plugin-dir", pluginDir, "config"}, tt.args...)...)
			if r.code != tt.wantCode {
				t.Fatalf("config: code %d, want %d; stderr %s", r.code, tt.wantCode, r.stderr)
			}
			tt.check(t, r)
		})
	}
}

// BenchmarkJobLifecycle measures one job as gitlab-runner drives it
// against the stand-in: prepare, one run and cleanup, each a separate
// process of the executor with real plugins.
func BenchmarkJobLifecycle(b *testing.B) {
	e := newE2E(b, nil)
	body := script(b, "echo benchmark")
	for i := 0; b.Loop(); i++ {
		vars := jobVars(fmt.Sprint(9000 + i))
		if r := stage(b, vars, e.prepareArgs()...); r.code != 0 {
			b.Fatalf("prepare: code %d stderr %s", r.code, r.stderr)
		}
		run := append(append([]string{"--plugin-dir", pluginDir, "run"}, e.kubeArgs()...), body, "step_script")
		if r := stage(b, vars, run...); r.code != 0 {
			b.Fatalf("run: code %d stderr %s", r.code, r.stderr)
		}
		if r := stage(b, vars, append([]string{"cleanup"}, e.kubeArgs()...)...); r.code != 0 {
			b.Fatalf("cleanup: code %d stderr %s", r.code, r.stderr)
		}
	}
}

// removeFilesOf removes the files matching pattern that user owns.
func removeFilesOf(t testing.TB, user, pattern string) {
	t.Helper()
	u, err := osuser.Lookup(user)
	if err != nil {
		t.Error(err)
		return
	}
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Error(err)
		return
	}
	for _, f := range files {
		fi, err := os.Lstat(f)
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && strconv.FormatUint(uint64(st.Uid), 10) == u.Uid {
			if err := os.Remove(f); err != nil {
				t.Error(err)
			}
		}
	}
}
