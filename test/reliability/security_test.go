package reliability_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// copyBinDir copies the core, the plugins and plugins.lock into a fresh
// directory the test may tamper with.
func copyBinDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, e2e.PluginsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	files := []string{e2e.CoreBinary}
	entries, err := os.ReadDir(filepath.Join(binDir, e2e.PluginsDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		files = append(files, filepath.Join(e2e.PluginsDir, e.Name()))
	}
	for _, f := range files {
		copyFile(t, filepath.Join(binDir, f), filepath.Join(dir, f))
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
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

// withCore points every stage of cfg at the core in dir (its plugin
// directory is the default, plugins/ beside it).
func withCore(cfg runner.Config, dir string) runner.Config {
	core := filepath.Join(dir, e2e.CoreBinary)
	cfg.ConfigExec, cfg.PrepareExec, cfg.RunExec, cfg.CleanupExec = core, core, core, core
	return cfg
}

// TestPluginIntegrity: a plugin whose bytes changed after `plugins lock`,
// a plugin missing from the lock, and a plugin file swapped for a symlink
// to another (locked) plugin are all refused before they run: prepare is
// a system failure naming the plugin, and nothing is created.
func TestPluginIntegrity(t *testing.T) {
	plugin := func(dir, name string) string { return filepath.Join(dir, e2e.PluginsDir, e2e.PluginPrefix+name) }
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		flags  []string
		want   string
	}{
		{name: "tampered transport", want: "transport-ssh", tamper: func(t *testing.T, dir string) {
			f, err := os.OpenFile(plugin(dir, "transport-ssh"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("\x00tampered")); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "plugin not in the lock", flags: []string{"--transport-plugin", "transport-unlocked"}, want: "transport-unlocked", tamper: func(t *testing.T, dir string) {
			copyFile(t, plugin(dir, "transport-ssh"), plugin(dir, "transport-unlocked"))
		}},
		{name: "symlink swapped to another binary", want: "linux-cloudinit", tamper: func(t *testing.T, dir string) {
			p := plugin(dir, "linux-cloudinit")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(plugin(dir, "transport-ssh"), p); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer assertClean(t)
			dir := copyBinDir(t)
			tt.tamper(t, dir)
			cfg := withCore(bed.RunnerConfig(tt.flags...), dir)
			cfg.PrepareRetries = 1
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			res := runJob(ctx, t, e2etest.NewExecutor(t, cfg), runner.Job{ID: nextJobID(), Script: []string{"echo must-not-run"}})
			wantStatus(t, res, runner.StatusSystemFailure)
			// config already looks up the OS plugin; either stage may refuse.
			if res.FailedStage != "prepare" && res.FailedStage != "config" {
				t.Errorf("failed stage = %q, want config or prepare", res.FailedStage)
			}
			if out := res.JobLog(); !strings.Contains(out, tt.want) {
				t.Errorf("the job log does not name plugin %q", tt.want)
			}
		})
	}
}

// TestPluginsDoNotInheritCoreEnv reads /proc/<pid>/environ of every plugin
// process while a script runs: the runner's KUBECONFIG, the job's
// CUSTOM_ENV_* variables (CI_JOB_TOKEN among them) and the core's own
// settings (GITLAB_RUNNER_KUBEVIRT_LOG_LEVEL) must not reach a plugin;
// the core sets the plugin's own GITLAB_RUNNER_KUBEVIRT_PLUGIN* variables.
func TestPluginsDoNotInheritCoreEnv(t *testing.T) {
	defer assertClean(t)
	id := nextJobID()
	job, marker, _ := sleepJob(id)
	job.Script = []string{job.Script[0], "sleep 2"}
	var mu sync.Mutex
	environs := map[int][]string{}
	cfg := bed.RunnerConfig()
	cfg.PrepareRetries = 1
	cfg.Env = append(cfg.Env, "KUBECONFIG="+bed.Kubeconfig, "GITLAB_RUNNER_KUBEVIRT_LOG_LEVEL=info")
	cfg.Hooks.Log = onMarker(marker, func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range pluginPids() {
			environs[p] = procEnviron(p)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	res := runJob(ctx, t, e2etest.NewExecutor(t, cfg), job)
	wantStatus(t, res, runner.StatusSuccess)
	mu.Lock()
	defer mu.Unlock()
	if len(environs) == 0 {
		t.Fatal("no plugin process was running during the script")
	}
	for pid, env := range environs {
		for _, kv := range env {
			for _, bad := range []string{"KUBECONFIG=", "CUSTOM_ENV_", "GITLAB_RUNNER_KUBEVIRT_LOG_LEVEL=", "JOB_RESPONSE_FILE="} {
				if strings.HasPrefix(kv, bad) {
					k, _, _ := strings.Cut(kv, "=")
					t.Errorf("plugin pid %d inherited %s", pid, k)
				}
			}
		}
	}
}

// TestHostKeyPinningRefusesMITM answers the job's guest address with an
// sshd that has another host key (a man in the middle, or a recycled IP):
// prepare must refuse it with a clear message in the job log, as a system
// failure, and delete what it created.
func TestHostKeyPinningRefusesMITM(t *testing.T) {
	defer assertClean(t)
	id := nextJobID()
	vmi := e2e.VMIName(1, id)
	// The stand-in reports the VMI Running with an address but starts the
	// real guest sshd only much later; the impostor takes the address.
	behave(t, vmi, standin.DelaySSH(10*time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var impostor *sshd.Server
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if ip, ok := bed.Standin.IP(vmi); ok {
				s, err := sshd.Start(ctx, sshd.Options{ListenAddr: ip + ":22", User: bed.Account.Name})
				if err != nil {
					t.Errorf("start the impostor sshd on %s: %v", ip, err)
					return
				}
				mu.Lock()
				impostor = s
				mu.Unlock()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		<-done
		mu.Lock()
		defer mu.Unlock()
		if impostor != nil {
			_ = impostor.Stop()
		}
	})
	res := runJob(ctx, t, newExecutor(t, runner.Hooks{}, "--timeout", "30s"), runner.Job{ID: id, Script: []string{"echo must-not-run"}})
	wantStatus(t, res, runner.StatusSystemFailure)
	if log := res.JobLog(); !strings.Contains(strings.ToLower(log), "host key") {
		t.Errorf("the job log does not say the host key was refused")
	}
	if strings.Contains(res.JobLog(), "must-not-run\n") {
		t.Error("the script ran on the impostor")
	}
}
