package stages

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
)

// Kind classifies a stage failure the way GitLab does.
type Kind int

const (
	// System is a failure of the executor, the cluster or the VM: GitLab
	// marks the job as failed for a runner system failure.
	System Kind = iota
	// Build is a failure of the job's own script.
	Build
)

// Failure is a stage error with its GitLab classification.
type Failure struct {
	Kind Kind
	// Code is the script's exit code (Build failures only).
	Code int
	Err  error
}

func (f *Failure) Error() string {
	if f.Err == nil {
		return fmt.Sprintf("script exited with code %d", f.Code)
	}
	return f.Err.Error()
}

func (f *Failure) Unwrap() error { return f.Err }

// SystemFailure marks err as a system failure.
func SystemFailure(err error) error {
	if err == nil {
		return nil
	}
	return &Failure{Kind: System, Err: err}
}

// BuildFailure reports a script that exited with code.
func BuildFailure(code int, err error) error {
	return &Failure{Kind: Build, Code: code, Err: err}
}

// ExitStatus maps a stage's result to the process exit code gitlab-runner
// expects: 0 on success; BUILD_FAILURE_EXIT_CODE for a build failure, after
// writing the script's exit code to BUILD_EXIT_CODE_FILE (without it GitLab
// reports every script failure as exit code 1); SYSTEM_FAILURE_EXIT_CODE
// for anything else. A missing code variable falls back to 1. The returned
// error is a problem writing the exit-code file.
func ExitStatus(lookup jobenv.Lookup, err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	codes := jobenv.ReadExitCodes(lookup)
	var f *Failure
	if !errors.As(err, &f) || f.Kind != Build {
		return codes.System, nil
	}
	if path, ok := lookup(jobenv.BuildExitCodeFile); ok && path != "" {
		if werr := os.WriteFile(path, []byte(strconv.Itoa(f.Code)), 0o600); werr != nil {
			return codes.Build, fmt.Errorf("write %s %s: %w", jobenv.BuildExitCodeFile, path, werr)
		}
	}
	return codes.Build, nil
}
