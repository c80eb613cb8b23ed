package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// TestFiveStageJob runs a job through prepare_script, get_sources,
// step_script, after_script and cleanup_file_variables on a stand-in VM
// and checks the objects prepare made while the job ran.
func TestFiveStageJob(t *testing.T) {
	const jobID = 101
	name := e2e.VMIName(runnerID, jobID)
	var (
		mu     sync.Mutex
		vmi    *kubevirtv1.VirtualMachineInstance
		secret *corev1.Secret
		getErr error
	)
	hooks := runner.Hooks{StageStarted: func(s runner.StageInfo) {
		if s.Stage != runner.StageStepScript {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if vmi, getErr = bed.Virt.KubevirtV1().VirtualMachineInstances(bed.Namespace).Get(ctx, name, metav1.GetOptions{}); getErr != nil {
			return
		}
		secret, getErr = bed.Kube.CoreV1().Secrets(bed.Namespace).Get(ctx, name+"-credentials", metav1.GetOptions{})
	}}
	e := newExecutor(t, hooks)
	res := runJob(t.Context(), t, e, runner.Job{
		ID:          jobID,
		Name:        "five-stages",
		Files:       map[string]string{"greeting.txt": "hello from the repository\n"},
		Script:      []string{"echo step-one", "for i in 1 2 3; do echo out-$i; echo err-$i >&2; done", "cat greeting.txt", `echo "job $CI_JOB_ID in $PWD as $(id -un)"`},
		AfterScript: []string{"echo after-one"},
		Variables:   []runner.Variable{{Key: "VM_CPU_REQUEST", Value: "2"}, {Key: "VM_MEMORY_REQUEST", Value: "2Gi"}},
	})

	if res.Status != runner.StatusSuccess {
		t.Fatalf("status %s (%s), want success", res.Status, res.Reason)
	}
	want := []string{"config", "prepare", "prepare_script", "get_sources", "step_script", "after_script", "cleanup_file_variables", "cleanup"}
	if got := res.StageNames(); !slices.Equal(got, want) {
		t.Errorf("stages %v, want %v", got, want)
	}
	projectDir := bed.Account.Home + "/builds/group/project"
	log := res.JobLog()
	e2etest.InOrder(t, log,
		"Using Custom executor with driver gitlab-runner-kubevirt",
		"Created VMI "+bed.Namespace+"/"+name, "VMI scheduled on node "+standin.DefaultNodeName, "VMI running with IP 127.",
		"VM reachable over transport-ssh", "VM "+name+" ready",
		"Preparing environment", "Getting source from Git repository", "Fetching changes...",
		`Executing "step_script" stage of the job script`, "$ echo step-one\n", "step-one\n",
		"out-1\n", "out-2\n", "out-3\n",
		"$ cat greeting.txt\n", "hello from the repository\n",
		fmt.Sprintf("job %d in %s as %s\n", jobID, projectDir, bed.Account.Name),
		"Running after_script", "$ echo after-one\nafter-one\n",
		"Cleaning up project directory and file based variables", "Job succeeded")
	// stdout and stderr travel as separate SSH streams: each keeps its
	// own order, but one may overtake the other (as with any SSH
	// executor), so the stdout tokens above are checked one by one.
	e2etest.InOrder(t, log, "err-1\n", "err-2\n", "err-3\n", "Running after_script")

	if c := res.Config; c == nil || c.Hostname == nil || *c.Hostname != name || c.BuildsDir == nil || *c.BuildsDir != bed.Account.Home+"/builds" {
		t.Errorf("config output %+v: want hostname %s and builds_dir %s/builds", c, name, bed.Account.Home)
	}
	if res.ProjectDir != projectDir {
		t.Errorf("CI_PROJECT_DIR %s, want %s", res.ProjectDir, projectDir)
	}

	mu.Lock()
	defer mu.Unlock()
	if getErr != nil {
		t.Fatalf("read the job's objects during step_script: %v", getErr)
	}
	if vmi.Status.Phase != kubevirtv1.Running || len(vmi.Status.Interfaces) == 0 || vmi.Status.Interfaces[0].IP == "" {
		t.Errorf("vmi during step_script: phase %s interfaces %+v", vmi.Status.Phase, vmi.Status.Interfaces)
	}
	req := vmi.Spec.Domain.Resources.Requests
	if req.Cpu().String() != "2" || req.Memory().String() != "2Gi" {
		t.Errorf("vmi requests cpu %s memory %s, want the job's VM_CPU_REQUEST 2 and VM_MEMORY_REQUEST 2Gi", req.Cpu(), req.Memory())
	}
	var ref string
	for _, v := range vmi.Spec.Volumes {
		if v.CloudInitNoCloud != nil && v.CloudInitNoCloud.UserDataSecretRef != nil {
			ref = v.CloudInitNoCloud.UserDataSecretRef.Name
		}
	}
	if ref != secret.Name {
		t.Errorf("the VMI's cloudInitNoCloud userDataSecretRef is %q, want the job's Secret %s", ref, secret.Name)
	}
	if len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].Kind != "VirtualMachineInstance" ||
		secret.OwnerReferences[0].Name != name || secret.OwnerReferences[0].UID != vmi.UID {
		t.Errorf("secret ownerReferences %+v, want the VMI %s (uid %s)", secret.OwnerReferences, name, vmi.UID)
	}
	if secret.Type != corev1.SecretTypeOpaque {
		t.Errorf("secret type %s, want Opaque", secret.Type)
	}
	for _, k := range []string{"userdata", "username", "ssh-privatekey", "host-public-key", "run-recipe", "transport"} {
		if len(secret.Data[k]) == 0 {
			t.Errorf("secret key %s is missing or empty", k)
		}
	}
	if _, ok := secret.Data["password"]; ok {
		t.Error("a Linux job's Secret has a password")
	}
	if vmi.Labels["app.kubernetes.io/managed-by"] != "gitlab-runner-kubevirt" || vmi.Labels["job.runner.gitlab.com/id"] != fmt.Sprint(jobID) {
		t.Errorf("vmi labels %v", vmi.Labels)
	}
	assertClean(t)
}

