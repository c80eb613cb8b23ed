package jobenv

import (
	"strconv"
	"strings"
)

// fallbackExitCode is used when gitlab-runner did not say which code to use
// (or said something that is not a code): 1 is what GitLab reports for an
// unknown failure anyway.
const fallbackExitCode = 1

// ExitCodes are the exit codes gitlab-runner asked for.
type ExitCodes struct {
	// Build marks a failure of the job's script (BUILD_FAILURE_EXIT_CODE).
	Build int
	// System marks a failure of the executor or the infrastructure
	// (SYSTEM_FAILURE_EXIT_CODE).
	System int
}

// ReadExitCodes reads BUILD_FAILURE_EXIT_CODE and SYSTEM_FAILURE_EXIT_CODE;
// a missing or malformed value falls back to 1. It never fails, because it
// is what reports failures.
func ReadExitCodes(lookup Lookup) ExitCodes {
	return ExitCodes{
		Build:  exitCode(lookup, BuildFailureExitCode),
		System: exitCode(lookup, SystemFailureExitCode),
	}
}

func exitCode(lookup Lookup, name string) int {
	v, ok := lookup(name)
	if !ok {
		return fallbackExitCode
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > 255 {
		return fallbackExitCode
	}
	return n
}
