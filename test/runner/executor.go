package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Executor drives one custom executor configuration. It keeps no state
// between jobs: Run may be called concurrently.
type Executor struct {
	cfg Config
}

// New validates cfg and returns an Executor.
func New(cfg Config) (*Executor, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("runner harness: %w", err)
	}
	return &Executor{cfg: c}, nil
}

// jobRun is the state of one job.
type jobRun struct {
	e   *Executor
	job Job
	log *jobLog
	res *Result

	dir, responseFile, exitCodeFile string
	buildsDir, cacheDir             string
	sharedBuildsDir                 bool
	jobEnv                          map[string]string
}

// Run runs job through config, prepare (with retries), the run
// sub-stages and cleanup, and returns the outcome. The error is only for
// problems of the harness itself (an invalid job, no temp dir); a failing
// job is a Result with a failure Status. Cancelling ctx cancels the job:
// the running stage is terminated, later stages are skipped and cleanup
// runs with a fresh context.
func (e *Executor) Run(ctx context.Context, job Job) (*Result, error) {
	j, err := job.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("runner harness: %w", err)
	}
	dir, err := os.MkdirTemp(e.cfg.TempDir, "custom-executor")
	if err != nil {
		return nil, fmt.Errorf("runner harness: job temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	r := &jobRun{
		e: e, job: j, log: &jobLog{hook: e.cfg.Hooks.Log}, res: &Result{},
		dir: dir, exitCodeFile: filepath.Join(dir, "build_exit_code"),
		buildsDir: e.cfg.BuildsDir, cacheDir: e.cfg.CacheDir,
	}
	if r.responseFile, err = writeResponseFile(dir, e.cfg, j); err != nil {
		return nil, fmt.Errorf("runner harness: %w", err)
	}

	start := time.Now()
	jobCtx, cancel := context.WithTimeoutCause(ctx, j.Timeout, errJobTimeout)
	defer cancel()
	r.run(jobCtx)
	r.res.Duration = time.Since(start)
	r.res.Entries, r.res.RunnerLog = r.log.snapshot()
	return r.res, nil
}

var errJobTimeout = errors.New("job timeout")

func (r *jobRun) run(ctx context.Context) {
	cfg := r.e.cfg
	r.log.runnerLine("", "Running with gitlab-runner (test harness)")
	r.log.runnerLine("", "  on %s %s, system ID: harness", cfg.RunnerDescription, cfg.RunnerShortToken)
	r.log.runnerLine("", `Preparing the "custom" executor`)

	if !r.prepare(ctx) {
		r.finish()
		return
	}
	r.runStages(ctx)
	r.cleanup()
	r.finish()
}

// prepare runs config_exec and prepare_exec, retrying like gitlab-runner;
// it reports whether the executor is ready.
func (r *jobRun) prepare(ctx context.Context) bool {
	cfg := r.e.cfg
	for attempt := 1; attempt <= cfg.PrepareRetries; attempt++ {
		res, ok := r.prepareAttempt(ctx, attempt)
		if ok {
			return true
		}
		r.cleanup()
		if ctx.Err() != nil {
			r.fail(ctx, res)
			return false
		}
		if res.Outcome == StatusBuildFailure || attempt == cfg.PrepareRetries {
			r.fail(ctx, res)
			return false
		}
		r.log.runnerLine(res.Stage, "WARNING: Preparation failed: %s", describeExit(res))
		r.log.runnerLine(res.Stage, "Will be retried in %s ...", cfg.PrepareRetryInterval)
		select {
		case <-ctx.Done():
			r.fail(ctx, res)
			return false
		case <-time.After(cfg.PrepareRetryInterval):
		}
	}
	return false
}

// prepareAttempt is one try of gitlab-runner's executor Prepare: config
// (its JSON applied) and prepare_exec.
func (r *jobRun) prepareAttempt(ctx context.Context, attempt int) (StageResult, bool) {
	cfg := r.e.cfg
	if cfg.ConfigExec != "" {
		cctx, cancel := context.WithTimeout(ctx, cfg.ConfigExecTimeout)
		var stdout bytes.Buffer
		res := r.exec(cctx, StageConfig, attempt, cfg.ConfigExec, cfg.ConfigArgs, &stdout, &stageWriter{log: r.log, stage: StageConfig}, false)
		cancel()
		if res.Outcome != StatusSuccess {
			return res, false
		}
		if err := r.applyConfig(stdout.Bytes()); err != nil {
			res.Err, res.Outcome = err, StatusSystemFailure
			r.res.Stages[len(r.res.Stages)-1] = res
			return res, false
		}
	}
	if d := r.res.Config; d != nil && d.Driver != nil && d.Driver.Name != nil {
		version := ""
		if d.Driver.Version != nil {
			version = " " + *d.Driver.Version
		}
		r.log.runnerLine(StagePrepare, "Using Custom executor with driver %s%s...", *d.Driver.Name, version)
	} else {
		r.log.runnerLine(StagePrepare, "Using Custom executor...")
	}
	if cfg.PrepareExec == "" {
		return StageResult{Stage: StagePrepare, Attempt: attempt, Outcome: StatusSuccess}, true
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.PrepareExecTimeout)
	defer cancel()
	w := &stageWriter{log: r.log, stage: StagePrepare}
	res := r.exec(pctx, StagePrepare, attempt, cfg.PrepareExec, cfg.PrepareArgs, w, w, true)
	return res, res.Outcome == StatusSuccess
}