// TestBuildFailureExitCode checks that a failing script is a build failure
// with the script's own exit code: run exits BUILD_FAILURE_EXIT_CODE and
// writes the code to BUILD_EXIT_CODE_FILE. The codes differ from
// gitlab-runner's defaults to prove they are read from the environment.
func TestBuildFailureExitCode(t *testing.T) {
	cfg := bed.RunnerConfig()
	cfg.BuildFailureExitCode, cfg.SystemFailureExitCode = 17, 23
	res := runJob(t.Context(), t, e2etest.NewExecutor(t, cfg), runner.Job{
		ID: 102, Script: []string{"echo before-the-failure", "exit 3", "echo never-printed"}, AfterScript: []string{"echo after-the-failure"},
	})
	if res.Status != runner.StatusBuildFailure || res.ExitCode != 3 || res.FailedStage != runner.StageStepScript {
		t.Fatalf("status %s exit %d stage %s, want build_failure with exit code 3 in step_script", res.Status, res.ExitCode, res.FailedStage)
	}
	step, _ := res.Stage(runner.StageStepScript)
	if step.ExitCode != 17 || step.BuildExitCode != 3 {
		t.Errorf("run exited %d with %d in BUILD_EXIT_CODE_FILE, want 17 (BUILD_FAILURE_EXIT_CODE) and 3", step.ExitCode, step.BuildExitCode)
	}
	log := res.JobLog()
	e2etest.InOrder(t, log, "before-the-failure", "$ exit 3", "Running after_script", "after-the-failure", "ERROR: Job failed: exit code 3")
	if strings.Contains(log, "never-printed") {
		t.Error("the script went on after exit 3")
	}
	if got := res.StageNames(); got[len(got)-1] != runner.StageCleanup {
		t.Errorf("cleanup did not run last: %v", got)
	}
	assertClean(t)
}

