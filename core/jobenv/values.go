package jobenv

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
)

// The parsers below check one value's syntax. The same functions parse the
// runner's --default-* flags (name is then the flag) and the job's
// variables (name is then e.g. VM_CPU_REQUEST), so both follow one rule set.

// Bounds on values that no policy can lift.
const (
	// MinTTL is the shortest accepted time to live: a VM that expires
	// before it boots is a mistake.
	MinTTL = time.Minute
	// MaxTTL is the longest accepted time to live.
	MaxTTL = 7 * 24 * time.Hour
	// maxValueLen bounds every parsed value; longer values are refused
	// before parsing.
	maxValueLen = 512
)

// Architectures maps every accepted spelling of a guest architecture to
// KubeVirt's name for it (spec.architecture and the kubernetes.io/arch node
// label).
var architectures = map[string]string{
	"amd64": "amd64", "x86_64": "amd64",
	"arm64": "arm64", "aarch64": "arm64",
	"s390x":   "s390x",
	"ppc64le": "ppc64le",
	"riscv64": "riscv64",
}

// machineTypeRE matches QEMU machine type names as KubeVirt passes them to
// libvirt: "q35", "pc-q35-rhel9.4.0", "virt".
var machineTypeRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// ParseQuantity parses a Kubernetes quantity ("500m", "2", "4Gi") that must
// be greater than zero.
func ParseQuantity(name, value string) (resource.Quantity, error) {
	if len(value) > maxValueLen {
		return resource.Quantity{}, inputerr.New(name, value[:32]+"...", "must be at most %d characters", maxValueLen)
	}
	q, err := resource.ParseQuantity(value)
	if err != nil {
		return resource.Quantity{}, inputerr.New(name, value, "must be a Kubernetes quantity such as 500m, 2, 512Mi or 4Gi")
	}
	if q.Sign() <= 0 {
		return resource.Quantity{}, inputerr.New(name, value, "must be greater than zero")
	}
	return q, nil
}

// ParseTTL parses a Go duration ("90m", "3h") between [MinTTL] and [MaxTTL].
func ParseTTL(name, value string) (time.Duration, error) {
	if len(value) > maxValueLen {
		return 0, inputerr.New(name, value[:32]+"...", "must be at most %d characters", maxValueLen)
	}
	d, err := time.ParseDuration(value)
	if err != nil {
		return 0, inputerr.New(name, value, "must be a duration such as 90m or 3h")
	}
	if d < MinTTL || d > MaxTTL {
		return 0, inputerr.New(name, value, "must be between %s and %s", fmtDuration(MinTTL), fmtDuration(MaxTTL))
	}
	return d, nil
}

// ParseMachineType checks a QEMU machine type name ("q35",
// "pc-q35-rhel9.4.0").
func ParseMachineType(name, value string) (string, error) {
	if !machineTypeRE.MatchString(value) {
		return "", inputerr.New(name, value, "must be a machine type name of lower-case letters, digits, '.', '_' and '-' (e.g. q35), at most 63 characters")
	}
	return value, nil
}

// ParseArchitecture normalises an architecture name: x86_64 becomes amd64,
// aarch64 becomes arm64.
func ParseArchitecture(name, value string) (string, error) {
	if a, ok := architectures[strings.ToLower(value)]; ok {
		return a, nil
	}
	return "", inputerr.New(name, value, "must be one of amd64 (x86_64), arm64 (aarch64), s390x, ppc64le, riscv64")
}

// ParseImage checks a container image reference ("quay.io/org/disk:tag",
// "registry:5000/disk@sha256:...") and returns it as written.
func ParseImage(name, value string) (string, error) {
	if len(value) > maxValueLen {
		return "", inputerr.New(name, value[:32]+"...", "must be at most %d characters", maxValueLen)
	}
	if _, err := reference.ParseNormalizedNamed(value); err != nil {
		return "", inputerr.New(name, value, "must be a container image reference such as registry.example.com/ci/debian:12 (%v)", err)
	}
	return value, nil
}

// fmtDuration prints whole hours and minutes without trailing zero units.
func fmtDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	s = strings.TrimSuffix(s, "0m")
	if s == "" {
		return fmt.Sprint(d)
	}
	return s
}
