package reliability_test

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// TestSIGTERMAtEveryStage cancels a job (SIGTERM to the stage's process
// group, as gitlab-runner does) while prepare waits for the VM, while a
// script prints, and while cleanup runs. The stage exits before the
// harness's SIGKILL, the remote command is gone, and no object is left
// (cleanup's own SIGTERM is followed by gc, the documented fallback).
// How long each stage took to exit is logged as "measured:" for
// RELIABILITY.md; it is not asserted.
func TestSIGTERMAtEveryStage(t *testing.T) {
	tests := []struct {
		name string
		// stage is the stage to signal; delayRunning keeps prepare
		// waiting.
		stage        string
		delayRunning bool
		wantStatus   runner.Status
		needGC       bool
	}{
		{name: "prepare while waiting for the VM", stage: "prepare", delayRunning: true, wantStatus: runner.StatusCanceled},
		{name: "run mid-output", stage: "step_script", wantStatus: runner.StatusCanceled},
		{name: "cleanup", stage: "cleanup", wantStatus: runner.StatusSuccess, needGC: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer assertClean(t)
			id := nextJobID()
			vmi := e2e.VMIName(1, id)
			job, marker, sleeper := sleepJob(id)
			if tt.stage == "cleanup" {
				job.Script = []string{"true"}
			}
			if tt.delayRunning {
				behave(t, vmi, standin.DelayRunning(10*time.Minute))
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			jobCtx, cancelJob := context.WithCancel(ctx)
			defer cancelJob()
			var mu sync.Mutex
			var signalled time.Time
			sigterm := func(pid int) {
				mu.Lock()
				signalled = time.Now()
				mu.Unlock()
				if pid != 0 {
					_ = syscall.Kill(-pid, syscall.SIGTERM)
				} else {
					cancelJob()
				}
			}
			hooks := runner.Hooks{}
			switch tt.stage {
			case "prepare":
				hooks.StageStarted = func(s runner.StageInfo) {
					if s.Stage != "prepare" {
						return
					}
					go func() {
						// Signal once the VMI exists: prepare is waiting.
						for ctx.Err() == nil {
							if _, err := bed.Virt.KubevirtV1().VirtualMachineInstances(bed.Namespace).Get(ctx, vmi, metav1.GetOptions{}); err == nil {
								time.Sleep(300 * time.Millisecond)
								sigterm(0)
								return
							}
							time.Sleep(20 * time.Millisecond)
						}
					}()
				}
			case "step_script":
				hooks.Log = onMarker(marker, func() { sigterm(0) })
			case "cleanup":
				hooks.StageStarted = func(s runner.StageInfo) {
					if s.Stage == "cleanup" {
						// Give the process time to install its signal
						// handler: a SIGTERM before that kills it outright.
						go func() {
							time.Sleep(100 * time.Millisecond)
							sigterm(s.PID)
						}()
					}
				}
			}
			res := runJob(jobCtx, t, newExecutor(t, hooks), job)
			wantStatus(t, res, tt.wantStatus)
			st, ok := res.Stage(tt.stage)
			if !ok {
				t.Fatalf("stage %s did not run; stages: %v", tt.stage, res.StageNames())
			}
			if st.Killed {
				t.Errorf("stage %s needed SIGKILL: it did not exit on SIGTERM", tt.stage)
			}
			if st.Outcome == runner.StatusBuildFailure {
				t.Errorf("stage %s ended as a build failure after SIGTERM", tt.stage)
			}
			mu.Lock()
			t.Logf("measured: %s exited %s after SIGTERM (exit code %d)", tt.stage, st.Start.Add(st.Duration).Sub(signalled).Round(time.Millisecond), st.ExitCode)
			mu.Unlock()
			waitFor(t, "the remote "+sleeper+" ends", func() bool { return len(e2etest.PidsWithCmdline(sleeper)) == 0 })
			if tt.needGC {
				if vmis, secrets, err := objects(ctx, bed.Namespace); err == nil && len(vmis)+len(secrets) > 0 {
					t.Logf("cleanup left %v %v after SIGTERM; gc removes them", vmis, secrets)
					gc(t, bed.Kubeconfig, bed.Namespace)
				}
			}
		})
	}
}

// TestSIGKILLOfRunStage kills our own run process (and its plugin, same
// process group) with SIGKILL mid-script: gitlab-runner still runs
// cleanup, which removes the VM; the guest's processes end with it.
func TestSIGKILLOfRunStage(t *testing.T) {
	defer assertClean(t)
	id := nextJobID()
	job, marker, sleeper := sleepJob(id)
	var mu sync.Mutex
	var runPID int
	hooks := runner.Hooks{
		StageStarted: func(s runner.StageInfo) {
			if s.Stage == "step_script" {
				mu.Lock()
				runPID = s.PID
				mu.Unlock()
			}
		},
		Log: onMarker(marker, func() {
			mu.Lock()
			defer mu.Unlock()
			_ = syscall.Kill(-runPID, syscall.SIGKILL)
		}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	res := runJob(ctx, t, newExecutor(t, hooks), job)
	if res.Status == runner.StatusSuccess || res.Status == runner.StatusBuildFailure {
		t.Errorf("job status = %s after SIGKILL of step_script, want a system or unknown failure", res.Status)
	}
	st, _ := res.Stage("step_script")
	if st.Signal == "" {
		t.Errorf("step_script ended with exit code %d, want killed by SIGKILL", st.ExitCode)
	}
	if c, ok := res.Stage("cleanup"); !ok || c.ExitCode != 0 {
		t.Errorf("cleanup after SIGKILL: ran %v, exit %d; want exit 0", ok, c.ExitCode)
	}
	waitFor(t, "the remote "+sleeper+" ends", func() bool { return len(e2etest.PidsWithCmdline(sleeper)) == 0 })
}
