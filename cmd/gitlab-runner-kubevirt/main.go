// Command gitlab-runner-kubevirt is a GitLab Runner custom executor that runs
// every CI job in its own KubeVirt VirtualMachineInstance.
//
// GitLab Runner calls it once per stage: config, prepare, run (once per
// sub-stage), cleanup. Guest-OS specifics and guest access live in plugin
// binaries (see package pluginapi).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
)

func main() {
	// client-go reports through klog on stderr, which in a stage is the
	// job log: a forbidden watch would print raw reflector lines with the
	// API server's URL there. The executor reports such errors itself.
	klog.SetLogger(logr.Discard())
	os.Exit(run(os.Args[1:]))
}

// run executes the command line and returns the process exit code.
func run(args []string) int {
	// SIGTERM is how GitLab Runner cancels a stage (SIGKILL follows after
	// graceful_kill_timeout); every command watches ctx and stops promptly.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "Error:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "Error:", err)
	return 1
}

// exitError carries a specific exit code to main, e.g. GitLab's
// BUILD_FAILURE_EXIT_CODE or SYSTEM_FAILURE_EXIT_CODE.
type exitError struct {
	code int
	err  error // printed to stderr when non-nil
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }
