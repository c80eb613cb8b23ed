package reliability_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

// sleepJob is a job whose step_script prints a marker, then sleeps with a
// unique argument (so the test can look for the remote command).
func sleepJob(id int64) (runner.Job, string, string) {
	marker := fmt.Sprintf("MID-STAGE-%d", id)
	sleeper := fmt.Sprintf("sleep %d", 3000+id%1000)
	// The marker is split in the command so only the output matches.
	return runner.Job{ID: id, Script: []string{
		fmt.Sprintf(`echo "MID-""STAGE-%d"`, id),
		sleeper,
	}}, marker, sleeper
}

// TestFaultsMidStage breaks the guest, the VMI or the transport while
// step_script runs. Each is a system failure (never a build failure: the
// script did not fail), the remote command is gone, no plugin process is
// left, and cleanup leaves no object.
func TestFaultsMidStage(t *testing.T) {
	tests := []struct {
		name        string
		prepareArgs []string
		fault       func(t *testing.T, vmi string)
		wantLog     string // in the job log
	}{
		{name: "sshd killed", fault: func(t *testing.T, vmi string) {
			onSSHD(t, vmi, (*sshd.Server).Kill)
		}, wantLog: "lost the connection to VM"},
		{name: "sshd frozen with keepalive 1s", prepareArgs: []string{"--transport-option", "keepalive_interval=1s"},
			fault: func(t *testing.T, vmi string) {
				onSSHD(t, vmi, (*sshd.Server).Pause)
			}, wantLog: "lost the connection to VM"},
		{name: "VMI failed (guest died)", fault: func(t *testing.T, vmi string) {
			setFailed(t, vmi, "virt-launcher crashed")
			onSSHD(t, vmi, (*sshd.Server).Kill)
		}, wantLog: "virt-launcher crashed"},
		{name: "VMI deleted by someone else", fault: func(t *testing.T, vmi string) {
			if err := bed.Virt.KubevirtV1().VirtualMachineInstances(bed.Namespace).Delete(context.Background(), vmi, metav1.DeleteOptions{}); err != nil {
				t.Error(err)
			}
		}, wantLog: "lost the connection to VM"},
		{name: "transport plugin SIGKILLed", fault: func(t *testing.T, _ string) {
			n := 0
			for _, p := range pluginPids() {
				if strings.Contains(e2etest.Cmdline(p), "transport-ssh") {
					_ = syscall.Kill(p, syscall.SIGKILL)
					n++
				}
			}
			if n == 0 {
				t.Error("no transport-ssh plugin process to kill")
			}
		}, wantLog: "transport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer assertClean(t)
			id := nextJobID()
			vmi := e2e.VMIName(1, id)
			job, marker, sleeper := sleepJob(id)
			var faultAt time.Time
			e := newExecutor(t, runner.Hooks{Log: onMarker(marker, func() {
				faultAt = time.Now()
				tt.fault(t, vmi)
			})}, tt.prepareArgs...)
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			res := runJob(ctx, t, e, job)
			wantStatus(t, res, runner.StatusSystemFailure)
			if res.FailedStage != "step_script" {
				t.Errorf("failed stage = %q, want step_script", res.FailedStage)
			}
			if log := res.JobLog(); !strings.Contains(log, tt.wantLog) {
				t.Errorf("job log does not say %q", tt.wantLog)
			}
			if s, ok := res.Stage("step_script"); ok && !faultAt.IsZero() {
				t.Logf("measured: step_script ended %s after the fault", s.Start.Add(s.Duration).Sub(faultAt).Round(time.Millisecond))
			}
			waitFor(t, "the remote "+sleeper+" ends", func() bool { return len(e2etest.PidsWithCmdline(sleeper)) == 0 })
		})
	}
}

// onSSHD does act to the guest sshd of the VMI called vmi, reporting on t
// when there is none or act fails.
func onSSHD(t *testing.T, vmi string, act func(*sshd.Server) error) {
	s, err := bed.Standin.SSHD(vmi)
	if err != nil {
		t.Error(err)
		return
	}
	if err := act(s); err != nil {
		t.Error(err)
	}
}

// setFailed sets the VMI's phase to Failed with reason, as virt-handler
// does when the guest's virt-launcher dies.
func setFailed(t *testing.T, name, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	vmis := bed.Virt.KubevirtV1().VirtualMachineInstances(bed.Namespace)
	for {
		v, err := vmis.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("get vmi %s: %v", name, err)
			return
		}
		v.Status.Phase, v.Status.Reason = kubevirtv1.Failed, reason
		if _, err = vmis.Update(ctx, v, metav1.UpdateOptions{}); err == nil || ctx.Err() != nil {
			if err != nil {
				t.Errorf("set vmi %s Failed: %v", name, err)
			}
			return
		}
	}
}
