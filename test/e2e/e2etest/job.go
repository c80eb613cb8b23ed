package e2etest

import (
	"context"
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// NewExecutor returns a runner harness for cfg, failing t when cfg is
// refused.
func NewExecutor(t testing.TB, cfg runner.Config) *runner.Executor {
	t.Helper()
	e, err := runner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// RunJob runs job with e, failing t when the harness cannot run it. If
// the test fails, it logs the job's status, job log and runner log and,
// when standinLog is not nil, the stand-in's log: its last tail bytes, or
// all of it when tail <= 0.
func RunJob(ctx context.Context, t testing.TB, e *runner.Executor, job runner.Job, standinLog *Log, tail int) *runner.Result {
	t.Helper()
	res, err := e.Run(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		t.Logf("job %d: status %s (%s)\n--- job log ---\n%s--- runner log ---\n%s", job.ID, res.Status, res.Reason, res.JobLog(), res.RunnerLog)
		if standinLog != nil {
			what := "stand-in log"
			if tail > 0 {
				what = "stand-in log (tail)"
			}
			t.Logf("--- %s ---\n%s", what, standinLog.Tail(tail))
		}
	})
	return res
}

// InOrder checks that want appear in the job log s in this order.
func InOrder(t testing.TB, s string, want ...string) {
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