// applyConfig parses config_exec's stdout like gitlab-runner: empty output
// keeps the runner's settings, invalid JSON fails the job.
func (r *jobRun) applyConfig(out []byte) error {
	if len(bytes.TrimSpace(out)) == 0 {
		return nil
	}
	var c ConfigOutput
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(&c); err != nil {
		return fmt.Errorf("error while parsing JSON output: %w", err)
	}
	r.res.Config = &c
	if c.BuildsDir != nil {
		r.buildsDir = *c.BuildsDir
	}
	if c.CacheDir != nil {
		r.cacheDir = *c.CacheDir
	}
	if c.BuildsDirIsShared != nil {
		r.sharedBuildsDir = *c.BuildsDirIsShared
	}
	r.jobEnv = c.JobEnv
	if !filepath.IsAbs(r.buildsDir) && !isWindowsPath(r.buildsDir) {
		return fmt.Errorf("config builds_dir %q: must be an absolute path", r.buildsDir)
	}
	return nil
}

func isWindowsPath(p string) bool {
	return len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/')
}

// runStages runs the run_exec sub-stages in gitlab-runner's order.
func (r *jobRun) runStages(ctx context.Context) {
	j := r.job
	projectDir := j.projectDir(r.e.cfg, r.buildsDir, r.sharedBuildsDir)
	r.res.ProjectDir, r.res.BuildsDir = projectDir, r.buildsDir
	s := scripter{job: j, cfg: r.e.cfg, vars: j.variables(r.e.cfg, r.buildsDir, projectDir), projectDir: projectDir}

	// failed is the first result that decides the job's failure; last is
	// the stage that ran last (the one a cancellation hit).
	var failed, last *StageResult
	step := func(stage string) *StageResult {
		if ctx.Err() != nil {
			return nil
		}
		res := r.runScript(ctx, s, stage)
		last = &res
		return &res
	}
	decide := func(res *StageResult) {
		if res != nil && failed == nil && res.Outcome != StatusSuccess {
			failed = res
		}
	}

	pre := []string{StagePrepareScript, StageGetSources}
	if j.Cache {
		pre = append(pre, StageRestoreCache)
	}
	if j.Artifacts {
		pre = append(pre, StageDownloadArtifacts)
	}
	for _, stage := range pre {
		if failed != nil {
			break
		}
		decide(step(stage))
	}
	if failed == nil {
		decide(step(StageStepScript))
		if len(j.AfterScript) > 0 {
			if res := step(StageAfterScript); res != nil && res.Outcome != StatusSuccess {
				r.log.runnerLine(StageAfterScript, "WARNING: after_script failed, but job will continue unaffected: %s", describeExit(*res))
			}
		}
	}
	if j.Cache {
		if failed == nil {
			decide(step(StageArchiveCache))
		} else {
			step(StageArchiveCacheOnFailure)
		}
	}
	if j.Artifacts {
		if failed == nil {
			decide(step(StageUploadArtifactsOnSuccess))
		} else {
			step(StageUploadArtifactsOnFailure)
		}
	}
	step(StageCleanupFileVariables)

	if ctx.Err() != nil {
		hit := StageResult{}
		if last != nil {
			hit = *last
		}
		r.fail(ctx, hit)
		return
	}
	if failed != nil {
		r.fail(ctx, *failed)
	}
}

// runScript writes a sub-stage's script and runs run_exec on it.
func (r *jobRun) runScript(ctx context.Context, s scripter, stage string) StageResult {
	r.log.runnerLine(stage, "%s", SectionTitle(stage))
	scriptDir, err := os.MkdirTemp(r.dir, "script")
	if err != nil {
		return r.record(StageResult{Stage: stage, Attempt: 1, ExitCode: -1, Outcome: StatusUnknownFailure, Err: fmt.Errorf("script dir: %w", err)})
	}
	path := filepath.Join(scriptDir, "script.sh")
	if err := os.WriteFile(path, []byte(s.script(stage)), 0o700); err != nil {
		return r.record(StageResult{Stage: stage, Attempt: 1, ExitCode: -1, Outcome: StatusUnknownFailure, Err: fmt.Errorf("write script: %w", err)})
	}
	w := &stageWriter{log: r.log, stage: stage}
	args := append(append([]string{}, r.e.cfg.RunArgs...), path, stage)
	return r.exec(ctx, stage, 1, r.e.cfg.RunExec, args, w, w, true)
}

