package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// teardownTimeout bounds the environment's teardown.
const teardownTimeout = 2 * time.Minute

// demo is one run of the demo.
type demo struct {
	opts        options
	out, errOut io.Writer

	mu       sync.Mutex // serialises output
	timeline timeline
}

func (d *demo) printf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, format, args...)
}

// run starts the environment, runs the job, prints timings and tears
// everything down.
func (d *demo) run(ctx context.Context) (err error) {
	job, err := runner.LoadJobFile(d.opts.job)
	if err != nil {
		return err
	}
	if d.opts.mode == modeQEMU {
		return d.runQEMU(ctx, job)
	}
	if err := e2e.CheckBinDir(d.opts.binDir); err != nil {
		return err
	}
	d.timeline.start = time.Now()
	d.printf("%s\n", d.bold(fmt.Sprintf("gitlab-runner-kubevirt demo: job %q from %s, mode %s", job.Name, d.opts.job, d.opts.mode)))
	d.printf("Starting the embedded environment (kube-apiserver + etcd, RBAC, VMI stand-in)...\n")

	vmiName := e2e.VMIName(1, job.ID)
	bed, err := e2e.Start(ctx, e2e.Options{
		BinDir:   d.opts.binDir,
		Progress: d.progress,
		OnEvent: d.onEvent(vmiName, map[standin.EventType]string{
			standin.EventSeen:      "VMI created",
			standin.EventScheduled: "VMI scheduled",
			standin.EventRunning:   "VMI running",
			standin.EventSSHReady:  "guest sshd listening",
		}),
	})
	defer func() {
		if bed == nil {
			return
		}
		d.printf("\nStopping the environment...\n")
		if serr := d.teardown(bed); serr != nil {
			err = errors.Join(err, serr)
			return
		}
		d.printf("Environment stopped: no process or temporary directory left.\n")
	}()
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted while starting the environment; what had started was stopped")
		}
		return fmt.Errorf("start the environment: %w", err)
	}
	d.timeline.mark("environment ready")

	return d.runJob(ctx, bed.RunnerConfig(), job, "interrupted: the job was cancelled and cleaned up", "")
}

// progress prints one start-up step of the environment with its time on
// the timeline.
func (d *demo) progress(step string) {
	at := d.timeline.mark(step)
	d.printf("  %-22s %6.2fs\n", step, at.Seconds())
}

// onEvent returns the stand-in event handler of both modes: the events of
// the demo's VMI named in labels become marks on the timeline, and a
// failed VMI is printed at once.
func (d *demo) onEvent(vmiName string, labels map[standin.EventType]string) func(standin.Event) {
	return func(ev standin.Event) {
		if ev.VMI != vmiName {
			return
		}
		if label, ok := labels[ev.Type]; ok {
			d.timeline.markAt(label, ev.Time)
		}
		if ev.Type == standin.EventFailed {
			d.printf("%s\n", d.red("VMI failed: "+ev.Detail))
		}
	}
}

// runJob runs job through the runner harness with cfg, printing its log as
// it comes and each stage on the timeline, then the timings and how it
// ended. interrupted is the error after a Ctrl-C; where completes the
// success line ("succeeded<where> in 1.2s").
func (d *demo) runJob(ctx context.Context, cfg runner.Config, job runner.Job, interrupted, where string) error {
	cfg.Hooks = runner.Hooks{
		Log: d.logEntry,
		StageEnded: func(r runner.StageResult) {
			name := r.Stage
			if r.Attempt > 1 {
				name = fmt.Sprintf("%s (try %d)", r.Stage, r.Attempt)
			}
			d.timeline.span(name, r.Start, r.Duration)
		},
	}
	e, err := runner.New(cfg)
	if err != nil {
		return err
	}
	d.printf("\n")
	res, err := e.Run(ctx, job)
	if err != nil {
		return err
	}
	d.printTimings()
	switch {
	case ctx.Err() != nil:
		return errors.New(interrupted)
	case res.Status != runner.StatusSuccess:
		return fmt.Errorf("the job failed: %s (%s)", res.Status, res.Reason)
	}
	d.printf("%s\n", d.green(fmt.Sprintf("Job %q succeeded%s in %s.", job.Name, where, res.Duration.Round(time.Millisecond))))
	return nil
}

// logEntry prints one job log entry as it arrives, with gitlab-runner's
// section headers highlighted.
func (d *demo) logEntry(e runner.Entry) {
	text := string(e.Data)
	if e.Runner {
		line := strings.TrimSuffix(text, "\n")
		switch {
		case e.Stage != "" && line == runner.SectionTitle(e.Stage):
			text = "\n" + d.cyan("▸ "+line) + "\n"
		case strings.HasPrefix(line, "ERROR:"):
			text = d.red(line) + "\n"
		case line == "Job succeeded":
			text = "\n" + d.green(line) + "\n"
		case strings.HasPrefix(line, "WARNING:"):
			text = d.yellow(line) + "\n"
		}
	} else if e.Stage == runner.StagePrepare && strings.Contains(text, "reachable over") {
		d.timeline.markAt("SSH ready", e.Time)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	io.WriteString(d.out, text)
}

// printTimings prints when each phase happened and how long it took.
func (d *demo) printTimings() {
	d.printf("\n%s\n", d.bold("Timings"))
	d.printf("  %-34s %9s %9s\n", "phase", "at", "took")
	for _, m := range d.timeline.sorted() {
		took := ""
		if m.took > 0 {
			took = fmt.Sprintf("%.2fs", m.took.Seconds())
		}
		d.printf("  %-34s %8.2fs %9s\n", m.name, m.at.Seconds(), took)
	}
}

// teardown stops the environment and checks that it left nothing.
func (d *demo) teardown(bed *e2e.Bed) error {
	done := make(chan error, 1)
	go func() { done <- bed.Stop() }()
	select {
	case err := <-done:
		if err != nil {
			return err
		}
	case <-time.After(teardownTimeout):
		return fmt.Errorf("the environment did not stop within %s", teardownTimeout)
	}
	var left []string
	for _, p := range []string{bed.Env.Dir(), bed.Account.Home} {
		if _, err := os.Stat(p); err == nil {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(left, ", "))
	}
	return nil
}

// Colors, when enabled.
func (d *demo) paint(code, s string) string {
	if !d.opts.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}
func (d *demo) bold(s string) string   { return d.paint("1", s) }
func (d *demo) cyan(s string) string   { return d.paint("36;1", s) }
func (d *demo) green(s string) string  { return d.paint("32;1", s) }
func (d *demo) red(s string) string    { return d.paint("31;1", s) }
func (d *demo) yellow(s string) string { return d.paint("33;1", s) }