// TestVMIFailures checks that a VMI that cannot run fails prepare as a
// system failure with KubeVirt's reason in the job log, on every try, and
// leaves nothing behind.
func TestVMIFailures(t *testing.T) {
	tests := []struct {
		name      string
		jobID     int64
		behaviour standin.Behaviour
		want      string
	}{
		{"unschedulable", 103, standin.Unschedulable("0/3 nodes are available: 3 Insufficient memory."), "unschedulable: 0/3 nodes are available: 3 Insufficient memory."},
		{"failed", 104, standin.Fail("virt-launcher pod crashed: out of hugepages"), "phase Failed: virt-launcher pod crashed: out of hugepages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			behave(e2e.VMIName(runnerID, tt.jobID), func(int) standin.Behaviour { return tt.behaviour })
			res := runJob(t.Context(), t, newExecutor(t, runner.Hooks{}), runner.Job{ID: tt.jobID, Script: []string{"echo never-runs"}})
			if res.Status != runner.StatusSystemFailure || res.FailedStage != runner.StagePrepare {
				t.Fatalf("status %s stage %s, want system_failure in prepare", res.Status, res.FailedStage)
			}
			if n := strings.Count(res.Output(runner.StagePrepare), tt.want); n != 3 {
				t.Errorf("the reason %q appears %d times in prepare's output, want once per try (3)", tt.want, n)
			}
			want := []string{"config", "prepare", "cleanup", "config", "prepare", "cleanup", "config", "prepare", "cleanup"}
			if got := res.StageNames(); !slices.Equal(got, want) {
				t.Errorf("stages %v, want %v", got, want)
			}
			if strings.Contains(res.JobLog(), "never-runs") {
				t.Error("a script ran although prepare failed")
			}
			assertClean(t)
		})
	}
}

// TestPrepareRetried fails the first VMI: prepare fails, cleanup runs, the
// second try gets a healthy VMI of the same name and the job succeeds.
func TestPrepareRetried(t *testing.T) {
	const jobID = 105
	behave(e2e.VMIName(runnerID, jobID), func(seen int) standin.Behaviour {
		if seen == 1 {
			return standin.Fail("injected failure of the first VMI")
		}
		return standin.Normal()
	})
	res := runJob(t.Context(), t, newExecutor(t, runner.Hooks{}), runner.Job{ID: jobID, Script: []string{"echo second-try-works"}})
	if res.Status != runner.StatusSuccess {
		t.Fatalf("status %s (%s), want success on the second try", res.Status, res.Reason)
	}
	got := res.StageNames()
	if len(got) < 5 || !slices.Equal(got[:5], []string{"config", "prepare", "cleanup", "config", "prepare"}) {
		t.Errorf("stages %v, want config, prepare, cleanup, config, prepare, ...", got)
	}
	e2etest.InOrder(t, res.JobLog(), "injected failure of the first VMI", "WARNING: Preparation failed", "Will be retried in",
		"Created VMI", "ready", "second-try-works", "Job succeeded")
	assertClean(t)
}

