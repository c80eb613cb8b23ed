package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// driver is a custom executor written in bash: it records every call and
// its environment, and runs scripts locally. Its behaviour is steered by
// files in $DRIVER_STATE.
const driver = `#!/usr/bin/env bash
set -u
state="$DRIVER_STATE"
stage="$1"; shift
n=$(( $(cat "$state/n" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$state/n"
echo "$stage" >> "$state/calls"
env | sort > "$state/env.$n.$stage"
case "$stage" in
config)
  [ -f "$state/config-fail" ] && { echo "config exploded" >&2; exit "$SYSTEM_FAILURE_EXIT_CODE"; }
  cat "$state/config.json"
  ;;
prepare)
  p=$(( $(cat "$state/prepares" 2>/dev/null || echo 0) + 1 )); echo "$p" > "$state/prepares"
  if [ "$p" -le "$(cat "$state/prepare-fails" 2>/dev/null || echo 0)" ]; then
    echo "prepare try $p failed" >&2
    exit "$(cat "$state/prepare-code" 2>/dev/null || echo "$SYSTEM_FAILURE_EXIT_CODE")"
  fi
  echo "prepare try $p ok"
  ;;
run)
  script="$1" sub="$2"
  [ -f "$state/run-exit-$sub" ] && exit "$(cat "$state/run-exit-$sub")"
  ignore=; [ -f "$state/ignore-term" ] && [ "$sub" = step_script ] && ignore=1
  if [ -n "$ignore" ]; then trap '' TERM; fi
  bash "$script"; rc=$?
  if [ -n "$ignore" ]; then while :; do sleep 0.05; done; fi
  if [ "$rc" -ne 0 ]; then echo "$rc" > "$BUILD_EXIT_CODE_FILE"; exit "$BUILD_FAILURE_EXIT_CODE"; fi
  ;;
cleanup)
  echo "cleaned up"; echo "cleanup stderr" >&2
  ;;
esac
`

// fixture is a driver installed in a temp dir with its state dir.
type fixture struct {
	state, builds string
	cfg           runner.Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{state: filepath.Join(dir, "state"), builds: filepath.Join(dir, "builds")}
	if err := os.Mkdir(f.state, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "driver")
	if err := os.WriteFile(exe, []byte(driver), 0o755); err != nil {
		t.Fatal(err)
	}
	f.writeState(t, "config.json", fmt.Sprintf(`{"builds_dir":%q,"cache_dir":"/cache","builds_dir_is_shared":false,"hostname":"vm-1",`+
		`"driver":{"name":"fake-driver","version":"1.2.3"},"job_env":{"FROM_CONFIG":"yes"}}`, f.builds))
	f.cfg = runner.Config{
		ConfigExec: exe, ConfigArgs: []string{"config"},
		PrepareExec: exe, PrepareArgs: []string{"prepare"},
		RunExec: exe, RunArgs: []string{"run"},
		CleanupExec: exe, CleanupArgs: []string{"cleanup"},
		Env:                  []string{"PATH=" + os.Getenv("PATH"), "DRIVER_STATE=" + f.state},
		TempDir:              dir,
		PrepareRetryInterval: 10 * time.Millisecond,
		GracefulKillTimeout:  2 * time.Second,
		ForceKillTimeout:     5 * time.Second,
	}
	return f
}

