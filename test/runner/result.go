package runner

import (
	"strings"
	"time"
)

// Status is a job's (or a stage's) outcome as GitLab classifies it.
type Status string

// Outcomes.
const (
	StatusSuccess        Status = "success"
	StatusBuildFailure   Status = "build_failure"   // BUILD_FAILURE_EXIT_CODE
	StatusSystemFailure  Status = "system_failure"  // SYSTEM_FAILURE_EXIT_CODE
	StatusUnknownFailure Status = "unknown_failure" // any other exit, or no exit
	StatusCanceled       Status = "canceled"        // the job was cancelled
	StatusTimedOut       Status = "timed_out"       // CI_JOB_TIMEOUT passed
)

// StageResult is what one stage process did.
type StageResult struct {
	// Stage is "config", "prepare", "cleanup" or a run sub-stage.
	Stage string
	// Attempt counts prepare tries (and the config run inside each) from
	// 1; other stages have 1.
	Attempt int
	// Args is the full command line; PID the process id.
	Args []string
	PID  int
	// Start and Duration time the process.
	Start    time.Time
	Duration time.Duration
	// ExitCode is the process's exit code; -1 when it was killed by a
	// signal or did not start.
	ExitCode int
	// Signal names the signal that ended the process ("" if it exited).
	Signal string
	// Outcome classifies ExitCode the way gitlab-runner does.
	Outcome Status
	// BuildExitCode is the script's exit code read from
	// BUILD_EXIT_CODE_FILE after a build failure (BUILD_FAILURE_EXIT_CODE
	// itself when the file is missing).
	BuildExitCode int
	// Terminated and Killed say whether the harness sent SIGTERM and
	// SIGKILL to the stage's process group.
	Terminated, Killed bool
	// Err is set when the process could not start, did not exit after
	// SIGKILL, or its output could not be used (config's JSON).
	Err error
}

// ConfigOutput is the JSON config_exec prints.
type ConfigOutput struct {
	BuildsDir         *string           `json:"builds_dir"`
	CacheDir          *string           `json:"cache_dir"`
	BuildsDirIsShared *bool             `json:"builds_dir_is_shared"`
	Hostname          *string           `json:"hostname"`
	Driver            *DriverInfo       `json:"driver"`
	JobEnv            map[string]string `json:"job_env"`
	Shell             *string           `json:"shell"`
}

// DriverInfo is config's driver section.
type DriverInfo struct {
	Name    *string `json:"name"`
	Version *string `json:"version"`
}

// Result is the outcome of one job.
type Result struct {
	// Status is the job's outcome.
	Status Status
	// ExitCode is the job's exit code as GitLab reports it: the script's
	// code for a build failure, 0 on success.
	ExitCode int
	// FailedStage is the stage that decided a failure.
	FailedStage string
	// Reason is the failure as gitlab-runner words it in the job log.
	Reason string
	// Config is config_exec's output (the last attempt's), if any.
	Config *ConfigOutput
	// ProjectDir and BuildsDir are CI_PROJECT_DIR and CI_BUILDS_DIR.
	ProjectDir, BuildsDir string
	// Stages lists every stage process in the order they ran.
	Stages []StageResult
	// Entries is the job log, in arrival order.
	Entries []Entry
	// RunnerLog is gitlab-runner's own log of the job: the commands it
	// ran, their exit codes, and cleanup_exec's output.
	RunnerLog string
	// Duration is the whole job's wall time.
	Duration time.Duration
}

// JobLog returns the job log as GitLab shows it: every entry's bytes in
// order.
func (r *Result) JobLog() string {
	var b strings.Builder
	for _, e := range r.Entries {
		b.Write(e.Data)
	}
	return b.String()
}

// Output returns what the executor wrote during stage (all attempts),
// without gitlab-runner's own lines.
func (r *Result) Output(stage string) string {
	var b strings.Builder
	for _, e := range r.Entries {
		if e.Stage == stage && !e.Runner {
			b.Write(e.Data)
		}
	}
	return b.String()
}

// Stage returns the last run of stage.
func (r *Result) Stage(stage string) (StageResult, bool) {
	for i := len(r.Stages) - 1; i >= 0; i-- {
		if r.Stages[i].Stage == stage {
			return r.Stages[i], true
		}
	}
	return StageResult{}, false
}

// StageNames returns the stages that ran, in order (a stage tried twice
// appears twice).
func (r *Result) StageNames() []string {
	names := make([]string, 0, len(r.Stages))
	for _, s := range r.Stages {
		names = append(names, s.Stage)
	}
	return names
}