// TestCancelDuringSleep cancels a job while its script sleeps: the remote
// sleep must be gone within 5 s of the SIGTERM to run (checked before
// cleanup could delete the VM), run must exit on SIGTERM alone, and cleanup
// must leave nothing.
func TestCancelDuringSleep(t *testing.T) {
	const jobID = 106
	marker := fmt.Sprintf("sleep %d.%03d", 4000+time.Now().Unix()%1000, time.Now().Nanosecond()%1000)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		mu          sync.Mutex
		cancelledAt time.Time
		found       bool
		goneAfter   time.Duration
		stillThere  []int
	)
	hooks := runner.Hooks{
		StageStarted: func(s runner.StageInfo) {
			if s.Stage != runner.StageStepScript {
				return
			}
			go func() {
				deadline := time.Now().Add(waitLimit)
				for time.Now().Before(deadline) && ctx.Err() == nil {
					if len(e2etest.PidsWithCmdline(marker)) > 0 {
						mu.Lock()
						found, cancelledAt = true, time.Now()
						mu.Unlock()
						cancel()
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
				cancel()
			}()
		},
		// Before cleanup runs (hooks are synchronous): the remote sleep
		// must already be going away because run cancelled it.
		StageEnded: func(r runner.StageResult) {
			if r.Stage != runner.StageStepScript {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			deadline := cancelledAt.Add(5 * time.Second)
			for {
				stillThere = e2etest.PidsWithCmdline(marker)
				if len(stillThere) == 0 {
					goneAfter = time.Since(cancelledAt)
					return
				}
				if time.Now().After(deadline) {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		},
	}
	res := runJob(ctx, t, newExecutor(t, hooks), runner.Job{ID: jobID, Script: []string{"echo going-to-sleep", marker, "echo never-printed"}})

	mu.Lock()
	defer mu.Unlock()
	if !found {
		t.Fatalf("the remote %q never started", marker)
	}
	if len(stillThere) > 0 {
		t.Errorf("the remote %q (pids %v) still ran 5s after the job was cancelled", marker, stillThere)
	} else {
		t.Logf("the remote sleep was gone %s after the cancel", goneAfter.Round(time.Millisecond))
	}
	if res.Status != runner.StatusCanceled || res.FailedStage != runner.StageStepScript {
		t.Errorf("status %s stage %s, want canceled in step_script", res.Status, res.FailedStage)
	}
	step, _ := res.Stage(runner.StageStepScript)
	if !step.Terminated || step.Killed {
		t.Errorf("run got SIGTERM %t, needed SIGKILL %t; want it to exit on SIGTERM", step.Terminated, step.Killed)
	}
	if strings.Contains(res.JobLog(), "never-printed") {
		t.Error("the script went on after the cancel")
	}
	if got := res.StageNames(); got[len(got)-1] != runner.StageCleanup {
		t.Errorf("cleanup did not run after the cancel: %v", got)
	}
	assertClean(t)
}

// TestFreshGuestPerJob runs two jobs one after the other: the second must
// not see what the first left in its home, its project directory or /tmp,
// nor anything it left running (every job gets a new VM).
func TestFreshGuestPerJob(t *testing.T) {
	marker := fmt.Sprintf("sleep %d.%03d", 7000+time.Now().Unix()%1000, time.Now().Nanosecond()%1000)
	tmpFile := fmt.Sprintf("/tmp/e2e-fresh-%d", time.Now().UnixNano())
	first := runJob(t.Context(), t, newExecutor(t, runner.Hooks{}), runner.Job{ID: 107, Script: []string{
		"touch ~/from-job-107 " + tmpFile + " leftover-in-project",
		"nohup " + marker + " >/dev/null 2>&1 &",
	}})
	if first.Status != runner.StatusSuccess {
		t.Fatalf("first job: %s (%s)", first.Status, first.Reason)
	}
	assertClean(t)
	if pids := e2etest.PidsWithCmdline(marker); len(pids) > 0 {
		t.Errorf("the first job's background %q (pids %v) outlived its VM", marker, pids)
	}
	second := runJob(t.Context(), t, newExecutor(t, runner.Hooks{}), runner.Job{ID: 108, Script: []string{
		`for f in ~/from-job-107 ` + tmpFile + ` ../project/leftover-in-project; do if [ -e "$f" ]; then echo "found $f"; exit 4; fi; done`,
		"echo fresh",
	}})
	if second.Status != runner.StatusSuccess || !strings.Contains(second.Output(runner.StageStepScript), "fresh\n") {
		t.Errorf("second job: %s (%s): it found what the first job left", second.Status, second.Reason)
	}
	assertClean(t)
}
