package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
)

// result is what gitlab-runner sees of one stage process.
type result struct {
	code           int
	stdout, stderr string
}

// stage runs the executor binary as gitlab-runner does: a fresh process
// with only the given environment (no inherited KUBECONFIG or job
// variables).
func stage(t testing.TB, vars map[string]string, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	sort.Strings(cmd.Env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestPrepareProcessRefusesAndCreatesNothing(t *testing.T) {
	c := newCluster(t)
	noPluginDir := filepath.Join(t.TempDir(), "no-plugins-here")
	base := []string{"prepare", "--kubeconfig", c.kubeconfig, "--plugin-dir", noPluginDir,
		"--default-image", "registry.example.com/ci/debian:12", "--allowed-images", "registry.example.com/ci/*", "--max-cpu", "4"}
	tests := []struct {
		name  string
		vars  map[string]string
		extra []string
		want  []string
	}{
		{name: "malformed job variable", vars: jobVars("1", "VM_CPU_REQUEST", "two"), want: []string{`VM_CPU_REQUEST "two": must be a Kubernetes quantity`}},
		{name: "out of policy", vars: jobVars("1", "VM_CPU_LIMIT", "16"), want: []string{`VM_CPU_LIMIT "16": exceeds the runner's --max-cpu of 4`}},
		{name: "bad runner flags, all named", vars: jobVars("1"), extra: []string{"--ssh-port", "0", "--default-memory-request", "1GB", "--toleration", "ci:Sometimes"},
			want: []string{`--ssh-port "0"`, `--default-memory-request "1GB"`, `--toleration "ci:Sometimes": effect must be`}},
		{name: "unknown flag", vars: jobVars("1"), extra: []string{"--no-such-flag"}, want: []string{"unknown flag: --no-such-flag"}},
		{name: "secret option is not echoed", vars: jobVars("1"), extra: []string{"--transport-option", "=hunter2"}, want: []string{`--transport-option "=<redacted>"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := stage(t, tt.vars, append(base, tt.extra...)...)
			if r.code != 3 {
				t.Errorf("exit code = %d, want SYSTEM_FAILURE_EXIT_CODE 3\nstderr: %s", r.code, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q lacks %q", r.stderr, w)
				}
			}
			if strings.Contains(r.stderr+r.stdout, "hunter2") {
				t.Error("a transport option value was printed")
			}
			c.assertEmpty(t)
		})
	}
}

func TestCleanupProcess(t *testing.T) {
	c := newCluster(t)
	args := []string{"cleanup", "--kubeconfig", c.kubeconfig, "--timeout", "30s"}
	r := stage(t, jobVars("60"), args...)
	if r.code != 0 || !strings.Contains(r.stdout, "Nothing to clean up") {
		t.Errorf("cleanup of nothing: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	c.create(t, job(t, c.ns, "5", "60", time.Now(), time.Hour))
	r = stage(t, jobVars("60"), args...)
	if r.code != 0 || !strings.Contains(r.stdout, "Deleted VM "+c.ns+"/runner-5-60") {
		t.Errorf("cleanup: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	c.assertEmpty(t)

	// Without the job's ids there is nothing to find: a system failure.
	r = stage(t, map[string]string{"SYSTEM_FAILURE_EXIT_CODE": "3"}, args...)
	if r.code != 3 || !strings.Contains(r.stderr, `CI_JOB_ID ""`) {
		t.Errorf("cleanup without ids: code %d stderr %q", r.code, r.stderr)
	}
}

func TestRunProcessWithoutVM(t *testing.T) {
	c := newCluster(t)
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte("true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := jobVars("70")
	vars["BUILD_EXIT_CODE_FILE"] = filepath.Join(t.TempDir(), "code")
	r := stage(t, vars, "run", "--kubeconfig", c.kubeconfig, script, "step_script")
	if r.code != 3 || !strings.Contains(r.stderr, "the job's VM is gone") {
		t.Errorf("run: code %d stderr %q", r.code, r.stderr)
	}
	r = stage(t, vars, "run", "--kubeconfig", c.kubeconfig, script)
	if r.code != 3 || !strings.Contains(r.stderr, "accepts 2 arg(s)") {
		t.Errorf("run with one argument: code %d stderr %q", r.code, r.stderr)
	}
}

func TestGCProcess(t *testing.T) {
	c := newCluster(t)
	c.create(t, job(t, c.ns, "1", "1", time.Now().Add(-2*time.Hour), time.Hour))
	c.create(t, job(t, c.ns, "1", "2", time.Now(), time.Hour))

	r := stage(t, nil, "gc", "--kubeconfig", c.kubeconfig, "--dry-run", "-o", "json")
	if r.code != 0 {
		t.Fatalf("gc --dry-run: code %d stderr %q", r.code, r.stderr)
	}
	var rep kube.GCReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("gc -o json printed invalid JSON: %v\n%s", err, r.stdout)
	}
	if !rep.DryRun || len(rep.Items) != 2 || rep.ScannedVMIs != 2 {
		t.Errorf("report = %+v", rep)
	}

	r = stage(t, nil, "gc", "--kubeconfig", c.kubeconfig)
	if r.code != 0 || !strings.Contains(r.stdout, "deleted VirtualMachineInstance "+c.ns+"/runner-1-1: expired at") ||
		!strings.Contains(r.stdout, "2 objects deleted") {
		t.Errorf("gc: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}

	r = stage(t, nil, "gc", "--kubeconfig", c.kubeconfig, "-o", "yaml")
	if r.code == 0 || !strings.Contains(r.stderr, `--output "yaml": must be text or json`) {
		t.Errorf("gc -o yaml: code %d stderr %q", r.code, r.stderr)
	}
}
