package main

import (
	"github.com/spf13/cobra"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/stages"
)

func newConfigCmd(g *globalOptions) *cobra.Command {
	opts := stages.ConfigOptions{}
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the executor configuration GitLab Runner reads (custom executor config_exec)",
		Long: `config prints the JSON document gitlab-runner reads before a job:
builds and cache directories on the guest, the hostname, the driver and the
shell. It checks that an OS plugin serves the shell. It needs no cluster.`,
		Example: `  # config.toml: config_exec = "gitlab-runner-kubevirt", config_args = ["config"]
  gitlab-runner-kubevirt config
  gitlab-runner-kubevirt config --shell pwsh --ssh-user Administrator`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plugins := openPlugins(g)
			defer plugins.Close()
			opts.Version = version
			return stageExit(stages.Config(cmd.Context(), jobenv.OS(), plugins, opts, cmd.OutOrStdout()))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Shell, "shell", defaultShell, "GitLab shell of the job scripts (bash, pwsh, ...)")
	fl.StringVar(&opts.OSPlugin, "os-plugin", "", "OS plugin name (default: the plugin serving --shell)")
	fl.StringVar(&opts.Username, "ssh-user", defaultUser, "login name on the guest (places the default builds and cache directories)")
	fl.StringVar(&opts.BuildsDir, "builds-dir", "", "builds directory on the guest (default: ~/builds of --ssh-user; C:\\builds on Windows)")
	fl.StringVar(&opts.CacheDir, "cache-dir", "", "cache directory on the guest (default: ~/cache of --ssh-user; C:\\cache on Windows)")
	fl.StringVar(&opts.NamePrefix, "name-prefix", naming.DefaultPrefix, "first part of VMI names, shown as the hostname")
	cmd.SetFlagErrorFunc(flagError)
	return cmd
}