func (f *fixture) writeState(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.state, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// calls returns the driver's calls in order.
func (f *fixture) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.state, "calls"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// env returns the environment of the driver's n-th call.
func (f *fixture) env(t *testing.T, n int, stage string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.state, fmt.Sprintf("env.%d.%s", n, stage)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

func run(t *testing.T, f *fixture, job runner.Job) *runner.Result {
	t.Helper()
	e, err := runner.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Run(t.Context(), job)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// inOrder checks that the wanted strings appear in s in this order.
func inOrder(t *testing.T, s string, want ...string) {
	t.Helper()
	pos := 0
	for _, w := range want {
		i := strings.Index(s[pos:], w)
		if i < 0 {
			t.Fatalf("%q not found (in order) in the job log:\n%s", w, s)
		}
		pos += i + len(w)
	}
}

func TestSuccessfulJob(t *testing.T) {
	f := newFixture(t)
	res := run(t, f, runner.Job{
		ID: 42, Name: "build", Cache: true, Artifacts: true,
		BeforeScript: []string{"echo before"},
		Script:       []string{"echo one", "echo two >&2", "cat hello.txt"},
		AfterScript:  []string{"echo after"},
		Files:        map[string]string{"hello.txt": "hello from the checkout\n"},
		Variables:    []runner.Variable{{Key: "VM_CPU_REQUEST", Value: "2"}},
	})
	if res.Status != runner.StatusSuccess || res.ExitCode != 0 {
		t.Fatalf("status %s (exit %d, %s), want success; log:\n%s", res.Status, res.ExitCode, res.Reason, res.JobLog())
	}
	want := []string{"config", "prepare", "prepare_script", "get_sources", "restore_cache", "download_artifacts",
		"step_script", "after_script", "archive_cache", "upload_artifacts_on_success", "cleanup_file_variables", "cleanup"}
	if got := res.StageNames(); !slices.Equal(got, want) {
		t.Errorf("stages %v, want %v", got, want)
	}
	if driverCalls := f.calls(t); !slices.Equal(driverCalls, []string{"config", "prepare", "run", "run", "run", "run", "run", "run", "run", "run", "run", "cleanup"}) {
		t.Errorf("driver calls %v", driverCalls)
	}
	log := res.JobLog()
	inOrder(t, log, "Using Custom executor with driver fake-driver 1.2.3...", "prepare try 1 ok",
		"Preparing environment", "Running on ", "Getting source from Git repository", "Fetching changes...",
		`Executing "step_script" stage of the job script`, "$ echo before\nbefore\n", "$ echo one\none\n", "$ echo two >&2\ntwo\n",
		"$ cat hello.txt\nhello from the checkout\n", "Running after_script", "$ echo after\nafter\n",
		"Saving cache for successful job", "Uploading artifacts for successful job",
		"Cleaning up project directory and file based variables", "Job succeeded")
	if strings.Contains(log, "cleaned up") || strings.Contains(log, "cleanup stderr") {
		t.Error("cleanup_exec's output is in the job log; gitlab-runner sends it to the runner log")
	}
	if !strings.Contains(res.RunnerLog, "cleanup_std=out cleaned up") || !strings.Contains(res.RunnerLog, "cleanup_std=err cleanup stderr") {
		t.Errorf("runner log lacks cleanup's output:\n%s", res.RunnerLog)
	}
	if got := res.Output("step_script"); got != "$ echo before\nbefore\n$ echo one\none\n$ echo two >&2\ntwo\n$ cat hello.txt\nhello from the checkout\n" {
		t.Errorf("step_script output %q", got)
	}
	for _, s := range res.Stages {
		if s.Outcome != runner.StatusSuccess || s.ExitCode != 0 || s.PID == 0 || s.Duration <= 0 {
			t.Errorf("stage %s: outcome %s exit %d pid %d duration %s", s.Stage, s.Outcome, s.ExitCode, s.PID, s.Duration)
		}
	}
	if res.ProjectDir != filepath.Join(f.builds, "group/project") {
		t.Errorf("project dir %q", res.ProjectDir)
	}
	if _, err := os.Stat(res.ProjectDir + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("cleanup_file_variables left %s.tmp (%v)", res.ProjectDir, err)
	}
}

// TestProtocolEnvironment checks each stage's environment against the
// protocol: exit codes, the exit-code file, the job response, TMPDIR, job
// variables with CUSTOM_ENV_, and job_env from prepare on.
func TestProtocolEnvironment(t *testing.T) {
	f := newFixture(t)
	res := run(t, f, runner.Job{
		ID: 7, Name: "env", Image: "registry.example.com/ci/debian:12", Script: []string{"true"},
		Variables: []runner.Variable{{Key: "VM_CPU_REQUEST", Value: "2"}, {Key: "CI_JOB_NAME", Value: "overridden"}},
	})
	if res.Status != runner.StatusSuccess {
		t.Fatalf("status %s: %s\n%s", res.Status, res.Reason, res.JobLog())
	}
	calls := f.calls(t)
	projectDir := filepath.Join(f.builds, "group/project")
	tmpdir := ""
	for i, stage := range calls {
		env := f.env(t, i+1, stage)
		t.Run(fmt.Sprintf("%d-%s", i+1, stage), func(t *testing.T) {
			want := map[string]string{
				"BUILD_FAILURE_EXIT_CODE":             "1",
				"SYSTEM_FAILURE_EXIT_CODE":            "2",
				"CUSTOM_ENV_CI_JOB_ID":                "7",
				"CUSTOM_ENV_CI_RUNNER_ID":             "1",
				"CUSTOM_ENV_CI_CONCURRENT_ID":         "0",
				"CUSTOM_ENV_CI_PROJECT_ID":            "1",
				"CUSTOM_ENV_CI_JOB_IMAGE":             "registry.example.com/ci/debian:12",
				"CUSTOM_ENV_CI_JOB_TIMEOUT":           "3600",
				"CUSTOM_ENV_CI_JOB_NAME":              "overridden",
				"CUSTOM_ENV_CI_COMMIT_REF_NAME":       "main",
				"CUSTOM_ENV_CI_JOB_URL":               "https://gitlab.example.com/group/project/-/jobs/7",
				"CUSTOM_ENV_VM_CPU_REQUEST":           "2",
				"CUSTOM_ENV_CI_JOB_SERVICES":          "",
				"CUSTOM_ENV_CI_PROJECT_DIR":           projectDir,
				"CUSTOM_ENV_CI_BUILDS_DIR":            f.builds,
				"FROM_CONFIG":                         "yes",
				"DRIVER_STATE":                        f.state,
				"CUSTOM_ENV_CI_REGISTRY_USER":         "gitlab-ci-token",
				"CUSTOM_ENV_CI_COMMIT_SHA":            "1f9fb8e7ca8e2b5fe3cbf7b9d1c3a4c5d6e7f809",
				"CUSTOM_ENV_CI_SERVER_URL":            "https://gitlab.example.com",
				"CUSTOM_ENV_CI_PROJECT_PATH":          "group/project",
				"CUSTOM_ENV_CI_CONCURRENT_PROJECT_ID": "0",
			}
			if stage == "config" {
				// Not yet known when config runs.
				want["CUSTOM_ENV_CI_PROJECT_DIR"], want["CUSTOM_ENV_CI_BUILDS_DIR"] = "", ""
				delete(want, "FROM_CONFIG")
				if _, ok := env["FROM_CONFIG"]; ok {
					t.Error("config sees job_env, which config itself produces")
				}
			}
			for k, v := range want {
				if got, ok := env[k]; !ok || got != v {
					t.Errorf("%s = %q (set %t), want %q", k, got, ok, v)
				}
			}
			if tmpdir == "" {
				tmpdir = env["TMPDIR"]
			}
			if env["TMPDIR"] == "" || env["TMPDIR"] != tmpdir {
				t.Errorf("TMPDIR %q, want the job's one dir %q for every stage", env["TMPDIR"], tmpdir)
			}
			if filepath.Dir(env["BUILD_EXIT_CODE_FILE"]) != tmpdir || filepath.Dir(env["JOB_RESPONSE_FILE"]) != tmpdir {
				t.Errorf("BUILD_EXIT_CODE_FILE %q and JOB_RESPONSE_FILE %q not in TMPDIR %q", env["BUILD_EXIT_CODE_FILE"], env["JOB_RESPONSE_FILE"], tmpdir)
			}
			if _, ok := env["HOME"]; ok {
				t.Error("HOME leaked from the test process although Config.Env does not list it")
			}
		})
	}
	if _, err := os.Stat(tmpdir); !os.IsNotExist(err) {
		t.Errorf("the job's TMPDIR %s survived the job (%v)", tmpdir, err)
	}
}

func TestJobResponseFile(t *testing.T) {
	f := newFixture(t)
	f.cfg.PrepareExec = filepath.Join(t.TempDir(), "copy-response")
	if err := os.WriteFile(f.cfg.PrepareExec, []byte("#!/bin/sh\ncp \"$JOB_RESPONSE_FILE\" \"$DRIVER_STATE/response.json\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.cfg.PrepareArgs = nil
	res := run(t, f, runner.Job{ID: 9, Script: []string{"echo a", "echo b"}, AfterScript: []string{"echo c"}, Token: "glcbt-secret"})
	if res.Status != runner.StatusSuccess {
		t.Fatalf("status %s: %s", res.Status, res.Reason)
	}
	b, err := os.ReadFile(filepath.Join(f.state, "response.json"))
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		ID    int64  `json:"id"`
		Token string `json:"token"`
		Steps []struct {
			Name   string   `json:"name"`
			Script []string `json:"script"`
		} `json:"steps"`
		Variables []struct {
			Key    string `json:"key"`
			Value  string `json:"value"`
			Masked bool   `json:"masked"`
		} `json:"variables"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("JOB_RESPONSE_FILE is not JSON: %v", err)
	}
	if resp.ID != 9 || resp.Token != "glcbt-secret" || len(resp.Steps) != 2 || !slices.Equal(resp.Steps[0].Script, []string{"echo a", "echo b"}) || resp.Steps[1].Name != "after_script" {
		t.Errorf("job response %+v", resp)
	}
	masked := false
	for _, v := range resp.Variables {
		masked = masked || (v.Key == "CI_JOB_TOKEN" && v.Masked && v.Value == "glcbt-secret")
	}
	if !masked {
		t.Error("CI_JOB_TOKEN is not a masked variable of the job response")
	}
}

func TestBuildFailure(t *testing.T) {
	f := newFixture(t)
	res := run(t, f, runner.Job{ID: 1, Script: []string{"echo before-fail", "exit 3", "echo never"}, AfterScript: []string{"echo after"}, Artifacts: true, Cache: true})
	if res.Status != runner.StatusBuildFailure || res.ExitCode != 3 || res.FailedStage != "step_script" {
		t.Fatalf("status %s exit %d stage %s, want build_failure 3 step_script\n%s", res.Status, res.ExitCode, res.FailedStage, res.JobLog())
	}
	step, _ := res.Stage("step_script")
	if step.ExitCode != 1 || step.BuildExitCode != 3 || step.Outcome != runner.StatusBuildFailure {
		t.Errorf("step_script result %+v", step)
	}
	want := []string{"config", "prepare", "prepare_script", "get_sources", "restore_cache", "download_artifacts",
		"step_script", "after_script", "archive_cache_on_failure", "upload_artifacts_on_failure", "cleanup_file_variables", "cleanup"}
	if got := res.StageNames(); !slices.Equal(got, want) {
		t.Errorf("stages %v, want %v", got, want)
	}
	log := res.JobLog()
	inOrder(t, log, "$ exit 3", "Running after_script", "after", "ERROR: Job failed: exit code 3")
	if strings.Contains(log, "never") {
		t.Error("the script went on after exit 3")
	}
}

func TestFailureClassification(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, f *fixture)
		status runner.Status
		stage  string
		reason string
	}{
		{
			name:   "run exits SYSTEM_FAILURE_EXIT_CODE",
			setup:  func(t *testing.T, f *fixture) { f.writeState(t, "run-exit-get_sources", "2") },
			status: runner.StatusSystemFailure,
			stage:  "get_sources",
			reason: "get_sources: exit status 2",
		},
		{
			name:   "run exits with neither code",
			setup:  func(t *testing.T, f *fixture) { f.writeState(t, "run-exit-step_script", "7") },
			status: runner.StatusUnknownFailure,
			stage:  "step_script",
			reason: "unknown Custom executor executable exit code 7",
		},
		{
			name: "BUILD_EXIT_CODE_FILE with junk",
			setup: func(t *testing.T, f *fixture) {
				f.cfg.RunExec = filepath.Join(t.TempDir(), "junk")
				os.WriteFile(f.cfg.RunExec, []byte("#!/bin/sh\n[ \"$3\" = step_script ] || exit 0\necho 'three' > \"$BUILD_EXIT_CODE_FILE\"\nexit \"$BUILD_FAILURE_EXIT_CODE\"\n"), 0o755)
			},
			status: runner.StatusUnknownFailure,
			stage:  "step_script",
		},
		{
			name:   "config prints invalid JSON",
			setup:  func(t *testing.T, f *fixture) { f.writeState(t, "config.json", "{not json") },
			status: runner.StatusSystemFailure,
			stage:  "config",
			reason: "error while parsing JSON output",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.setup(t, f)
			res := run(t, f, runner.Job{ID: 5, Script: []string{"echo hi"}})
			if res.Status != tt.status || res.FailedStage != tt.stage || !strings.Contains(res.Reason, tt.reason) {
				t.Fatalf("status %s stage %s reason %q; want %s %s %q\n%s", res.Status, res.FailedStage, res.Reason, tt.status, tt.stage, tt.reason, res.JobLog())
			}
			if got := res.StageNames(); got[len(got)-1] != "cleanup" {
				t.Errorf("cleanup did not run last: %v", got)
			}
			if slices.Contains(res.StageNames(), "step_script") && tt.stage == "get_sources" {
				t.Errorf("step_script ran after get_sources failed: %v", res.StageNames())
			}
			if !strings.Contains(res.JobLog(), "ERROR: Job failed") {
				t.Errorf("no failure line in the job log:\n%s", res.JobLog())
			}
		})
	}
}

func TestPrepareRetries(t *testing.T) {
	tests := []struct {
		name   string
		fails  int
		code   string // prepare's failing exit code ("" = system failure)
		status runner.Status
		calls  []string
	}{
		{name: "first try works", fails: 0, status: runner.StatusSuccess,
			calls: []string{"config", "prepare", "run", "run", "run", "run", "cleanup"}},
		{name: "second try works after a cleanup", fails: 1, status: runner.StatusSuccess,
			calls: []string{"config", "prepare", "cleanup", "config", "prepare", "run", "run", "run", "run", "cleanup"}},
		{name: "three failures fail the job", fails: 3, status: runner.StatusSystemFailure,
			calls: []string{"config", "prepare", "cleanup", "config", "prepare", "cleanup", "config", "prepare", "cleanup"}},
		{name: "a build failure is not retried", fails: 1, code: "1", status: runner.StatusBuildFailure,
			calls: []string{"config", "prepare", "cleanup"}},
		{name: "an unknown failure is retried", fails: 1, code: "9", status: runner.StatusSuccess,
			calls: []string{"config", "prepare", "cleanup", "config", "prepare", "run", "run", "run", "run", "cleanup"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.writeState(t, "prepare-fails", strconv.Itoa(tt.fails))
			if tt.code != "" {
				f.writeState(t, "prepare-code", tt.code)
			}
			res := run(t, f, runner.Job{ID: 3, Script: []string{"echo hi"}})
			if res.Status != tt.status {
				t.Errorf("status %s (%s), want %s\n%s", res.Status, res.Reason, tt.status, res.JobLog())
			}
			if got := f.calls(t); !slices.Equal(got, tt.calls) {
				t.Errorf("driver calls %v, want %v", got, tt.calls)
			}
			if tt.fails > 0 && tt.status == runner.StatusSuccess {
				inOrder(t, res.JobLog(), "prepare try 1 failed", "WARNING: Preparation failed: exit status", "Will be retried in", "prepare try 2 ok", "Job succeeded")
			}
		})
	}
}

// TestCancel cancels a job during step_script: the stage's process group
// gets SIGTERM (and SIGKILL when it ignores it), later stages are skipped,
// cleanup still runs.
func TestCancel(t *testing.T) {
	tests := []struct {
		name       string
		ignoreTerm bool
		killed     bool
	}{
		{name: "the stage exits on SIGTERM"},
		{name: "the stage ignores SIGTERM and gets SIGKILL", ignoreTerm: true, killed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.ignoreTerm {
				f.writeState(t, "ignore-term", "")
			}
			marker := fmt.Sprintf("sleep %d.%d", 1000+time.Now().UnixNano()%1000, os.Getpid())
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var once sync.Once
			f.cfg.Hooks.Log = func(e runner.Entry) {
				if e.Stage == "step_script" && strings.Contains(string(e.Data), "started") {
					once.Do(cancel)
				}
			}
			e, err := runner.New(f.cfg)
			if err != nil {
				t.Fatal(err)
			}
			res, err := e.Run(ctx, runner.Job{ID: 11, Script: []string{"echo started", marker}, AfterScript: []string{"echo after"}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != runner.StatusCanceled || res.FailedStage != "step_script" {
				t.Fatalf("status %s stage %s, want canceled in step_script\n%s", res.Status, res.FailedStage, res.JobLog())
			}
			step, _ := res.Stage("step_script")
			if !step.Terminated || step.Killed != tt.killed {
				t.Errorf("terminated %t killed %t, want true %t", step.Terminated, step.Killed, tt.killed)
			}
			if got := res.StageNames(); !slices.Equal(got, []string{"config", "prepare", "prepare_script", "get_sources", "step_script", "cleanup"}) {
				t.Errorf("stages %v", got)
			}
			if !strings.Contains(res.JobLog(), "ERROR: Job failed: canceled") {
				t.Errorf("job log lacks the cancel line:\n%s", res.JobLog())
			}
			if pids := pidsWith(marker); len(pids) > 0 {
				t.Errorf("processes %v running %q outlived the cancelled stage", pids, marker)
			}
		})
	}
}

func TestJobTimeout(t *testing.T) {
	f := newFixture(t)
	res := run(t, f, runner.Job{ID: 12, Timeout: 2 * time.Second, Script: []string{"sleep 1001.5"}})
	if res.Status != runner.StatusTimedOut || !strings.Contains(res.Reason, "execution took longer than 2 seconds") {
		t.Fatalf("status %s reason %q, want timed_out", res.Status, res.Reason)
	}
	if got := res.StageNames(); got[len(got)-1] != "cleanup" {
		t.Errorf("cleanup did not run after the timeout: %v", got)
	}
}

// pidsWith returns pids whose command line contains needle.
func pidsWith(needle string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), needle) {
			pids = append(pids, pid)
		}
	}
	return pids
}
