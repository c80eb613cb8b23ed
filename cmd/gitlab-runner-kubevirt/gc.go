package main

import (
	"github.com/spf13/cobra"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/stages"
)

func newGCCmd() *cobra.Command {
	k := &kubeFlags{}
	opts := kube.GCOptions{}
	var output string
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete expired job VMs and orphaned job Secrets",
		Long: `gc deletes the VirtualMachineInstances this executor created whose
io.kubevirt.gitlab-runner/expires label lies in the past (or that are older
than --max-age), with their Secrets, and job Secrets whose VMI no longer
exists. It touches only objects labelled app.kubernetes.io/managed-by=
gitlab-runner-kubevirt. Run it from a CronJob.`,
		Example: `  # What would go, in the current namespace:
  gitlab-runner-kubevirt gc --dry-run
  # Every namespace, also VMs older than six hours, as JSON (e.g. from a CronJob):
  gitlab-runner-kubevirt gc --all-namespaces --max-age 6h -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.MaxAge < 0 {
				return &exitError{code: 1, err: inputerr.New("--max-age", opts.MaxAge.String(), "must not be negative")}
			}
			clients, err := k.clients()
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if err := stages.GC(cmd.Context(), clients, opts, output, cmd.OutOrStdout()); err != nil {
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
	fl.Int64Var(&opts.PageSize, "page-size", kube.DefaultGCPageSize, "objects per List call")
	fl.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
