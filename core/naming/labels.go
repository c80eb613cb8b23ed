package naming

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Label keys and values put on every VMI and Secret the executor creates.
// gc, cleanup and humans (kubectl get vmi -l ...) select on them.
const (
	// LabelName is the well-known app.kubernetes.io/name label.
	LabelName = "app.kubernetes.io/name"
	// LabelManagedBy is the well-known app.kubernetes.io/managed-by label;
	// gc only ever touches objects carrying it with value [AppName].
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// AppName is the value of LabelName and LabelManagedBy.
	AppName = "gitlab-runner-kubevirt"
	// LabelInstance is the well-known app.kubernetes.io/instance label;
	// it carries the VMI name (one job's VM is one instance).
	LabelInstance = "app.kubernetes.io/instance"
	// LabelComponent is the well-known app.kubernetes.io/component label;
	// its value on job objects is [ComponentJobVM].
	LabelComponent = "app.kubernetes.io/component"
	// ComponentJobVM is the LabelComponent value of a job's VMI and Secret.
	ComponentJobVM = "ci-job-vm"
	// LabelVersion is the well-known app.kubernetes.io/version label: the
	// executor version that created the object.
	LabelVersion = "app.kubernetes.io/version"

	// LabelID carries the VMI name on both the VMI and its Secret.
	LabelID = "io.kubevirt.gitlab-runner/id"
	// LabelRunnerID carries CI_RUNNER_ID.
	LabelRunnerID = "io.kubevirt.gitlab-runner/runner-id"
	// LabelExpires carries the Unix time (seconds) after which gc may
	// delete the objects. (RFC 3339 is not a valid label value.)
	LabelExpires = "io.kubevirt.gitlab-runner/expires"
	// LabelProjectID carries CI_PROJECT_ID.
	LabelProjectID = "project.runner.gitlab.com/id"
	// LabelJobID carries CI_JOB_ID.
	LabelJobID = "job.runner.gitlab.com/id"
	// LabelJobRef carries CI_COMMIT_REF_NAME, sanitised by [LabelValue].
	LabelJobRef = "job.runner.gitlab.com/ref"
	// LabelJobSHA carries CI_COMMIT_SHA.
	LabelJobSHA = "job.runner.gitlab.com/sha"
)

// Annotation keys. Free text and timestamps live here, never in labels.
const (
	// AnnotationJobName carries CI_JOB_NAME.
	AnnotationJobName = "job.runner.gitlab.com/name"
	// AnnotationJobURL carries CI_JOB_URL.
	AnnotationJobURL = "job.runner.gitlab.com/url"
	// AnnotationCreated carries the creation time in RFC 3339.
	AnnotationCreated = "io.kubevirt.gitlab-runner/created"
	// AnnotationTTL carries the time to live as a Go duration ("3h0m0s").
	AnnotationTTL = "io.kubevirt.gitlab-runner/ttl"
	// AnnotationOSPlugin names the OS plugin that rendered first-boot data.
	AnnotationOSPlugin = "io.kubevirt.gitlab-runner/os-plugin"
	// AnnotationTransportPlugin names the transport plugin run uses.
	AnnotationTransportPlugin = "io.kubevirt.gitlab-runner/transport-plugin"
)

// LabelValue turns any string into a valid Kubernetes label value: at most
// 63 characters of [A-Za-z0-9._-], starting and ending with an alphanumeric
// character (or empty). Other characters become '-', the result is cut to
// 63 characters and trimmed of non-alphanumeric ends. A valid label value is
// returned unchanged, so LabelValue is idempotent.
func LabelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	b := make([]byte, 0, min(len(s), validation.LabelValueMaxLength))
	for i := 0; i < len(s) && len(b) < validation.LabelValueMaxLength; i++ {
		c := s[i]
		switch {
		case isAlnum(c), c == '.', c == '_', c == '-':
			b = append(b, c)
		default:
			b = append(b, '-')
		}
	}
	return strings.TrimFunc(string(b), func(r rune) bool { return r > 0x7f || !isAlnum(byte(r)) })
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
