package realvm_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// runJob runs job and logs its logs (and the whole stand-in log) when the
// test fails.
func runJob(ctx context.Context, t *testing.T, e *runner.Executor, job runner.Job) *runner.Result {
	t.Helper()
	return e2etest.RunJob(ctx, t, e, job, &standinLog, 0)
}

// assertClean checks what every job must leave behind: no VMI, no Secret,
// no guest (QEMU process), no address, no executor or plugin process. It
// waits, bounded, for deleted VMIs to go, and deletes leftovers so later
// tests start clean.
func assertClean(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	e2etest.AssertNoJobObjects(ctx, t, e2etest.Cluster{Kube: bed.Kube, Virt: bed.Virt, Namespace: bed.Namespace, Standin: bed.Standin})
	for _, needle := range []string{consoleDir, binDir} {
		e2etest.WaitGone(ctx, t, "processes with "+needle+" in their command line", func() []string {
			var out []string
			for _, p := range e2etest.PidsWithCmdline(needle) {
				out = append(out, strconv.Itoa(p)+" "+e2etest.Cmdline(p))
			}
			return out
		})
	}
}
