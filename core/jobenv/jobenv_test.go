package jobenv

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
)

// env builds a Lookup of job variables (CUSTOM_ENV_ is added).
func env(vars ...string) Lookup {
	m := map[string]string{}
	for i := 0; i+1 < len(vars); i += 2 {
		m[CustomPrefix+vars[i]] = vars[i+1]
	}
	return FromMap(m)
}

func TestReadVMRequestRefusesMalformedValues(t *testing.T) {
	tests := []struct {
		variable, value string
		rule            string // substring of the rule
	}{
		{VarCPURequest, "abc", "must be a Kubernetes quantity"},
		{VarCPURequest, "-1", "must be greater than zero"},
		{VarCPURequest, "0", "must be greater than zero"},
		{VarCPURequest, "2 cores", "must be a Kubernetes quantity"},
		{VarCPURequest, "1.5.3", "must be a Kubernetes quantity"},
		{VarCPULimit, "4x", "must be a Kubernetes quantity"},
		{VarCPULimit, "0m", "must be greater than zero"},
		{VarMemoryRequest, "4GB", "must be a Kubernetes quantity"},
		{VarMemoryRequest, "-4Gi", "must be greater than zero"},
		{VarMemoryRequest, "Gi", "must be greater than zero"},
		{VarMemoryLimit, "8 Gi", "must be a Kubernetes quantity"},
		{VarMemoryLimit, "1e", "must be a Kubernetes quantity"},
		{VarStorageRequest, "lots", "must be a Kubernetes quantity"},
		{VarStorageRequest, "0Gi", "must be greater than zero"},
		{VarStorageLimit, "100GiB", "must be a Kubernetes quantity"},
		{VarStorageLimit, "1Gi\n", "must be a Kubernetes quantity"},
		{VarTTL, "3", "must be a duration"},
		{VarTTL, "forever", "must be a duration"},
		{VarTTL, "30s", "must be between 1m and 168h"},
		{VarTTL, "-1h", "must be between 1m and 168h"},
		{VarTTL, "10000h", "must be between 1m and 168h"},
		{VarMachineType, "Q35", "must be a machine type name"},
		{VarMachineType, "q35; rm -rf /", "must be a machine type name"},
		{VarMachineType, "-q35", "must be a machine type name"},
		{VarMachineType, strings.Repeat("q", 64), "must be a machine type name"},
		{VarArchitecture, "x86", "must be one of amd64 (x86_64), arm64 (aarch64)"},
		{VarArchitecture, "i386", "must be one of amd64"},
		{VarArchitecture, "arm", "must be one of amd64"},
		{VarJobImage, "registry.example.com/UPPER:tag", "must be a container image reference"},
		{VarJobImage, "registry.example.com/disk:tag with space", "must be a container image reference"},
		{VarJobImage, "disk@sha256:notahash", "must be a container image reference"},
		{VarJobImage, "http://registry.example.com/disk", "must be a container image reference"},
	}
	for _, tt := range tests {
		t.Run(tt.variable+"="+tt.value, func(t *testing.T) {
			_, err := ReadVMRequest(env(tt.variable, tt.value))
			if err == nil {
				t.Fatalf("%s=%q was accepted", tt.variable, tt.value)
			}
			var ie *inputerr.Error
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an inputerr.Error", err)
			}
			msg := err.Error()
			// Named as users write it, never with the runner's prefix.
			if !strings.HasPrefix(msg, tt.variable+" ") || strings.Contains(msg, CustomPrefix) {
				t.Errorf("message %q does not start with the variable name %s", msg, tt.variable)
			}
			if ie.Value != tt.value {
				t.Errorf("error value = %q, want %q", ie.Value, tt.value)
			}
			if !strings.Contains(msg, tt.rule) {
				t.Errorf("message %q does not state the rule %q", msg, tt.rule)
			}
		})
	}
}

