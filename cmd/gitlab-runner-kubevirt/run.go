package main

import (
	"github.com/spf13/cobra"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/session"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/stages"
)

func newRunCmd(g *globalOptions) *cobra.Command {
	k := &kubeFlags{}
	var useSession bool
	cmd := &cobra.Command{
		Use:   "run <script> <stage>",
		Short: "Run one job script on the job's VM (custom executor run_exec)",
		Long: `run uploads the script gitlab-runner wrote to the job's VM and runs it
there, streaming its output. A failing script exits with
BUILD_FAILURE_EXIT_CODE after writing its exit code to BUILD_EXIT_CODE_FILE;
a lost VM or connection exits with SYSTEM_FAILURE_EXIT_CODE. SIGTERM ends
the remote script. With --session (the default) it reuses the transport
plugin and connection prepare kept running, and starts its own when there
is none.`,
		Example: `  # config.toml: run_exec = "gitlab-runner-kubevirt", run_args = ["run"];
  # gitlab-runner appends the script path and the sub-stage name:
  gitlab-runner-kubevirt run /tmp/custom-executor123/script456/script. step_script`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(2)(cmd, args); err != nil {
				return stageExit(stages.SystemFailure(err))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			clients, err := k.clients()
			if err != nil {
				return stageExit(stages.SystemFailure(err))
			}
			plugins := openPlugins(g)
			defer plugins.Close()
			opts := stages.RunOptions{NamePrefix: k.prefix, Script: args[0], Stage: args[1],
				Session: session.Options{Enabled: useSession}, Logger: g.logger()}
			return stageExit(stages.Run(cmd.Context(), jobenv.OS(), clients, plugins, opts, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	k.register(cmd)
	registerSessionFlag(cmd, &useSession)
	cmd.SetFlagErrorFunc(flagError)
	return cmd
}
