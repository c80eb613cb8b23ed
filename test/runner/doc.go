// Package runner drives a GitLab Runner custom executor exactly as
// gitlab-runner does, for tests and demos that have no GitLab.
//
// [Executor.Run] runs one [Job] through the custom executor protocol
// (see DESIGN.md, "The GitLab custom executor protocol"):
//
//  1. config_exec: its stdout is parsed as the JSON configuration
//     (builds_dir, cache_dir, builds_dir_is_shared, hostname, driver,
//     job_env, shell); invalid JSON fails the job. Its stderr goes to the
//     job log.
//  2. prepare_exec, up to three times (like gitlab-runner's preparation
//     retries): after a failed try, cleanup_exec runs, then the next try
//     waits a retry interval. A build failure is not retried.
//  3. run_exec <script> <stage> for each sub-stage in gitlab-runner's
//     order: prepare_script, get_sources, restore_cache,
//     download_artifacts, step_script, after_script, archive_cache or
//     archive_cache_on_failure, upload_artifacts_on_success or
//     upload_artifacts_on_failure, cleanup_file_variables. Stages the job
//     does not use are skipped. Each script is a complete bash script of
//     the shape gitlab-runner generates (shebang, set -eo pipefail, every
//     variable exported, cd into CI_PROJECT_DIR, "$ command" echo lines).
//  4. cleanup_exec, always, with a fresh context; its result never changes
//     the job's status, and its output goes to the runner log, not the
//     job log (as in gitlab-runner).
//
// Every stage runs in its own process group in a per-job temporary
// directory with the protocol environment: TMPDIR, BUILD_FAILURE_EXIT_CODE,
// SYSTEM_FAILURE_EXIT_CODE, BUILD_EXIT_CODE_FILE, JOB_RESPONSE_FILE (the
// job payload as JSON), CUSTOM_ENV_<NAME> for every job variable
// (predefined CI_* variables and the job's own, such as VM_CPU_REQUEST),
// and from prepare on the job_env map config printed. Unlike gitlab-runner
// the harness passes only [Config.Env] of its own environment, so tests
// are hermetic.
//
// The job log is the stdout and stderr of every stage merged in arrival
// order (one pipe per stage, as gitlab-runner shares one writer), with
// gitlab-runner's own lines (section headers, "Job succeeded", "ERROR: Job
// failed: exit code 3") in between. The harness does not mask variables:
// tests see exactly what the executor wrote.
//
// The outcome ([Result]) is the job's status (success, build failure with
// the exit code read from BUILD_EXIT_CODE_FILE, system failure, unknown
// failure, canceled, timed out), each stage's exit code and duration, and
// both logs. Cancelling Run's context cancels the job like a user pressing
// "Cancel": the running stage's process group gets SIGTERM, then SIGKILL
// after [Config.GracefulKillTimeout]; then cleanup runs.
package runner
