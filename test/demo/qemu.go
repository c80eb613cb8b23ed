package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/realvm"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// runQEMU is the demo with --mode qemu: the job runs in a real VM, the
// microvm/ Debian guest booted under QEMU (TCG when KVM is unusable) by
// the stand-in's QEMU mode. It builds the image on the first run (cached
// afterwards) and prints when each phase happened.
func (d *demo) runQEMU(ctx context.Context, job runner.Job) (err error) {
	if err := realvm.CheckTools(); err != nil {
		return err
	}
	if err := e2e.CheckBinDir(d.opts.binDir); err != nil {
		return err
	}
	consoleDir, err := os.MkdirTemp("", "demo-consoles-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(consoleDir)

	d.timeline.start = time.Now()
	d.printf("%s\n", d.bold(fmt.Sprintf("gitlab-runner-kubevirt demo: job %q from %s, mode %s", job.Name, d.opts.job, d.opts.mode)))
	d.printf("Starting the embedded environment (guest image, kube-apiserver + etcd, RBAC, VMI stand-in booting real VMs)...\n")
	vmiName := e2e.VMIName(1, job.ID)
	bed, err := realvm.Start(ctx, realvm.Options{
		BinDir:     d.opts.binDir,
		ConsoleDir: consoleDir,
		BuildLog:   d.errOut,
		Progress:   d.progress,
		OnEvent: d.onEvent(vmiName, map[standin.EventType]string{
			standin.EventSeen:      "VMI created",
			standin.EventScheduled: "VMI scheduled",
			standin.EventBooting:   "QEMU started",
			standin.EventRunning:   "VMI running (guest booting)",
			standin.EventSSHReady:  "guest booted: sshd answers",
		}),
	})
	defer func() {
		if bed == nil {
			return
		}
		d.printf("\nStopping the environment...\n")
		if serr := d.teardownQEMU(bed, consoleDir); serr != nil {
			err = errors.Join(err, serr)
			return
		}
		d.printf("Environment stopped: no QEMU, no other process and no temporary directory left.\n")
	}()
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted while starting the environment; what had started was stopped")
		}
		return fmt.Errorf("start the environment: %w", err)
	}
	d.printf("  guest %s, kernel %s; accelerator %s (%s)\n", bed.Image.Guest, bed.Image.KernelVersion, bed.Accel, bed.AccelReason)
	d.timeline.mark("environment ready")

	return d.runJob(ctx, bed.RunnerConfig(), job, "interrupted: the job was cancelled, its VM stopped and cleaned up", " in a real VM")
}

// teardownQEMU stops the environment and checks that no QEMU (its command
// line names consoleDir) and no control plane directory is left.
func (d *demo) teardownQEMU(bed *realvm.Bed, consoleDir string) error {
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
	if _, err := os.Stat(bed.Env.Dir()); err == nil {
		left = append(left, bed.Env.Dir())
	}
	if pids := processesWith(consoleDir); len(pids) > 0 {
		left = append(left, fmt.Sprintf("QEMU processes %v", pids))
	}
	if len(left) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(left, ", "))
	}
	return nil
}

// processesWith returns the pids whose command line contains needle.
func processesWith(needle string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), needle) {
			pids = append(pids, pid)
		}
	}
	return pids
}
