package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// command is one stage process to run.
type command struct {
	stage   string
	attempt int
	path    string
	args    []string
	env     []string
	dir     string
	// stdout and stderr receive the output; the same writer for both
	// gives one pipe, so the output keeps the order it was written in.
	stdout, stderr io.Writer
	// exitCodeFile is BUILD_EXIT_CODE_FILE.
	exitCodeFile string
}

// runCommand runs c until it exits or ctx ends; then the process group
// gets SIGTERM, and SIGKILL after the graceful timeout, as gitlab-runner
// does.
func (e *Executor) runCommand(ctx context.Context, c command) StageResult {
	res := StageResult{Stage: c.stage, Attempt: c.attempt, Args: append([]string{c.path}, c.args...), ExitCode: -1, Start: time.Now()}
	_ = os.Remove(c.exitCodeFile)

	cmd := exec.Command(c.path, c.args...)
	cmd.Dir = c.dir
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A descendant that keeps the output pipe open must not keep Wait
	// from returning once the stage process itself has exited.
	cmd.WaitDelay = e.cfg.ForceKillTimeout
	if err := cmd.Start(); err != nil {
		res.Err = fmt.Errorf("start %s: %w", c.stage, err)
		res.Outcome = StatusUnknownFailure
		res.Duration = time.Since(res.Start)
		return res
	}
	res.PID = cmd.Process.Pid
	if h := e.cfg.Hooks.StageStarted; h != nil {
		h(StageInfo{Stage: c.stage, Attempt: c.attempt, PID: res.PID, Args: res.Args, Env: append([]string(nil), c.env...)})
	}

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		res.Terminated = true
		_ = syscall.Kill(-res.PID, syscall.SIGTERM)
		select {
		case waitErr = <-done:
		case <-time.After(e.cfg.GracefulKillTimeout):
			res.Killed = true
			_ = syscall.Kill(-res.PID, syscall.SIGKILL)
			select {
			case waitErr = <-done:
			case <-time.After(e.cfg.ForceKillTimeout):
				res.Err = fmt.Errorf("%s (pid %d) did not exit %s after SIGKILL: the process is likely dormant", c.stage, res.PID, e.cfg.ForceKillTimeout)
			}
		}
	}
	res.Duration = time.Since(res.Start)
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.Signal = ws.Signal().String()
		}
	}
	if waitErr != nil && res.Err == nil && !isExitError(waitErr) && !errors.Is(waitErr, exec.ErrWaitDelay) {
		res.Err = fmt.Errorf("wait for %s: %w", c.stage, waitErr)
	}
	res.Outcome, res.BuildExitCode = e.classify(res, c.exitCodeFile)
	if h := e.cfg.Hooks.StageEnded; h != nil {
		h(res)
	}
	return res
}

func isExitError(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// classify maps an exit to gitlab-runner's outcome; for a build failure
// it reads the script's exit code from BUILD_EXIT_CODE_FILE.
func (e *Executor) classify(res StageResult, exitCodeFile string) (Status, int) {
	switch {
	case res.Err != nil && res.ExitCode < 0:
		return StatusUnknownFailure, 0
	case res.ExitCode == 0:
		return StatusSuccess, 0
	case res.ExitCode == e.cfg.SystemFailureExitCode:
		return StatusSystemFailure, 0
	case res.ExitCode == e.cfg.BuildFailureExitCode:
		data, err := os.ReadFile(exitCodeFile)
		if err != nil || strings.TrimSpace(string(data)) == "" {
			return StatusBuildFailure, e.cfg.BuildFailureExitCode
		}
		code, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			// gitlab-runner: "unknown Custom executor executable exit code".
			return StatusUnknownFailure, 0
		}
		return StatusBuildFailure, code
	}
	return StatusUnknownFailure, 0
}
