package naming

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
)

func TestForJob(t *testing.T) {
	maxPrefix := strings.Repeat("p", 23)
	maxID := strings.Repeat("9", 19)
	tests := []struct {
		name             string
		prefix, run, job string
		wantVMI          string
		wantErr          string // substring; empty means success
	}{
		{name: "typical", prefix: "runner", run: "12", job: "3456", wantVMI: "runner-12-3456"},
		{name: "longest everything", prefix: maxPrefix, run: maxID, job: maxID, wantVMI: maxPrefix + "-" + maxID + "-" + maxID},
		{name: "prefix with dash", prefix: "ci-fleet-a", run: "1", job: "2", wantVMI: "ci-fleet-a-1-2"},
		{name: "prefix too long", prefix: maxPrefix + "p", run: "1", job: "2", wantErr: `--name-prefix "` + maxPrefix + `p": must be at most 23 characters`},
		{name: "prefix upper case", prefix: "Runner", run: "1", job: "2", wantErr: `--name-prefix "Runner": must be a DNS-1123 label`},
		{name: "prefix empty", prefix: "", run: "1", job: "2", wantErr: `--name-prefix "": must be a DNS-1123 label`},
		{name: "prefix trailing dash", prefix: "runner-", run: "1", job: "2", wantErr: `--name-prefix "runner-"`},
		{name: "runner id missing", prefix: "runner", run: "", job: "2", wantErr: `CI_RUNNER_ID "": must be a GitLab numeric id`},
		{name: "runner id letters", prefix: "runner", run: "12a", job: "2", wantErr: `CI_RUNNER_ID "12a": must be a GitLab numeric id`},
		{name: "job id negative", prefix: "runner", run: "1", job: "-2", wantErr: `CI_JOB_ID "-2": must be a GitLab numeric id`},
		{name: "job id injection", prefix: "runner", run: "1", job: "2/../x", wantErr: `CI_JOB_ID "2/../x"`},
		{name: "job id too long", prefix: "runner", run: "1", job: maxID + "0", wantErr: `CI_JOB_ID "` + maxID + `0": must have at most 19 digits`},
		{name: "job id with newline", prefix: "runner", run: "1", job: "2\n", wantErr: `CI_JOB_ID "2\n"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ForJob(tt.prefix, tt.run, tt.job)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ForJob(%q, %q, %q) error = %v, want it to contain %q", tt.prefix, tt.run, tt.job, err, tt.wantErr)
				}
				if !inputerr.Is(err) {
					t.Errorf("error %v is not an inputerr.Error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ForJob: %v", err)
			}
			if got.VMI != tt.wantVMI || got.Secret != tt.wantVMI+SecretSuffix {
				t.Errorf("ForJob = %+v, want VMI %q and Secret %q", got, tt.wantVMI, tt.wantVMI+SecretSuffix)
			}
			if errs := validation.IsDNS1123Label(got.VMI); len(errs) > 0 {
				t.Errorf("VMI name %q is not a DNS-1123 label: %v", got.VMI, errs)
			}
			if errs := validation.IsDNS1123Subdomain(got.Secret); len(errs) > 0 {
				t.Errorf("Secret name %q is not a DNS-1123 subdomain: %v", got.Secret, errs)
			}
			if errs := validation.IsValidLabelValue(got.VMI); len(errs) > 0 {
				t.Errorf("VMI name %q cannot be the %s label value: %v", got.VMI, LabelID, errs)
			}
		})
	}
}

func TestForJobIsDeterministic(t *testing.T) {
	a, err := ForJob("runner", "7", "99")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ForJob("runner", "7", "99")
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("two calls gave %+v and %+v", a, b)
	}
}

func TestLabelValue(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"main", "main"},
		{"feature/login-page", "feature-login-page"},
		{"release_1.2", "release_1.2"},
		{"-leading-and-trailing-", "leading-and-trailing"},
		{"refs/merge-requests/12/head", "refs-merge-requests-12-head"},
		{"ümlaut-branch", "mlaut-branch"},
		{"a b\nc", "a-b-c"},
		{long, long[:63]},
		{strings.Repeat("a", 62) + "/b", strings.Repeat("a", 62)},
		{"////", ""},
		{"0123456789abcdef0123456789abcdef01234567", "0123456789abcdef0123456789abcdef01234567"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := LabelValue(tt.in)
			if got != tt.want {
				t.Errorf("LabelValue(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
				t.Errorf("LabelValue(%q) = %q is not a valid label value: %v", tt.in, got, errs)
			}
		})
	}
}

// FuzzLabelValue checks that any input becomes a valid label value, that
// sanitising is idempotent and that valid values pass unchanged. Seeds are
// in testdata/fuzz/FuzzLabelValue.
func FuzzLabelValue(f *testing.F) {
	f.Add("feature/x")
	f.Fuzz(func(t *testing.T, s string) {
		got := LabelValue(s)
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Fatalf("LabelValue(%q) = %q: %v", s, got, errs)
		}
		if again := LabelValue(got); again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, got, again)
		}
		if len(validation.IsValidLabelValue(s)) == 0 && got != s {
			t.Fatalf("valid value %q changed to %q", s, got)
		}
	})
}

func TestHostname(t *testing.T) {
	tests := []struct {
		name  string
		vmi   string
		jobID string
		limit int
		want  string
	}{
		{"fits: the VMI name", "runner-12-3456789", "3456789", 0, "runner-12-3456789"},
		{"fits within the limit", "runner-1-2", "2", 15, "runner-1-2"},
		{"windows: ci-<job id>", "runner-12-3456789", "3456789", 15, "ci-3456789"},
		{"windows, long job id: last digits", "runner-12-1234567890123456789", "1234567890123456789", 15, "j67890123456789"},
		{"job id one short of ci- fitting", "runner-1-1234567890123", "1234567890123", 15, "j1234567890123"},
		{"limit above a DNS label", "runner-12-3456789", "3456789", 100, "runner-12-3456789"},
		{"tiny limit", "runner-12-3456789", "3456789", 1, "j9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Hostname(tt.vmi, tt.jobID, tt.limit)
			if got != tt.want {
				t.Fatalf("Hostname(%q, %q, %d) = %q, want %q", tt.vmi, tt.jobID, tt.limit, got, tt.want)
			}
			if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
				t.Fatalf("Hostname %q is not a DNS label: %v", got, errs)
			}
		})
	}
}
