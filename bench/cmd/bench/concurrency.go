package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/bench"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// benchConcurrency runs N whole trivial jobs at once and reports the wall
// time and the distribution of prepare latencies.
func (s *suite) benchConcurrency(ctx context.Context) error {
	n := s.opts.concurrency
	ex, err := runner.New(s.bed.RunnerConfig())
	if err != nil {
		return err
	}
	var (
		mu       sync.Mutex
		prepare  []float64
		jobMS    []float64
		failures []error
		retries  int
	)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		id := s.nextJobID()
		wg.Go(func() {
			res, err := ex.Run(ctx, trivialJob(id, i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, fmt.Errorf("job %d: %w", id, err))
				return
			}
			if res.Status != runner.StatusSuccess {
				failures = append(failures, fmt.Errorf("job %d: %s in %s (%s)", id, res.Status, res.FailedStage, res.Reason))
				return
			}
			jobMS = append(jobMS, ms(res.Duration))
			for _, st := range res.Stages {
				if st.Stage == runner.StagePrepare {
					if st.Attempt > 1 {
						retries++
					}
					prepare = append(prepare, ms(st.Duration))
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(t0)
	if len(prepare) == 0 {
		return fmt.Errorf("no job of %d succeeded: %w", n, errors.Join(failures...))
	}
	p, _ := bench.Summarize(prepare)
	p50 := p.Median
	j, _ := bench.Summarize(jobMS)
	name := fmt.Sprintf("concurrent%d", n)
	s.report.Set(name+"_wall_seconds", wall.Seconds())
	s.report.Set(name+"_p50_prepare_ms", p50)
	s.report.Set(name+"_p95_prepare_ms", p.P95)
	s.report.Set(name+"_failed_jobs", float64(len(failures)))
	body := fmt.Sprintf("%d whole trivial jobs (as in (4)) started at once against one API server and one stand-in (one sshd per VMI), "+
		"each job its own CI_JOB_ID and CI_CONCURRENT_ID. n = %d prepare stages.\n\n", n, p.N) +
		bench.Table([]string{"figure", "value"}, [][]string{
			{"wall time, all jobs", fmt.Sprintf("%s s", bench.F(wall.Seconds()))},
			{"prepare p50", fmt.Sprintf("%s ms", bench.F(p50))},
			{"prepare p95", fmt.Sprintf("%s ms", bench.F(p.P95))},
			{"whole job p50 / p95", fmt.Sprintf("%s / %s ms", bench.F(j.Median), bench.F(j.P95))},
			{"failed jobs", fmt.Sprint(len(failures))},
			{"prepare retries", fmt.Sprint(retries)},
		})
	if len(failures) > 0 {
		body += fmt.Sprintf("\nFirst failure: %v\n", failures[0])
	}
	s.report.Add(fmt.Sprintf("Concurrency: %d jobs at once (6)", n), body)
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d concurrent jobs failed: %w", len(failures), n, failures[0])
	}
	return nil
}
