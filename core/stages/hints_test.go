package stages

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/policy"
)

// TestExplainPolicy runs the real policy.Resolve and checks what the job
// log says about each refusal.
func TestExplainPolicy(t *testing.T) {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	defaults := policy.Defaults{Image: "quay.io/containerdisks/debian:12", MachineType: "q35", Architecture: "amd64", TTL: 3 * 3600e9,
		CPURequest: q("1"), MemoryRequest: q("1Gi")}
	pol := policy.Policy{AllowedImages: []string{"a/*", "b/*"}, MaxCPU: q("4")}
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{name: "image outside the allow-list", env: map[string]string{"CUSTOM_ENV_CI_JOB_IMAGE": "x"},
			want: []string{`VM image "x" is not allowed by --allowed-images=a/*,b/*: use an image matching one of these patterns or ask the runner admin to add one`}},
		{name: "limit exceeded", env: map[string]string{"CUSTOM_ENV_VM_CPU_REQUEST": "8"},
			want: []string{`VM_CPU_REQUEST "8": exceeds the runner's --max-cpu of 4`, "change VM_CPU_REQUEST in the job's variables (.gitlab-ci.yml) or ask the runner admin"}},
		{name: "both at once, each explained", env: map[string]string{"CUSTOM_ENV_CI_JOB_IMAGE": "x", "CUSTOM_ENV_VM_CPU_REQUEST": "8"},
			want: []string{`VM image "x" is not allowed`, "change VM_CPU_REQUEST"}},
		{name: "machine type not allowed", env: map[string]string{"CUSTOM_ENV_VM_MACHINE_TYPE": "pc"},
			want: []string{`VM_MACHINE_TYPE "pc": must be one of the machine types this runner allows: q35`, "change VM_MACHINE_TYPE", "ask the runner admin to allow it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := jobenv.ReadVMRequest(jobenv.FromMap(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			_, err = policy.Resolve(defaults, req, pol)
			if err == nil {
				t.Fatal("policy accepted the request")
			}
			got := explainPolicy(err, pol)
			for _, w := range tt.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("message %q lacks %q", got, w)
				}
			}
			if !inputerr.Is(got) {
				t.Errorf("explained error %v no longer wraps the *inputerr.Error", got)
			}
		})
	}
}

func TestExplainPolicyPassesOtherErrors(t *testing.T) {
	plain := errors.New("boom")
	if got := explainPolicy(plain, policy.Policy{}); got.Error() != "boom" {
		t.Errorf("explainPolicy(plain) = %q", got)
	}
	if explainPolicy(nil, policy.Policy{}) != nil {
		t.Error("explainPolicy(nil) != nil")
	}
}

func TestExplainWait(t *testing.T) {
	vm := policy.VM{Architecture: "arm64", Requests: map[string]resource.Quantity{"cpu": resource.MustParse("2"), "memory": resource.MustParse("4Gi")}}
	sched := "0/3 nodes are available: 3 Insufficient memory."
	tests := []struct {
		name     string
		err      error
		want     []string
		unchange bool
	}{
		{name: "unschedulable", err: &kube.FailedError{Name: "runner-1-2", Reason: "unschedulable: " + sched},
			want: []string{sched, "cpu 2, memory 4Gi", "kubernetes.io/arch=arm64 and ci=true", "--toleration", "kubectl describe vmi runner-1-2 -n ci"}},
		{name: "other failure unchanged", err: &kube.FailedError{Name: "runner-1-2", Reason: "phase Failed: boom"}, unchange: true},
		{name: "timeout unchanged", err: errors.New("wait for vmi: context deadline exceeded"), unchange: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := explainWait(tt.err, "ci", "runner-1-2", vm, map[string]string{"ci": "true"})
			if tt.unchange {
				if got != tt.err {
					t.Errorf("explainWait changed %v into %v", tt.err, got)
				}
				return
			}
			var fe *kube.FailedError
			if !errors.As(got, &fe) {
				t.Errorf("explained error %v lost the *kube.FailedError", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("message %q lacks %q", got, w)
				}
			}
		})
	}
}

func TestUnreachableHint(t *testing.T) {
	got := unreachableHint("ci", "runner-1-2", 2222, "transport-ssh")
	for _, w := range []string{"port 2222", "SSH server", "cloud-init", "Cloudbase-Init", "datasource", "virtctl console runner-1-2 -n ci"} {
		if !strings.Contains(got, w) {
			t.Errorf("hint %q lacks %q", got, w)
		}
	}
}

func TestProjectPath(t *testing.T) {
	tests := []struct {
		job  jobenv.Job
		want string
	}{
		{jobenv.Job{URL: "https://gitlab.example.com/group/sub/project/-/jobs/42", ProjectID: "7"}, "group/sub/project"},
		{jobenv.Job{URL: "not a url at all", ProjectID: "7"}, "project 7"},
		{jobenv.Job{}, "unknown project"},
	}
	for _, tt := range tests {
		if got := projectPath(tt.job); got != tt.want {
			t.Errorf("projectPath(%+v) = %q, want %q", tt.job, got, tt.want)
		}
	}
}