func TestReadVMRequestReportsEveryProblem(t *testing.T) {
	_, err := ReadVMRequest(env(VarCPURequest, "x", VarMemoryLimit, "y", VarTTL, "z"))
	for _, v := range []string{VarCPURequest, VarMemoryLimit, VarTTL} {
		if err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("error %v does not mention %s", err, v)
		}
	}
}

func TestReadVMRequestAcceptsValidValues(t *testing.T) {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	tests := []struct {
		name string
		env  Lookup
		want VMRequest
	}{
		{name: "nothing set", env: env(), want: VMRequest{}},
		{name: "empty values are unset", env: env(VarCPURequest, "", VarJobImage, "", VarTTL, ""), want: VMRequest{}},
		{
			name: "everything",
			env: env(VarJobImage, "registry.example.com/ci/debian:12", VarMachineType, "pc-q35-rhel9.4.0",
				VarArchitecture, "aarch64", VarTTL, "90m",
				VarCPURequest, "500m", VarCPULimit, "2", VarMemoryRequest, "2Gi", VarMemoryLimit, "4Gi",
				VarStorageRequest, "10Gi", VarStorageLimit, "20Gi"),
			want: VMRequest{
				Image: "registry.example.com/ci/debian:12", MachineType: "pc-q35-rhel9.4.0", Architecture: "arm64",
				TTL: 90 * time.Minute, CPURequest: q("500m"), CPULimit: q("2"), MemoryRequest: q("2Gi"),
				MemoryLimit: q("4Gi"), StorageRequest: q("10Gi"), StorageLimit: q("20Gi"),
			},
		},
		{name: "x86_64 alias", env: env(VarArchitecture, "x86_64"), want: VMRequest{Architecture: "amd64"}},
		{name: "short image", env: env(VarJobImage, "debian"), want: VMRequest{Image: "debian"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadVMRequest(tt.env)
			if err != nil {
				t.Fatalf("ReadVMRequest: %v", err)
			}
			if got.Image != tt.want.Image || got.MachineType != tt.want.MachineType ||
				got.Architecture != tt.want.Architecture || got.TTL != tt.want.TTL {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			for _, p := range []struct {
				name      string
				got, want *resource.Quantity
			}{
				{"cpu request", got.CPURequest, tt.want.CPURequest}, {"cpu limit", got.CPULimit, tt.want.CPULimit},
				{"memory request", got.MemoryRequest, tt.want.MemoryRequest}, {"memory limit", got.MemoryLimit, tt.want.MemoryLimit},
				{"storage request", got.StorageRequest, tt.want.StorageRequest}, {"storage limit", got.StorageLimit, tt.want.StorageLimit},
			} {
				if (p.got == nil) != (p.want == nil) || (p.got != nil && p.got.Cmp(*p.want) != 0) {
					t.Errorf("%s = %v, want %v", p.name, p.got, p.want)
				}
			}
		})
	}
}

func TestReadJob(t *testing.T) {
	tests := []struct {
		name    string
		env     Lookup
		want    Job
		wantErr []string
	}{
		{
			name: "complete",
			env: FromMap(map[string]string{
				"CUSTOM_ENV_CI_RUNNER_ID": "12", "CUSTOM_ENV_CI_JOB_ID": "345", "CUSTOM_ENV_CI_PROJECT_ID": "6",
				"CUSTOM_ENV_CI_JOB_NAME": "build", "CUSTOM_ENV_CI_COMMIT_REF_NAME": "feature/x",
				"CUSTOM_ENV_CI_JOB_TIMEOUT": "3600", "BUILD_EXIT_CODE_FILE": "/tmp/code",
			}),
			want: Job{RunnerID: "12", JobID: "345", ProjectID: "6", Name: "build", Ref: "feature/x", Timeout: time.Hour, ExitCodeFile: "/tmp/code"},
		},
		{name: "missing ids", env: FromMap(nil), wantErr: []string{`CI_RUNNER_ID ""`, `CI_JOB_ID ""`}},
		{
			name:    "bad ids and timeout",
			env:     env(VarRunnerID, "r1", VarJobID, "1", VarProjectID, "p", VarJobTimeout, "1h"),
			wantErr: []string{`CI_RUNNER_ID "r1"`, `CI_PROJECT_ID "p"`, `CI_JOB_TIMEOUT "1h": must be a positive number of seconds`},
		},
		{
			name:    "prefix-less variables are ignored",
			env:     FromMap(map[string]string{"CI_RUNNER_ID": "1", "CI_JOB_ID": "2"}),
			wantErr: []string{`CI_RUNNER_ID ""`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadJob(tt.env)
			if len(tt.wantErr) > 0 {
				for _, w := range tt.wantErr {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadJob: %v", err)
			}
			if got != tt.want {
				t.Errorf("ReadJob = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadExitCodes(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want ExitCodes
	}{
		{"set", map[string]string{BuildFailureExitCode: "2", SystemFailureExitCode: "3"}, ExitCodes{Build: 2, System: 3}},
		{"unset falls back to 1", nil, ExitCodes{Build: 1, System: 1}},
		{"garbage falls back to 1", map[string]string{BuildFailureExitCode: "x", SystemFailureExitCode: "300"}, ExitCodes{Build: 1, System: 1}},
		{"zero is not a failure code", map[string]string{BuildFailureExitCode: "0", SystemFailureExitCode: " 7 "}, ExitCodes{Build: 1, System: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReadExitCodes(FromMap(tt.env)); got != tt.want {
				t.Errorf("ReadExitCodes = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOSLookupReadsTheProcessEnvironment(t *testing.T) {
	t.Setenv("CUSTOM_ENV_VM_CPU_REQUEST", "3")
	r, err := ReadVMRequest(OS())
	if err != nil {
		t.Fatal(err)
	}
	if r.CPURequest == nil || r.CPURequest.String() != "3" {
		t.Errorf("CPURequest = %v, want 3 (from %q)", r.CPURequest, os.Getenv("CUSTOM_ENV_VM_CPU_REQUEST"))
	}
}

// FuzzReadVMRequest feeds arbitrary values to every VM variable: parsing
// must not panic, a refusal must be an inputerr.Error naming a variable,
// and an accepted quantity must be positive. Seeds are in
// testdata/fuzz/FuzzReadVMRequest.
func FuzzReadVMRequest(f *testing.F) {
	f.Add("2", "4Gi", "3h", "q35", "x86_64", "debian:12")
	f.Fuzz(func(t *testing.T, cpu, mem, ttl, machine, arch, image string) {
		r, err := ReadVMRequest(env(VarCPURequest, cpu, VarMemoryLimit, mem, VarTTL, ttl,
			VarMachineType, machine, VarArchitecture, arch, VarJobImage, image))
		if err != nil {
			if !inputerr.Is(err) {
				t.Fatalf("error %v is not an inputerr.Error", err)
			}
			named := false
			for _, v := range []string{VarCPURequest, VarMemoryLimit, VarTTL, VarMachineType, VarArchitecture, VarJobImage} {
				named = named || strings.HasPrefix(err.Error(), v+" ")
			}
			if !named {
				t.Fatalf("error %q names no variable", err)
			}
			return
		}
		for _, q := range []*resource.Quantity{r.CPURequest, r.MemoryLimit} {
			if q != nil && q.Sign() <= 0 {
				t.Fatalf("accepted non-positive quantity %v", q)
			}
		}
		if r.TTL != 0 && (r.TTL < MinTTL || r.TTL > MaxTTL) {
			t.Fatalf("accepted TTL %v out of bounds", r.TTL)
		}
		if r.Architecture != "" && architectures[r.Architecture] != r.Architecture {
			t.Fatalf("architecture %q is not normalised", r.Architecture)
		}
	})
}
