package jobenv

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
)

// maxFreeText bounds free-text job values (job name, URL, ref) that end up
// in annotations and labels; GitLab's own limits are lower.
const maxFreeText = 1024

// Job identifies the job and carries its descriptive metadata.
type Job struct {
	// RunnerID is CI_RUNNER_ID (digits).
	RunnerID string
	// JobID is CI_JOB_ID (digits).
	JobID string
	// ProjectID is CI_PROJECT_ID (digits or empty).
	ProjectID string
	// Name, URL, Ref and SHA describe the job (free text, may be empty).
	Name, URL, Ref, SHA string
	// Timeout is CI_JOB_TIMEOUT; zero when unset.
	Timeout time.Duration
	// ExitCodeFile is BUILD_EXIT_CODE_FILE; empty when unset.
	ExitCodeFile string
}

// ReadJob reads the job identity (CI_RUNNER_ID and CI_JOB_ID are required
// and must be digits) and metadata. All problems are reported at once.
func ReadJob(lookup Lookup) (Job, error) {
	var errs []error
	j := Job{}
	j.RunnerID, _ = job(lookup, VarRunnerID)
	if err := naming.ValidateID(VarRunnerID, j.RunnerID); err != nil {
		errs = append(errs, err)
	}
	j.JobID, _ = job(lookup, VarJobID)
	if err := naming.ValidateID(VarJobID, j.JobID); err != nil {
		errs = append(errs, err)
	}
	if v, ok := job(lookup, VarProjectID); ok && v != "" {
		if err := naming.ValidateID(VarProjectID, v); err != nil {
			errs = append(errs, err)
		} else {
			j.ProjectID = v
		}
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{VarJobName, &j.Name}, {VarJobURL, &j.URL}, {VarCommitRef, &j.Ref}, {VarCommitSHA, &j.SHA},
	} {
		v, _ := job(lookup, f.name)
		if len(v) > maxFreeText {
			v = v[:maxFreeText]
		}
		*f.dst = v
	}
	if v, ok := job(lookup, VarJobTimeout); ok && strings.TrimSpace(v) != "" {
		secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || secs <= 0 || secs > int64((1<<62)/time.Second) {
			errs = append(errs, inputerr.New(VarJobTimeout, v, "must be a positive number of seconds"))
		} else {
			j.Timeout = time.Duration(secs) * time.Second
		}
	}
	j.ExitCodeFile, _ = lookup(BuildExitCodeFile)
	return j, errors.Join(errs...)
}
