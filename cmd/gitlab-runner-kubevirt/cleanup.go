package main

import (
	"github.com/spf13/cobra"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/stages"
)

func newCleanupCmd(g *globalOptions) *cobra.Command {
	k := &kubeFlags{}
	opts := stages.CleanupOptions{}
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Delete the job's VM and Secret (custom executor cleanup_exec)",
		Long: `cleanup stops the job's transport session (if prepare kept one), then
deletes the job's VirtualMachineInstance and its Secret. It is idempotent
(nothing to delete is success) and bounded by --timeout.`,
		Example: `  # config.toml: cleanup_exec = "gitlab-runner-kubevirt", cleanup_args = ["cleanup"]
  gitlab-runner-kubevirt cleanup --namespace ci --timeout 2m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			clients, err := k.clients()
			if err != nil {
				return stageExit(stages.SystemFailure(err))
			}
			opts.NamePrefix = k.prefix
			opts.Logger = g.logger()
			return stageExit(stages.Cleanup(cmd.Context(), jobenv.OS(), clients, opts, cmd.OutOrStdout()))
		},
	}
	k.register(cmd)
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", stages.DefaultCleanupTimeout, "bound of the whole stage")
	cmd.SetFlagErrorFunc(flagError)
	return cmd
}
