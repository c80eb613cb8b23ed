// Package jobenv is the one place where the executor reads its environment:
// the GitLab custom-executor protocol variables (exit codes, the exit-code
// file) and the job's variables, which gitlab-runner passes with a
// CUSTOM_ENV_ prefix.
//
// Users write VM_CPU_REQUEST: "2" in .gitlab-ci.yml; the runner passes it as
// CUSTOM_ENV_VM_CPU_REQUEST. Every error names the variable the way users
// write it (VM_CPU_REQUEST), with the value and the rule (see
// [inputerr.Error]).
//
// Job variables are untrusted input: this package only checks their syntax;
// package policy checks them against the administrator's bounds.
package jobenv

import "os"

// Lookup returns the value of an environment variable and whether it is
// set, like [os.LookupEnv]. Tests pass a map-backed Lookup.
type Lookup func(key string) (string, bool)

// OS is the Lookup of the process environment.
func OS() Lookup { return os.LookupEnv }

// FromMap returns a Lookup over m.
func FromMap(m map[string]string) Lookup {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// CustomPrefix is the prefix gitlab-runner adds to every job variable.
const CustomPrefix = "CUSTOM_ENV_"

// Protocol variables set by gitlab-runner for every stage.
const (
	// BuildFailureExitCode names the variable with the exit code that
	// marks a build (script) failure.
	BuildFailureExitCode = "BUILD_FAILURE_EXIT_CODE"
	// SystemFailureExitCode names the variable with the exit code that
	// marks a system (infrastructure) failure.
	SystemFailureExitCode = "SYSTEM_FAILURE_EXIT_CODE"
	// BuildExitCodeFile names the variable with the path where run writes
	// the script's exit code before exiting with the build failure code.
	BuildExitCodeFile = "BUILD_EXIT_CODE_FILE"
)

// Job variables (without the CUSTOM_ENV_ prefix: the names users know).
const (
	VarRunnerID     = "CI_RUNNER_ID"
	VarJobID        = "CI_JOB_ID"
	VarConcurrentID = "CI_CONCURRENT_ID"
	VarProjectID    = "CI_PROJECT_ID"
	VarJobName      = "CI_JOB_NAME"
	VarJobURL       = "CI_JOB_URL"
	VarCommitRef    = "CI_COMMIT_REF_NAME"
	VarCommitSHA    = "CI_COMMIT_SHA"
	VarJobTimeout   = "CI_JOB_TIMEOUT"
	VarJobImage     = "CI_JOB_IMAGE"

	VarMachineType    = "VM_MACHINE_TYPE"
	VarArchitecture   = "VM_ARCHITECTURE"
	VarTTL            = "VM_TTL"
	VarCPURequest     = "VM_CPU_REQUEST"
	VarCPULimit       = "VM_CPU_LIMIT"
	VarMemoryRequest  = "VM_MEMORY_REQUEST"
	VarMemoryLimit    = "VM_MEMORY_LIMIT"
	VarStorageRequest = "VM_STORAGE_REQUEST"
	VarStorageLimit   = "VM_STORAGE_LIMIT"
)

// job returns the job variable name (without prefix) from lookup.
func job(lookup Lookup, name string) (string, bool) {
	return lookup(CustomPrefix + name)
}
