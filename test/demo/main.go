// Command demo runs a sample CI job through gitlab-runner-kubevirt on an
// embedded environment and prints the job log as GitLab would, with the
// time each phase took.
//
//	go run ./test/demo --bin-dir bin            (what `make demo` runs)
//	go run ./test/demo --bin-dir bin --job examples/jobs/hello.yaml
//
// It starts a real etcd + kube-apiserver with the KubeVirt CRDs, applies the
// runner's RBAC, creates a throwaway guest account and starts the VMI
// stand-in (mode sshd: every VMI's "guest" is a real sshd on a loopback
// address of this host), then drives the executor binaries in --bin-dir
// (built by `make build`) through config, prepare, run and cleanup exactly
// as gitlab-runner does. Everything is torn down at the end, also on
// Ctrl-C, leaving no process and no temporary directory.
//
// It needs root (the stand-in binds port 22 and creates the guest account)
// and Debian's openssh-server and passwd packages. The first run builds
// kube-apiserver and etcd from the Go module proxy (about 6.5 minutes on 2
// cores; cached afterwards).
//
// With --mode qemu the job runs in a real VM instead: the microvm/ Debian
// image (built on the first run, 1.5-3.5 min, cached afterwards) booted
// under QEMU by the stand-in's QEMU mode (TCG where KVM is unusable: 30-90
// s per boot), with the runner's --kernel-boot. It also needs
// qemu-system-x86, qemu-utils and xorriso (bash microvm/install-deps.sh).
//
//	go run ./test/demo --bin-dir bin --mode qemu
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"golang.org/x/term"
)

// Modes of the stand-in.
const (
	modeSSHD = "sshd"
	modeQEMU = "qemu"
)

// options are the demo's flags.
type options struct {
	binDir string
	mode   string
	job    string
	color  bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, runs the demo and returns the exit code: 0 when the job
// succeeded, 1 when it failed or the demo could not run, 2 for bad flags.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "demo:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// A second Ctrl-C ends the demo at once.
		stop()
	}()
	d := &demo{opts: opts, out: stdout, errOut: stderr}
	if err := d.run(ctx); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	return 0
}

// parseFlags reads and validates the flags; errors name the flag, the value
// and the rule.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.binDir, "bin-dir", "bin", "directory with gitlab-runner-kubevirt and plugins/ (with plugins.lock), as `make build` makes it")
	fs.StringVar(&o.mode, "mode", modeSSHD, "how VMIs come to life: sshd (a real sshd per VMI on this host, seconds) or qemu (a real VM per VMI: the microvm/ guest under QEMU, a minute or two)")
	fs.StringVar(&o.job, "job", filepath.Join("examples", "jobs", "hello.yaml"), "job file to run (format: see test/runner.JobFile)")
	color := fs.String("color", "auto", "color the job log: auto, always or never")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q: the demo takes flags only", fs.Arg(0))
	}
	switch o.mode {
	case modeSSHD, modeQEMU:
	default:
		return o, fmt.Errorf("flag --mode %q: must be %s or %s", o.mode, modeSSHD, modeQEMU)
	}
	switch *color {
	case "auto":
		o.color = term.IsTerminal(int(os.Stdout.Fd()))
	case "always":
		o.color = true
	case "never":
	default:
		return o, fmt.Errorf("flag --color %q: must be auto, always or never", *color)
	}
	abs, err := filepath.Abs(o.binDir)
	if err != nil {
		return o, fmt.Errorf("flag --bin-dir %q: %w", o.binDir, err)
	}
	o.binDir = abs
	return o, nil
}
