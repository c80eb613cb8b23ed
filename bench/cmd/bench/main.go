// Command bench runs the benchmark suite of gitlab-runner-kubevirt on a
// real kube-apiserver + etcd (test/kubeenv), the VMI stand-in with a real
// OpenSSH sshd per VMI (test/standin) and the executor driven exactly like
// gitlab-runner drives it (test/runner), and writes the medians to a flat
// JSON file and a human report:
//
//	go run ./bench/cmd/bench -out bench/latest.json -md BENCHMARKS.md
//
// Every comparison with OpenSSH runs both sides alternately (A, B, A, B,
// ...) in the same invocation; every figure is a median of repeated runs
// and the report gives n. Nothing here asserts a timing: targets are
// reported as met or missed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	out, md          string
	runN             int
	streamN          int
	streamMiB        int
	jobs             int
	pluginN          int
	concurrency      int
	gcObjects        int
	gcWorkers        int
	gcCap            time.Duration
	only             string
	keepBinDir       string
	profileRunStages int
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.out, "out", "bench/latest.json", "write the flat metric -> number JSON here (empty: don't)")
	fs.StringVar(&o.md, "md", "BENCHMARKS.md", "write the human report here (empty: don't)")
	fs.IntVar(&o.runN, "run-n", 15, "rounds of the run-stage comparison (each round: ours, then OpenSSH)")
	fs.IntVar(&o.streamN, "stream-n", 3, "rounds of the output-throughput comparison")
	fs.IntVar(&o.streamMiB, "stream-mib", 256, "MiB of stdout per throughput run")
	fs.IntVar(&o.jobs, "jobs", 5, "sequential whole jobs for the control-plane overhead")
	fs.IntVar(&o.pluginN, "plugin-n", 15, "starts of each plugin")
	fs.IntVar(&o.concurrency, "concurrency", 100, "concurrent jobs of the concurrency benchmark (0: skip)")
	fs.IntVar(&o.gcObjects, "gc-objects", 10000, "labelled VMIs (and as many Secrets) for the gc benchmark, half expired (0: skip)")
	fs.IntVar(&o.gcWorkers, "gc-workers", 24, "parallel creators of the gc benchmark's objects")
	fs.DurationVar(&o.gcCap, "gc-cap", 90*time.Second, "stop gc after this long and project its wall time from the deletion rate")
	fs.StringVar(&o.only, "only", "", "comma-separated benchmarks to run (run,stream,job,plugin,concurrency,gc,vm); empty: all")
	fs.StringVar(&o.keepBinDir, "bin-dir", "", "use these prebuilt binaries (`make build`'s bin/) instead of building into a temp dir")
	fs.IntVar(&o.profileRunStages, "profile-runs", 30, "in-process run stages under the CPU profiler for the run-overhead profile (0: none)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	for _, c := range []struct {
		name string
		v    int
		min  int
	}{
		{"-run-n", o.runN, 1}, {"-stream-n", o.streamN, 1}, {"-stream-mib", o.streamMiB, 1}, {"-jobs", o.jobs, 1},
		{"-plugin-n", o.pluginN, 1}, {"-concurrency", o.concurrency, 0}, {"-gc-objects", o.gcObjects, 0},
		{"-gc-workers", o.gcWorkers, 1}, {"-profile-runs", o.profileRunStages, 0},
	} {
		if c.v < c.min {
			errs = append(errs, fmt.Errorf("flag %s %d: must be at least %d", c.name, c.v, c.min))
		}
	}
	if o.gcCap < time.Second {
		errs = append(errs, fmt.Errorf("flag -gc-cap %s: must be at least 1s", o.gcCap))
	}
	if o.gcObjects%2 != 0 {
		errs = append(errs, fmt.Errorf("flag -gc-objects %d: must be even (half expire)", o.gcObjects))
	}
	known := map[string]bool{"run": true, "stream": true, "job": true, "plugin": true, "concurrency": true, "gc": true, "vm": true}
	for _, b := range o.selected() {
		if !known[b] {
			errs = append(errs, fmt.Errorf("flag -only %q: unknown benchmark %q (known: run, stream, job, plugin, concurrency, gc, vm)", o.only, b))
		}
	}
	return o, errors.Join(errs...)
}

func (o options) selected() []string {
	if o.only == "" {
		return nil
	}
	return strings.Split(o.only, ",")
}

func (o options) want(name string) bool {
	sel := o.selected()
	if len(sel) == 0 {
		return true
	}
	for _, s := range sel {
		if s == name {
			return true
		}
	}
	return false
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	if err := run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "bench: done in %s\n", time.Since(start).Round(time.Second))
}
