package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
)

func q(s string) *resource.Quantity { v := resource.MustParse(s); return &v }

func defaults() Defaults {
	return Defaults{
		Image: "registry.example.com/ci/debian:12", MachineType: "q35", Architecture: "amd64", TTL: 3 * time.Hour,
		CPURequest: q("1"), CPULimit: q("2"), MemoryRequest: q("1Gi"), MemoryLimit: q("2Gi"),
	}
}

func strictPolicy() Policy {
	return Policy{
		AllowedImages: []string{"registry.example.com/ci/*"},
		MaxCPU:        q("4"), MaxMemory: q("8Gi"), MaxStorage: q("50Gi"), MaxTTL: 6 * time.Hour,
		AllowedMachineTypes:  []string{"pc-q35-rhel9.4.0"},
		AllowedArchitectures: []string{"arm64"},
	}
}

// vmEnv parses job variables as prepare does.
func vmEnv(t *testing.T, vars ...string) jobenv.VMRequest {
	t.Helper()
	m := map[string]string{}
	for i := 0; i+1 < len(vars); i += 2 {
		m[jobenv.CustomPrefix+vars[i]] = vars[i+1]
	}
	r, err := jobenv.ReadVMRequest(jobenv.FromMap(m))
	if err != nil {
		t.Fatalf("ReadVMRequest: %v", err)
	}
	return r
}

func TestResolveRefusesOutOfPolicyRequests(t *testing.T) {
	tests := []struct {
		name     string
		vars     []string
		variable string // the name the error must start with
		value    string
		rule     string
	}{
		{"image outside allow-list", []string{"CI_JOB_IMAGE", "docker.io/library/debian:12"}, "CI_JOB_IMAGE", "docker.io/library/debian:12", "is not allowed by the runner's --allowed-images (registry.example.com/ci/*)"},
		{"image in a sub-directory", []string{"CI_JOB_IMAGE", "registry.example.com/ci/x/y:1"}, "CI_JOB_IMAGE", "registry.example.com/ci/x/y:1", "is not allowed"},
		{"image on look-alike registry", []string{"CI_JOB_IMAGE", "registry.example.com.evil/ci/a:1"}, "CI_JOB_IMAGE", "registry.example.com.evil/ci/a:1", "is not allowed"},
		{"cpu request above max", []string{"VM_CPU_REQUEST", "5"}, "VM_CPU_REQUEST", "5", "exceeds the runner's --max-cpu of 4"},
		{"cpu request far above max", []string{"VM_CPU_REQUEST", "64", "VM_CPU_LIMIT", "64"}, "VM_CPU_REQUEST", "64", "exceeds the runner's --max-cpu of 4"},
		{"cpu limit above max", []string{"VM_CPU_LIMIT", "4001m"}, "VM_CPU_LIMIT", "4001m", "exceeds the runner's --max-cpu of 4"},
		{"cpu request above default limit", []string{"VM_CPU_REQUEST", "3"}, "VM_CPU_REQUEST", "3", "must not exceed the cpu limit (2 from --default-cpu-limit)"},
		{"cpu request above job limit", []string{"VM_CPU_REQUEST", "3", "VM_CPU_LIMIT", "2500m"}, "VM_CPU_REQUEST", "3", "must not exceed the cpu limit (2500m from VM_CPU_LIMIT)"},
		{"cpu limit below default request", []string{"VM_CPU_LIMIT", "500m"}, "VM_CPU_LIMIT", "500m", "must be at least the cpu request (1 from --default-cpu-request)"},
		{"memory request above max", []string{"VM_MEMORY_REQUEST", "9Gi", "VM_MEMORY_LIMIT", "8Gi"}, "VM_MEMORY_REQUEST", "9Gi", "exceeds the runner's --max-memory of 8Gi"},
		{"memory limit above max", []string{"VM_MEMORY_LIMIT", "16Gi"}, "VM_MEMORY_LIMIT", "16Gi", "exceeds the runner's --max-memory of 8Gi"},
		{"memory limit above max in other units", []string{"VM_MEMORY_LIMIT", "9000M"}, "VM_MEMORY_LIMIT", "9G", "exceeds the runner's --max-memory of 8Gi"},
		{"memory request above default limit", []string{"VM_MEMORY_REQUEST", "3Gi"}, "VM_MEMORY_REQUEST", "3Gi", "must not exceed the memory limit (2Gi from --default-memory-limit)"},
		{"memory limit below default request", []string{"VM_MEMORY_LIMIT", "512Mi"}, "VM_MEMORY_LIMIT", "512Mi", "must be at least the memory request (1Gi from --default-memory-request)"},
		{"storage request above max", []string{"VM_STORAGE_REQUEST", "100Gi"}, "VM_STORAGE_REQUEST", "100Gi", "exceeds the runner's --max-storage of 50Gi"},
		{"storage limit above max", []string{"VM_STORAGE_LIMIT", "51Gi"}, "VM_STORAGE_LIMIT", "51Gi", "exceeds the runner's --max-storage of 50Gi"},
		{"storage request above limit", []string{"VM_STORAGE_REQUEST", "20Gi", "VM_STORAGE_LIMIT", "10Gi"}, "VM_STORAGE_REQUEST", "20Gi", "must not exceed the ephemeral-storage limit (10Gi from VM_STORAGE_LIMIT)"},
		{"ttl above max", []string{"VM_TTL", "7h"}, "VM_TTL", "7h0m0s", "exceeds the runner's --max-ttl of 6h0m0s"},
		{"ttl a week", []string{"VM_TTL", "168h"}, "VM_TTL", "168h0m0s", "exceeds the runner's --max-ttl"},
		{"machine type not allowed", []string{"VM_MACHINE_TYPE", "microvm"}, "VM_MACHINE_TYPE", "microvm", "must be one of the machine types this runner allows: q35, pc-q35-rhel9.4.0"},
		{"machine type virt", []string{"VM_MACHINE_TYPE", "virt"}, "VM_MACHINE_TYPE", "virt", "must be one of the machine types"},
		{"architecture not allowed", []string{"VM_ARCHITECTURE", "s390x"}, "VM_ARCHITECTURE", "s390x", "must be one of the architectures this runner allows: amd64, arm64"},
		{"architecture riscv", []string{"VM_ARCHITECTURE", "riscv64"}, "VM_ARCHITECTURE", "riscv64", "must be one of the architectures"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resolve(defaults(), vmEnv(t, tt.vars...), strictPolicy())
			if err == nil {
				t.Fatalf("Resolve accepted %v", tt.vars)
			}
			var ie *inputerr.Error
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an inputerr.Error", err)
			}
			if ie.Name != tt.variable || ie.Value != tt.value {
				t.Errorf("error names %s=%q, want %s=%q (message %q)", ie.Name, ie.Value, tt.variable, tt.value, err)
			}
			if !strings.Contains(err.Error(), tt.rule) {
				t.Errorf("message %q does not state the rule %q", err, tt.rule)
			}
		})
	}
}

func TestResolveAccepts(t *testing.T) {
	tests := []struct {
		name   string
		vars   []string
		policy Policy
		check  func(t *testing.T, vm VM)
	}{
		{
			name: "defaults only", policy: strictPolicy(),
			check: func(t *testing.T, vm VM) {
				if vm.Image != defaults().Image || vm.MachineType != "q35" || vm.Architecture != "amd64" || vm.TTL != 3*time.Hour {
					t.Errorf("vm = %s", vm)
				}
				if c := vm.Requests["cpu"]; c.String() != "1" {
					t.Errorf("cpu request = %s", c.String())
				}
				if _, ok := vm.Requests["ephemeral-storage"]; ok {
					t.Errorf("unset storage was set: %v", vm.Requests)
				}
			},
		},
		{
			name: "everything inside the policy", policy: strictPolicy(),
			vars: []string{"CI_JOB_IMAGE", "registry.example.com/ci/rust:1", "VM_MACHINE_TYPE", "pc-q35-rhel9.4.0", "VM_ARCHITECTURE", "aarch64",
				"VM_TTL", "6h", "VM_CPU_REQUEST", "4", "VM_CPU_LIMIT", "4", "VM_MEMORY_REQUEST", "8Gi", "VM_MEMORY_LIMIT", "8Gi",
				"VM_STORAGE_REQUEST", "50Gi", "VM_STORAGE_LIMIT", "50Gi"},
			check: func(t *testing.T, vm VM) {
				if vm.Image != "registry.example.com/ci/rust:1" || vm.Architecture != "arm64" || vm.MachineType != "pc-q35-rhel9.4.0" || vm.TTL != 6*time.Hour {
					t.Errorf("vm = %s", vm)
				}
				if s := vm.Limits["ephemeral-storage"]; s.String() != "50Gi" {
					t.Errorf("storage limit = %s", s.String())
				}
			},
		},
		{
			name: "empty policy allows any image but only default machine", policy: Policy{},
			vars: []string{"CI_JOB_IMAGE", "quay.io/containerdisks/fedora:40", "VM_CPU_REQUEST", "2", "VM_CPU_LIMIT", "64"},
			check: func(t *testing.T, vm VM) {
				if vm.Image != "quay.io/containerdisks/fedora:40" {
					t.Errorf("image = %s", vm.Image)
				}
			},
		},
		{
			name: "job asking for the defaults explicitly", policy: strictPolicy(),
			vars: []string{"CI_JOB_IMAGE", defaults().Image, "VM_MACHINE_TYPE", "q35", "VM_ARCHITECTURE", "x86_64"},
			check: func(t *testing.T, vm VM) {
				if vm.Architecture != "amd64" {
					t.Errorf("architecture = %s", vm.Architecture)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm, err := Resolve(defaults(), vmEnv(t, tt.vars...), tt.policy)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			tt.check(t, vm)
		})
	}
}

func TestResolveRefusesBadRunnerConfiguration(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Defaults, *Policy)
		want   string
	}{
		{"no default image", func(d *Defaults, _ *Policy) { d.Image = "" }, `--default-image "": is required`},
		{"bad pull policy", func(d *Defaults, _ *Policy) { d.ImagePullPolicy = "Sometimes" }, `--default-image-pull-policy "Sometimes": must be Always, IfNotPresent or Never`},
		{"bad glob", func(_ *Defaults, p *Policy) { p.AllowedImages = []string{"registry/["} }, `--allowed-images "registry/[": must be a glob pattern`},
		{"default above max", func(d *Defaults, p *Policy) { d.CPURequest = q("8"); d.CPULimit = q("8") }, `--default-cpu-request "8": exceeds the runner's --max-cpu of 4`},
		{"no memory at all", func(d *Defaults, _ *Policy) { d.MemoryRequest, d.MemoryLimit = nil, nil }, `--default-memory-request "": is required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, p := defaults(), strictPolicy()
			tt.mutate(&d, &p)
			_, err := Resolve(d, jobenv.VMRequest{}, p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestResolveReportsEveryProblem(t *testing.T) {
	_, err := Resolve(defaults(), vmEnv(t, "VM_CPU_REQUEST", "16", "VM_TTL", "100h", "VM_ARCHITECTURE", "s390x"), strictPolicy())
	for _, v := range []string{"VM_CPU_REQUEST", "VM_TTL", "VM_ARCHITECTURE"} {
		if err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("error %v does not mention %s", err, v)
		}
	}
}