// cleanup runs cleanup_exec with a fresh, bounded context; its output
// goes to the runner log.
func (r *jobRun) cleanup() {
	cfg := r.e.cfg
	if cfg.CleanupExec == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.CleanupExecTimeout)
	defer cancel()
	res := r.exec(ctx, StageCleanup, 1, cfg.CleanupExec, cfg.CleanupArgs,
		&runnerLogWriter{log: r.log, prefix: "cleanup_std=out "}, &runnerLogWriter{log: r.log, prefix: "cleanup_std=err "}, true)
	if res.Outcome != StatusSuccess {
		r.log.logf("WARNING: Cleanup script failed: %s", describeExit(res))
	}
}

// exec runs one stage process with the protocol environment and records
// its result.
func (r *jobRun) exec(ctx context.Context, stage string, attempt int, path string, args []string, stdout, stderr io.Writer, afterConfig bool) StageResult {
	env := r.env(afterConfig)
	r.log.logf("executing %s (attempt %d): %s", stage, attempt, strings.Join(append([]string{path}, args...), " "))
	res := r.e.runCommand(ctx, command{
		stage: stage, attempt: attempt, path: path, args: args, env: env, dir: r.dir,
		stdout: stdout, stderr: stderr, exitCodeFile: r.exitCodeFile,
	})
	r.log.logf("%s (attempt %d) ended after %s: %s", stage, attempt, res.Duration.Round(time.Millisecond), describeExit(res))
	return r.record(res)
}

func (r *jobRun) record(res StageResult) StageResult {
	r.res.Stages = append(r.res.Stages, res)
	return res
}

// env is a stage's environment: the runner's own, the protocol variables,
// job_env (from prepare on) and every job variable as CUSTOM_ENV_<NAME>.
// In config, CI_BUILDS_DIR and CI_PROJECT_DIR are empty.
func (r *jobRun) env(afterConfig bool) []string {
	cfg := r.e.cfg
	env := append([]string{}, cfg.Env...)
	env = append(env,
		"TMPDIR="+r.dir,
		"BUILD_FAILURE_EXIT_CODE="+strconv.Itoa(cfg.BuildFailureExitCode),
		"SYSTEM_FAILURE_EXIT_CODE="+strconv.Itoa(cfg.SystemFailureExitCode),
		"BUILD_EXIT_CODE_FILE="+r.exitCodeFile,
		"JOB_RESPONSE_FILE="+r.responseFile,
	)
	buildsDir, projectDir := "", ""
	if afterConfig {
		keys := make([]string, 0, len(r.jobEnv))
		for k := range r.jobEnv {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			env = append(env, k+"="+r.jobEnv[k])
		}
		buildsDir = r.buildsDir
		projectDir = r.job.projectDir(cfg, r.buildsDir, r.sharedBuildsDir)
	}
	for _, v := range r.job.variables(cfg, buildsDir, projectDir) {
		env = append(env, "CUSTOM_ENV_"+v.Key+"="+v.Value)
	}
	// The custom executor adds CI_JOB_SERVICES (JSON; empty without
	// services).
	return append(env, "CUSTOM_ENV_CI_JOB_SERVICES=")
}

// fail records the job's failure from res (or from ctx, when the job was
// cancelled or timed out).
func (r *jobRun) fail(ctx context.Context, res StageResult) {
	if r.res.Status != "" {
		return
	}
	switch {
	case errors.Is(context.Cause(ctx), errJobTimeout):
		r.res.Status = StatusTimedOut
		r.res.Reason = fmt.Sprintf("execution took longer than %s seconds", strconv.FormatInt(int64(r.job.Timeout/time.Second), 10))
	case ctx.Err() != nil:
		r.res.Status = StatusCanceled
		r.res.Reason = "canceled"
	default:
		r.res.Status = res.Outcome
		switch res.Outcome {
		case StatusBuildFailure:
			r.res.ExitCode = res.BuildExitCode
			r.res.Reason = fmt.Sprintf("exit code %d", res.BuildExitCode)
		case StatusSystemFailure:
			r.res.Reason = fmt.Sprintf("%s: %s", res.Stage, describeExit(res))
		default:
			r.res.Status = StatusUnknownFailure
			r.res.Reason = fmt.Sprintf("%s: unknown Custom executor executable exit code %d; %s", res.Stage, res.ExitCode, describeExit(res))
		}
	}
	r.res.FailedStage = res.Stage
}

// finish writes gitlab-runner's last line.
func (r *jobRun) finish() {
	if r.res.Status == "" {
		r.res.Status = StatusSuccess
	}
	switch r.res.Status {
	case StatusSuccess:
		r.log.runnerLine("", "Job succeeded")
	case StatusBuildFailure, StatusCanceled, StatusTimedOut:
		r.log.runnerLine("", "ERROR: Job failed: %s", r.res.Reason)
	default:
		r.log.runnerLine("", "ERROR: Job failed (system failure): %s", r.res.Reason)
	}
}

// describeExit says how a stage process ended.
func describeExit(res StageResult) string {
	var s string
	switch {
	case res.Err != nil:
		s = res.Err.Error()
	case res.Signal != "":
		s = "killed by signal: " + res.Signal
	default:
		s = fmt.Sprintf("exit status %d", res.ExitCode)
	}
	if res.Killed {
		s += " (after SIGKILL)"
	} else if res.Terminated {
		s += " (after SIGTERM)"
	}
	return s
}
