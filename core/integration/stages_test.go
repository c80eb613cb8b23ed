package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/policy"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/stages"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// noPlugins fails the test if a stage starts any plugin: stages that refuse
// their input must do so before starting anything.
type noPlugins struct{ t *testing.T }

func (n noPlugins) OS(context.Context, string) (pluginapi.OSPlugin, error) {
	n.t.Error("an OS plugin was started")
	return nil, errors.New("no plugins here")
}

func (n noPlugins) OSForShell(context.Context, string) (pluginapi.OSPlugin, error) {
	n.t.Error("an OS plugin was started")
	return nil, errors.New("no plugins here")
}

func (n noPlugins) Transport(context.Context, string) (pluginapi.TransportPlugin, error) {
	n.t.Error("a transport plugin was started")
	return nil, errors.New("no plugins here")
}

func (noPlugins) Close() {}

// jobVars returns the environment gitlab-runner gives a stage of job
// runner 5 / job jobID, plus extra job variables (without CUSTOM_ENV_).
func jobVars(jobID string, extra ...string) map[string]string {
	m := map[string]string{
		"BUILD_FAILURE_EXIT_CODE":  "2",
		"SYSTEM_FAILURE_EXIT_CODE": "3",
		"CUSTOM_ENV_CI_RUNNER_ID":  "5",
		"CUSTOM_ENV_CI_JOB_ID":     jobID,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[jobenv.CustomPrefix+extra[i]] = extra[i+1]
	}
	return m
}

func prepareOptions() stages.PrepareOptions {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	return stages.PrepareOptions{
		Defaults: policy.Defaults{Image: "registry.example.com/ci/debian:12", MachineType: "q35", Architecture: "amd64",
			TTL: time.Hour, CPURequest: q("1"), MemoryRequest: q("1Gi")},
		Policy:     policy.Policy{AllowedImages: []string{"registry.example.com/ci/*"}, MaxCPU: q("4"), MaxMemory: q("8Gi")},
		NamePrefix: "runner", Shell: "bash", TransportPlugin: "transport-ssh", Username: "runner", Port: 22,
		Timeout: time.Minute,
	}
}

// assertEmpty fails if the namespace holds any VMI or Secret.
func (c *cluster) assertEmpty(t testing.TB) {
	t.Helper()
	vmis, err := c.admin.Virt.KubevirtV1().VirtualMachineInstances(c.ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := c.admin.Kube.CoreV1().Secrets(c.ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(vmis.Items) > 0 || len(secrets.Items) > 0 {
		t.Errorf("namespace %s is not empty: %d VMIs, %d Secrets", c.ns, len(vmis.Items), len(secrets.Items))
	}
}

func TestPrepareRefusesBadInputBeforeCreatingAnything(t *testing.T) {
	c := newCluster(t)
	tests := []struct {
		name   string
		vars   map[string]string
		mutate func(*stages.PrepareOptions)
		want   []string
	}{
		{name: "malformed cpu", vars: jobVars("1", "VM_CPU_REQUEST", "lots"), want: []string{`VM_CPU_REQUEST "lots": must be a Kubernetes quantity`}},
		{name: "cpu above max", vars: jobVars("1", "VM_CPU_REQUEST", "8"), want: []string{`VM_CPU_REQUEST "8": exceeds the runner's --max-cpu of 4`}},
		{name: "image not allowed", vars: jobVars("1", "CI_JOB_IMAGE", "docker.io/evil/miner:1"), want: []string{`CI_JOB_IMAGE "docker.io/evil/miner:1": is not allowed`}},
		{name: "several problems at once", vars: jobVars("1", "VM_TTL", "1s", "VM_ARCHITECTURE", "sparc", "VM_MEMORY_LIMIT", "512Mi"),
			want: []string{`VM_TTL "1s"`, `VM_ARCHITECTURE "sparc"`}},
		{name: "request above limit", vars: jobVars("1", "VM_MEMORY_LIMIT", "512Mi"), want: []string{`VM_MEMORY_LIMIT "512Mi": must be at least the memory request (1Gi from --default-memory-request)`}},
		{name: "job id not digits", vars: jobVars("1x"), want: []string{`CI_JOB_ID "1x"`}},
		{name: "bad runner flag", vars: jobVars("1"), mutate: func(o *stages.PrepareOptions) { o.Port = 70000 }, want: []string{`--ssh-port "70000"`}},
		{name: "bad user flag", vars: jobVars("1"), mutate: func(o *stages.PrepareOptions) { o.Username = "root\nx" }, want: []string{`--ssh-user "root\nx"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := prepareOptions()
			if tt.mutate != nil {
				tt.mutate(&opts)
			}
			var out bytes.Buffer
			err := stages.Prepare(t.Context(), jobenv.FromMap(tt.vars), c.runner, noPlugins{t}, opts, &out)
			if err == nil {
				t.Fatal("Prepare accepted the input")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			code, _ := stages.ExitStatus(jobenv.FromMap(tt.vars), err)
			if code != 3 {
				t.Errorf("exit code = %d, want SYSTEM_FAILURE_EXIT_CODE 3", code)
			}
			c.assertEmpty(t)
		})
	}
}

func TestCleanupStage(t *testing.T) {
	c := newCluster(t)
	vars := jobVars("40")
	var out bytes.Buffer
	if err := stages.Cleanup(t.Context(), jobenv.FromMap(vars), c.runner, stages.CleanupOptions{NamePrefix: "runner"}, &out); err != nil {
		t.Fatalf("cleanup with nothing to do: %v", err)
	}
	if !strings.Contains(out.String(), "Nothing to clean up") {
		t.Errorf("output %q", out.String())
	}
	c.create(t, job(t, c.ns, "5", "40", time.Now(), time.Hour))
	out.Reset()
	if err := stages.Cleanup(t.Context(), jobenv.FromMap(vars), c.runner, stages.CleanupOptions{NamePrefix: "runner"}, &out); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if !strings.Contains(out.String(), "vmi deleted: true, secret deleted: true") {
		t.Errorf("output %q", out.String())
	}
	c.assertEmpty(t)
}

func TestRunStageFailsAsSystemFailureWithoutARunningVM(t *testing.T) {
	c := newCluster(t)
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte("echo hi\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.create(t, job(t, c.ns, "5", "51", time.Now(), time.Hour)) // created, never running
	tests := []struct {
		name, jobID, want string
	}{
		{"no vm", "50", "the job's VM is gone"},
		{"vm not running", "51", `is not running with an IP address (phase ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := jobVars(tt.jobID)
			exitFile := filepath.Join(t.TempDir(), "code")
			vars["BUILD_EXIT_CODE_FILE"] = exitFile
			var stdout, stderr bytes.Buffer
			err := stages.Run(t.Context(), jobenv.FromMap(vars), c.runner, noPlugins{t},
				stages.RunOptions{NamePrefix: "runner", Script: script, Stage: "step_script"}, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run error = %v, want %q", err, tt.want)
			}
			if code, _ := stages.ExitStatus(jobenv.FromMap(vars), err); code != 3 {
				t.Errorf("exit code = %d, want 3", code)
			}
			if _, err := os.Stat(exitFile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("BUILD_EXIT_CODE_FILE was written for a system failure")
			}
		})
	}
}
