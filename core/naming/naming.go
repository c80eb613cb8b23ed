// Package naming derives the Kubernetes names and labels of a job's objects.
//
// Names are a pure function of the runner and the job, so every stage
// (prepare, run, cleanup) finds the objects without keeping state, and a
// prepare that GitLab retries after a cleanup reuses them:
//
//	VMI:    <prefix>-<CI_RUNNER_ID>-<CI_JOB_ID>       e.g. runner-12-3456
//	Secret: <VMI name>-credentials                    e.g. runner-12-3456-credentials
//
// CI_JOB_ID is unique within a GitLab instance and a job runs on exactly one
// runner at a time, so runner id + job id identify one job; CI_CONCURRENT_ID
// (the slot number inside one runner process) adds nothing and is left out.
// The prefix keeps several GitLab instances (or runner fleets) sharing one
// namespace apart. The VMI name is a DNS-1123 label of at most 63
// characters because KubeVirt uses it as the guest's hostname and in label
// values of the virt-launcher Pod.
package naming

import (
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
)

// DefaultPrefix is the default first part of every VMI name.
const DefaultPrefix = "runner"

// SecretSuffix is appended to the VMI name to name the job's credential
// Secret.
const SecretSuffix = "-credentials"

// maxIDDigits bounds CI_RUNNER_ID and CI_JOB_ID: GitLab ids are 64-bit
// integers, at most 19 digits.
const maxIDDigits = 19

var digits = regexp.MustCompile(`^[0-9]+$`)

// Names are the names of one job's objects.
type Names struct {
	// VMI is the VirtualMachineInstance's name (also the guest hostname).
	VMI string
	// Secret is the credential Secret's name.
	Secret string
}

// ValidatePrefix checks a name prefix given with the flag called flagName.
// The prefix must be a DNS-1123 label that leaves room for the ids.
func ValidatePrefix(flagName, prefix string) error {
	if errs := validation.IsDNS1123Label(prefix); len(errs) > 0 {
		return inputerr.New(flagName, prefix, "must be a DNS-1123 label: %s", strings.Join(errs, "; "))
	}
	// Two ids of up to 19 digits and two dashes must still fit in 63.
	if limit := validation.DNS1123LabelMaxLength - 2*maxIDDigits - 2; len(prefix) > limit {
		return inputerr.New(flagName, prefix, "must be at most %d characters so that <prefix>-<runner id>-<job id> fits in a 63-character name", limit)
	}
	return nil
}

// ValidateID checks a GitLab numeric id (CI_RUNNER_ID, CI_JOB_ID, ...) named
// name: 1 to 19 decimal digits.
func ValidateID(name, id string) error {
	if !digits.MatchString(id) {
		return inputerr.New(name, id, "must be a GitLab numeric id (decimal digits only); is the stage run by gitlab-runner?")
	}
	if len(id) > maxIDDigits {
		return inputerr.New(name, id, "must have at most %d digits", maxIDDigits)
	}
	return nil
}

// ForJob returns the names of the objects of job jobID on runner runnerID.
// prefix is validated as the --name-prefix flag, the ids as CI_RUNNER_ID
// and CI_JOB_ID.
func ForJob(prefix, runnerID, jobID string) (Names, error) {
	if err := ValidatePrefix("--name-prefix", prefix); err != nil {
		return Names{}, err
	}
	if err := ValidateID("CI_RUNNER_ID", runnerID); err != nil {
		return Names{}, err
	}
	if err := ValidateID("CI_JOB_ID", jobID); err != nil {
		return Names{}, err
	}
	vmi := prefix + "-" + runnerID + "-" + jobID
	return Names{VMI: vmi, Secret: SecretName(vmi)}, nil
}

// SecretName returns the credential Secret's name for a VMI name.
func SecretName(vmi string) string { return vmi + SecretSuffix }

// Hostname returns the guest hostname for a job's VMI, at most limit
// characters (0 or more than 63: a DNS label's 63). It is the VMI name when
// that fits, else "ci-<job id>", else "j" and the job id's last digits:
// short guests (Windows computer names have at most 15 characters) still
// get a name that tells jobs apart.
func Hostname(vmi, jobID string, limit int) string {
	if limit <= 0 || limit > validation.DNS1123LabelMaxLength {
		limit = validation.DNS1123LabelMaxLength
	}
	limit = max(limit, 2)
	if len(vmi) <= limit {
		return vmi
	}
	if short := "ci-" + jobID; len(short) <= limit {
		return short
	}
	if len(jobID) > limit-1 {
		jobID = jobID[len(jobID)-(limit-1):]
	}
	return "j" + jobID
}
