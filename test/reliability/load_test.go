package reliability_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// loadJobsEnv sets TestLoad's number of concurrent jobs (default 20;
// `RELIABILITY_LOAD_JOBS=100 go test -run TestLoad ./test/reliability`).
const loadJobsEnv = "RELIABILITY_LOAD_JOBS"

// TestLoad runs N jobs at once, each through prepare, five run sub-stages
// (prepare_script, get_sources, step_script, after_script,
// cleanup_file_variables) and cleanup: every job succeeds and nothing is
// left. The wall time is logged, not asserted.
func TestLoad(t *testing.T) {
	n := 20
	if v := os.Getenv(loadJobsEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 500 {
			t.Fatalf("%s %q: must be an integer in 1..500", loadJobsEnv, v)
		}
	}
	defer assertClean(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitLimit+time.Duration(n)*3*time.Second)
	defer cancel()
	cfg := bed.RunnerConfig()
	cfg.PrepareRetries = 1
	e := e2etest.NewExecutor(t, cfg)
	start := time.Now()
	results := make([]*runner.Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := runner.Job{ID: nextJobID(), ConcurrentID: i,
				Script: []string{fmt.Sprintf("echo load-%d", i)}, AfterScript: []string{"echo after"}}
			res, err := e.Run(ctx, job)
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = res
		}()
	}
	wg.Wait()
	failed := 0
	for i, res := range results {
		if res != nil && res.Status != runner.StatusSuccess {
			failed++
			if failed <= 3 {
				t.Errorf("job %d: status %s (%s)\n%s", i, res.Status, res.Reason, res.JobLog())
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d concurrent jobs failed", failed, n)
	}
	var prepares []time.Duration
	for _, res := range results {
		if res != nil {
			prepares = append(prepares, stageDuration(res, "prepare"))
		}
	}
	slices.Sort(prepares)
	t.Logf("measured: %d concurrent jobs (prepare, 5 runs, cleanup) in %s; prepare p50 %s, p95 %s",
		n, time.Since(start).Round(time.Millisecond), percentile(prepares, 50), percentile(prepares, 95))
}

// percentile returns the p-th percentile of sorted (nearest rank), or 0.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i, 1)-1].Round(time.Millisecond)
}
