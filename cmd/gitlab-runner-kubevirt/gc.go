package main

import (
	"errors"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/stages"
)

// maxGCQPS bounds --qps: beyond it the limit stops meaning anything.
const maxGCQPS = 100000

// gcFlags are gc's own flags beyond kube.GCOptions.
type gcFlags struct {
	output string
	qps    float32
	burst  int
}

// validate checks gc's flags; every error names the flag, value and rule.
func (f *gcFlags) validate(opts kube.GCOptions) error {
	var errs []error
	if opts.MaxAge < 0 {
		errs = append(errs, inputerr.New("--max-age", opts.MaxAge.String(), "must not be negative"))
	}
	if opts.PageSize < 1 || opts.PageSize > kube.MaxGCPageSize {
		errs = append(errs, inputerr.New("--page-size", strconv.FormatInt(opts.PageSize, 10), "must be between 1 and %d", kube.MaxGCPageSize))
	}
	if opts.Workers < 1 || opts.Workers > kube.MaxGCWorkers {
		errs = append(errs, inputerr.New("--workers", strconv.Itoa(opts.Workers), "must be between 1 and %d", kube.MaxGCWorkers))
	}
	if !(f.qps > 0 && f.qps <= maxGCQPS) { // also refuses NaN
		errs = append(errs, inputerr.New("--qps", strconv.FormatFloat(float64(f.qps), 'g', -1, 32), "must be above 0 and at most %d", maxGCQPS))
	}
	if f.burst < 1 || f.burst > 2*maxGCQPS {
		errs = append(errs, inputerr.New("--burst", strconv.Itoa(f.burst), "must be between 1 and %d", 2*maxGCQPS))
	}
	return errors.Join(errs...)
}

func newGCCmd() *cobra.Command {
	k := &kubeFlags{}
	opts := kube.GCOptions{}
	f := &gcFlags{}
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete expired job VMs and orphaned job Secrets",
		Long: `gc deletes the VirtualMachineInstances this executor created whose
io.kubevirt.gitlab-runner/expires label lies in the past (or that are older
than --max-age), with their Secrets, and job Secrets whose VMI no longer
exists. It touches only objects labelled app.kubernetes.io/managed-by=
gitlab-runner-kubevirt. Run it from a CronJob.

It lists metadata only, in pages, and deletes with --workers requests in
flight, limited to --qps requests per second (bursts of --burst). An
interrupted run is safe to repeat: the next one deletes what is left.`,
		Example: `  # What would go, in the current namespace:
  gitlab-runner-kubevirt gc --dry-run
  # Every namespace, also VMs older than six hours, as JSON (e.g. from a CronJob):
  gitlab-runner-kubevirt gc --all-namespaces --max-age 6h -o json
  # Gentler on a busy API server:
  gitlab-runner-kubevirt gc --workers 4 --qps 50 --burst 100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(opts); err != nil {
				return &exitError{code: 1, err: err}
			}
			clients, err := kube.New(kube.Options{
				Kubeconfig: k.kubeconfig, Context: k.context, Namespace: k.namespace,
				QPS: f.qps, Burst: f.burst,
			})
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if err := stages.GC(cmd.Context(), clients, opts, f.output, cmd.OutOrStdout()); err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		},
	}
	k.register(cmd)
	fl := cmd.Flags()
	fl.BoolVarP(&opts.AllNamespaces, "all-namespaces", "A", false, "scan every namespace (needs cluster-wide list and delete rights)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "report what would be deleted, delete nothing")
	fl.DurationVar(&opts.MaxAge, "max-age", 0, "also delete VMs created longer ago than this (0: only expired ones)")
	fl.DurationVar(&opts.OrphanGrace, "orphan-grace", kube.DefaultOrphanGrace, "age before a Secret whose VMI was never created counts as orphaned")
	fl.Int64Var(&opts.PageSize, "page-size", kube.DefaultGCPageSize, "objects per List call (1 to "+strconv.Itoa(kube.MaxGCPageSize)+")")
	fl.IntVar(&opts.Workers, "workers", kube.DefaultGCWorkers, "deletions in flight at once (1 to "+strconv.Itoa(kube.MaxGCWorkers)+")")
	fl.Float32Var(&f.qps, "qps", kube.DefaultGCQPS, "client-side limit of API requests per second")
	fl.IntVar(&f.burst, "burst", kube.DefaultGCBurst, "API requests allowed at once above --qps")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	return cmd
}
