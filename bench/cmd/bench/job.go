package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/bench"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// phase maps a stage to the report's phases.
func phase(stage string) string {
	switch stage {
	case runner.StageConfig, runner.StagePrepare, runner.StageCleanup:
		return stage
	}
	return "run (all sub-stages)"
}

// trivialJob has five run sub-stages with the harness: prepare_script,
// get_sources, step_script, after_script, cleanup_file_variables.
func trivialJob(id int64, concurrentID int) runner.Job {
	return runner.Job{ID: id, ConcurrentID: concurrentID, Script: []string{"true"}, AfterScript: []string{"true"}}
}

// benchJobOverhead runs whole trivial jobs one after another and breaks
// their wall time down by phase, with the API requests of each job.
func (s *suite) benchJobOverhead(ctx context.Context) error {
	ex, err := runner.New(s.bed.RunnerConfig())
	if err != nil {
		return err
	}
	phases := []string{runner.StageConfig, runner.StagePrepare, "run (all sub-stages)", runner.StageCleanup, "harness (between stages)"}
	byPhase := map[string][]float64{}
	var total, requests []float64
	var runStages int
	subStages := map[string][]float64{}
	var subOrder []string
	var lastCount bench.AuditCount
	for i := range s.opts.jobs {
		before, err := bench.CountRequests(s.auditLog, s.saUser)
		if err != nil {
			return err
		}
		res, err := ex.Run(ctx, trivialJob(s.nextJobID(), 0))
		if err != nil {
			return err
		}
		if res.Status != runner.StatusSuccess {
			return fmt.Errorf("job %d: %s (%s)\n%s", i, res.Status, res.Reason, tail(res.JobLog(), 3000))
		}
		time.Sleep(300 * time.Millisecond) // let the audit log catch up
		after, err := bench.CountRequests(s.auditLog, s.saUser)
		if err != nil {
			return err
		}
		lastCount = after.Sub(before)
		requests = append(requests, float64(lastCount.Total))
		sum := map[string]float64{}
		var inStages time.Duration
		runStages = 0
		for _, st := range res.Stages {
			sum[phase(st.Stage)] += ms(st.Duration)
			inStages += st.Duration
			if phase(st.Stage) == "run (all sub-stages)" {
				runStages++
			}
		}
		sum["harness (between stages)"] = ms(res.Duration - inStages)
		for _, st := range res.Stages {
			if phase(st.Stage) == "run (all sub-stages)" {
				subStages[st.Stage] = append(subStages[st.Stage], ms(st.Duration))
				if i == 0 {
					subOrder = append(subOrder, st.Stage)
				}
			}
		}
		for _, p := range phases {
			byPhase[p] = append(byPhase[p], sum[p])
		}
		total = append(total, ms(res.Duration))
	}
	t, _ := bench.Summarize(total)
	r, _ := bench.Median(requests)
	s.report.Set("job_overhead_ms", t.Median)
	s.report.Set("api_requests_per_job", r)
	var rows [][]string
	for _, p := range phases {
		m, _ := bench.Median(byPhase[p])
		key := "job_phase_" + strings.NewReplacer(" (all sub-stages)", "", " (between stages)", "", " ", "_").Replace(p) + "_ms"
		s.report.Set(key, m)
		rows = append(rows, []string{p, bench.F(m)})
	}
	rows = append(rows, []string{"**whole job**", "**" + bench.F(t.Median) + "**"})
	for _, st := range subOrder {
		m, _ := bench.Median(subStages[st])
		rows = append(rows, []string{"run sub-stage " + st, bench.F(m)})
	}
	body := fmt.Sprintf("Whole trivial jobs through the harness, one after another: config, prepare (the stand-in reports Running at once and starts "+
		"its sshd), %d run sub-stages (prepare_script, get_sources, step_script `true`, after_script `true`, cleanup_file_variables), cleanup. "+
		"Each stage is its own `gitlab-runner-kubevirt` process, as with gitlab-runner. Median of n = %d jobs.\n\n", runStages, t.N) +
		bench.Table([]string{"phase", "median ms"}, rows) +
		fmt.Sprintf("\nAPI requests per job (the runner's ServiceAccount in the API server's audit log, every stage together): median **%s**; "+
			"the last job's by verb and resource: %s.\n", bench.F(r), strings.Join(keyCounts(lastCount), ", "))
	s.report.Add("Job control-plane overhead (4)", body)
	return s.benchSessionCompare(ctx)
}

// benchSessionCompare runs whole trivial jobs alternately with the per-job
// transport session off (GITLAB_RUNNER_KUBEVIRT_SESSION=false for every
// stage) and on (the default), and reports the median run sub-stage and
// whole job of each side.
func (s *suite) benchSessionCompare(ctx context.Context) error {
	off := s.bed.RunnerConfig()
	off.Env = append(off.Env, "GITLAB_RUNNER_KUBEVIRT_SESSION=false")
	exOff, err := runner.New(off)
	if err != nil {
		return err
	}
	exOn, err := runner.New(s.bed.RunnerConfig())
	if err != nil {
		return err
	}
	type side struct {
		ex          *runner.Executor
		job, run    []float64
		prep, clean []float64
	}
	sides := []*side{{ex: exOff}, {ex: exOn}}
	for range s.opts.jobs {
		for _, sd := range sides {
			res, err := sd.ex.Run(ctx, trivialJob(s.nextJobID(), 0))
			if err != nil {
				return err
			}
			if res.Status != runner.StatusSuccess {
				return fmt.Errorf("session comparison job: %s (%s)\n%s", res.Status, res.Reason, tail(res.JobLog(), 3000))
			}
			sd.job = append(sd.job, ms(res.Duration))
			for _, st := range res.Stages {
				switch phase(st.Stage) {
				case "run (all sub-stages)":
					sd.run = append(sd.run, ms(st.Duration))
				case runner.StagePrepare:
					sd.prep = append(sd.prep, ms(st.Duration))
				case runner.StageCleanup:
					sd.clean = append(sd.clean, ms(st.Duration))
				}
			}
		}
	}
	med := func(v []float64) float64 { m, _ := bench.Median(v); return m }
	offRun, onRun := med(sides[0].run), med(sides[1].run)
	offJob, onJob := med(sides[0].job), med(sides[1].job)
	s.report.Set("run_substage_ms_no_session", offRun)
	s.report.Set("run_substage_ms_session", onRun)
	s.report.Set("job_overhead_ms_no_session", offJob)
	s.report.Set("job_overhead_ms_session", onJob)
	rows := [][]string{
		{"run sub-stage (median of all)", bench.F(offRun), bench.F(onRun), bench.F(onRun / offRun)},
		{"prepare", bench.F(med(sides[0].prep)), bench.F(med(sides[1].prep)), bench.F(med(sides[1].prep) / med(sides[0].prep))},
		{"cleanup", bench.F(med(sides[0].clean)), bench.F(med(sides[1].clean)), bench.F(med(sides[1].clean) / med(sides[0].clean))},
		{"whole job", bench.F(offJob), bench.F(onJob), bench.F(onJob / offJob)},
	}
	body := fmt.Sprintf("The same trivial jobs, alternately with `--session=false` and with the per-job transport session (default): prepare "+
		"detaches transport-ssh holding its SSH connection, every run sub-stage reattaches over its unix socket, cleanup stops it. "+
		"n = %d jobs per side.\n\n", len(sides[0].job)) +
		bench.Table([]string{"figure", "no session ms", "session ms", "session / no session"}, rows)
	s.report.Add("Job with and without the transport session (2, 4)", body)
	return nil
}
