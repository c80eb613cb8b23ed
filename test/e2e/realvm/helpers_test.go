package realvm_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// runJob runs job and logs its logs (and the stand-in's) when the test
// fails.
func runJob(ctx context.Context, t *testing.T, e *runner.Executor, job runner.Job) *runner.Result {
	t.Helper()
	res, err := e.Run(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			standinLog.Lock()
			defer standinLog.Unlock()
			t.Logf("job %d: status %s (%s)\n--- job log ---\n%s--- runner log ---\n%s--- stand-in log ---\n%s",
				job.ID, res.Status, res.Reason, res.JobLog(), res.RunnerLog, standinLog.String())
		}
	})
	return res
}

// inOrder checks that want appear in s in this order.
func inOrder(t *testing.T, s string, want ...string) {
	t.Helper()
	pos := 0
	for _, w := range want {
		i := strings.Index(s[pos:], w)
		if i < 0 {
			t.Errorf("%q does not appear (in this order) in the job log after position %d", w, pos)
			return
		}
		pos += i + len(w)
	}
}

// assertClean checks what every job must leave behind: no VMI, no Secret,
// no guest (QEMU process), no address, no executor or plugin process. It
// waits, bounded, for deleted VMIs to go, and deletes leftovers so later
// tests start clean.
func assertClean(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	vmis := bed.Virt.KubevirtV1().VirtualMachineInstances(bed.Namespace)
	secrets := bed.Kube.CoreV1().Secrets(bed.Namespace)
	var names []string
	for {
		list, err := vmis.List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list vmis: %v", err)
		}
		names = names[:0]
		live := false
		for _, v := range list.Items {
			names = append(names, v.Name)
			live = live || v.DeletionTimestamp == nil
		}
		if len(names) == 0 || live || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(names) > 0 {
		t.Errorf("VMIs left in %s: %v", bed.Namespace, names)
		for _, n := range names {
			_ = vmis.Delete(ctx, n, metav1.DeleteOptions{})
		}
	}
	list, err := secrets.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list secrets: %v", err)
	}
	for _, s := range list.Items {
		t.Errorf("Secret left in %s: %s", bed.Namespace, s.Name)
		_ = secrets.Delete(ctx, s.Name, metav1.DeleteOptions{})
	}
	if err := bed.Standin.WaitIdle(ctx); err != nil {
		t.Error(err)
	}
	if n := bed.Standin.AddressesInUse(); n != 0 {
		t.Errorf("the stand-in still holds %d guest addresses", n)
	}
	for _, needle := range []string{consoleDir, binDir} {
		for {
			pids := pidsWithCmdline(needle)
			if len(pids) == 0 {
				break
			}
			if ctx.Err() != nil {
				t.Errorf("processes %v (command line with %s) left behind", pids, needle)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// pidsWithCmdline returns the pids whose command line contains needle.
func pidsWithCmdline(needle string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), needle) {
			pids = append(pids, pid)
		}
	}
	return pids
}
