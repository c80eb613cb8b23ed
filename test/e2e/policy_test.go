package e2e_test

import (
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// policyFlags bound what jobs may ask for in TestRefusedVMVariables.
var policyFlags = []string{
	"--max-cpu", "4", "--max-memory", "8Gi", "--max-storage", "50Gi", "--max-ttl", "6h",
	"--allowed-images", "registry.example.com/ci/*",
	"--default-cpu-request", "1", "--default-memory-request", "1Gi",
}

// TestRefusedVMVariables runs prepare with malformed or out-of-policy job
// variables: each must fail as a system failure whose message names the
// variable as users write it, its value and the rule, and nothing may be
// created, not even for a moment.
func TestRefusedVMVariables(t *testing.T) {
	long := strings.Repeat("9", 600)
	tests := []struct {
		name  string
		vars  map[string]string
		want  []string // substrings of the job log
		image string
	}{
		{"cpu not a quantity", map[string]string{"VM_CPU_REQUEST": "two"}, []string{`VM_CPU_REQUEST "two"`, "Kubernetes quantity"}, ""},
		{"cpu negative", map[string]string{"VM_CPU_REQUEST": "-1"}, []string{`VM_CPU_REQUEST "-1"`, "greater than zero"}, ""},
		{"cpu zero", map[string]string{"VM_CPU_REQUEST": "0"}, []string{`VM_CPU_REQUEST "0"`, "greater than zero"}, ""},
		{"cpu over the maximum", map[string]string{"VM_CPU_REQUEST": "64"}, []string{`VM_CPU_REQUEST "64"`, "--max-cpu of 4"}, ""},
		{"cpu limit over the maximum", map[string]string{"VM_CPU_LIMIT": "5"}, []string{`VM_CPU_LIMIT "5"`, "--max-cpu of 4"}, ""},
		{"cpu request above its limit", map[string]string{"VM_CPU_REQUEST": "3", "VM_CPU_LIMIT": "2"}, []string{`VM_CPU_REQUEST "3"`, "must not exceed the cpu limit (2 from VM_CPU_LIMIT)"}, ""},
		{"cpu with a trailing space", map[string]string{"VM_CPU_REQUEST": "1 "}, []string{`VM_CPU_REQUEST "1 "`, "Kubernetes quantity"}, ""},
		{"cpu with an injected line", map[string]string{"VM_CPU_REQUEST": "2\nVM_TTL=1h"}, []string{`VM_CPU_REQUEST "2\nVM_TTL=1h"`, "Kubernetes quantity"}, ""},
		{"memory not a quantity", map[string]string{"VM_MEMORY_REQUEST": "lots"}, []string{`VM_MEMORY_REQUEST "lots"`, "Kubernetes quantity"}, ""},
		{"memory with a wrong suffix", map[string]string{"VM_MEMORY_REQUEST": "512MB"}, []string{`VM_MEMORY_REQUEST "512MB"`, "Kubernetes quantity"}, ""},
		{"memory over the maximum", map[string]string{"VM_MEMORY_REQUEST": "16Gi"}, []string{`VM_MEMORY_REQUEST "16Gi"`, "--max-memory of 8Gi"}, ""},
		{"memory limit over the maximum", map[string]string{"VM_MEMORY_LIMIT": "1Ti"}, []string{`VM_MEMORY_LIMIT "1Ti"`, "--max-memory of 8Gi"}, ""},
		{"memory limit below the request", map[string]string{"VM_MEMORY_LIMIT": "512Mi"}, []string{`VM_MEMORY_LIMIT "512Mi"`, "must be at least the memory request (1Gi from --default-memory-request)"}, ""},
		{"memory absurdly long", map[string]string{"VM_MEMORY_REQUEST": long}, []string{`VM_MEMORY_REQUEST "` + long[:32] + `..."`, "at most 512 characters"}, ""},
		{"storage over the maximum", map[string]string{"VM_STORAGE_REQUEST": "100Gi"}, []string{`VM_STORAGE_REQUEST "100Gi"`, "--max-storage of 50Gi"}, ""},
		{"storage limit negative", map[string]string{"VM_STORAGE_LIMIT": "-5Gi"}, []string{`VM_STORAGE_LIMIT "-5Gi"`, "greater than zero"}, ""},
		{"ttl not a duration", map[string]string{"VM_TTL": "forever"}, []string{`VM_TTL "forever"`, "duration such as 90m or 3h"}, ""},
		{"ttl in days", map[string]string{"VM_TTL": "8d"}, []string{`VM_TTL "8d"`, "duration such as 90m or 3h"}, ""},
		{"ttl too short", map[string]string{"VM_TTL": "30s"}, []string{`VM_TTL "30s"`, "must be between 1m and"}, ""},
		{"ttl over the maximum", map[string]string{"VM_TTL": "12h"}, []string{`VM_TTL "12h0m0s"`, "--max-ttl of 6h0m0s"}, ""},
		{"machine type not allowed", map[string]string{"VM_MACHINE_TYPE": "microvm"}, []string{`VM_MACHINE_TYPE "microvm"`, "machine types this runner allows: q35"}, ""},
		{"machine type malformed", map[string]string{"VM_MACHINE_TYPE": "Q35;reboot"}, []string{`VM_MACHINE_TYPE "Q35;reboot"`, "lower-case letters"}, ""},
		{"architecture unknown", map[string]string{"VM_ARCHITECTURE": "sparc"}, []string{`VM_ARCHITECTURE "sparc"`, "must be one of amd64"}, ""},
		{"architecture not allowed", map[string]string{"VM_ARCHITECTURE": "aarch64"}, []string{`VM_ARCHITECTURE "arm64"`, "architectures this runner allows: amd64"}, ""},
		{"image not allowed", nil, []string{`CI_JOB_IMAGE "docker.io/evil/miner:latest"`, "--allowed-images"}, "docker.io/evil/miner:latest"},
		{"two refusals at once", map[string]string{"VM_CPU_REQUEST": "many", "VM_TTL": "1y"}, []string{`VM_CPU_REQUEST "many"`, `VM_TTL "1y"`}, ""},
	}

	// Watch both kinds for the whole table: an object created and deleted
	// again would be missed by a list at the end.
	watch := e2etest.WatchCreations(t.Context(), t, cluster(), waitLimit)

	t.Run("cases", func(t *testing.T) {
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				job := runner.Job{ID: int64(300 + i), Script: []string{"echo never-runs"}, Image: tt.image}
				for k, v := range tt.vars {
					job.Variables = append(job.Variables, runner.Variable{Key: k, Value: v})
				}
				res := runJob(t.Context(), t, newExecutor(t, runner.Hooks{}, policyFlags...), job)
				if res.Status != runner.StatusSystemFailure || res.FailedStage != runner.StagePrepare {
					t.Fatalf("status %s stage %s, want system_failure in prepare", res.Status, res.FailedStage)
				}
				prep, _ := res.Stage(runner.StagePrepare)
				if prep.ExitCode != runner.DefaultSystemFailureExitCode {
					t.Errorf("prepare exited %d, want SYSTEM_FAILURE_EXIT_CODE %d", prep.ExitCode, runner.DefaultSystemFailureExitCode)
				}
				out := res.Output(runner.StagePrepare)
				for _, w := range tt.want {
					if !strings.Contains(out, w) {
						t.Errorf("prepare's output does not contain %q:\n%s", w, out)
					}
				}
				for k := range tt.vars {
					if strings.Contains(out, "CUSTOM_ENV_"+k) {
						t.Errorf("the message names CUSTOM_ENV_%s; users write %s", k, k)
					}
				}
				if strings.Contains(out, "Created VMI") || strings.Contains(res.JobLog(), "never-runs") {
					t.Error("prepare went on after refusing the input")
				}
			})
		}
	})
	if created := watch.Stop(); len(created) > 0 {
		t.Errorf("refused jobs created objects: %v", created)
	}
	assertClean(t)
}
