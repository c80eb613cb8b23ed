package main

import (
	"github.com/spf13/cobra"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	logLevel  string
	logFormat string
	pluginDir string
}

func newRootCmd() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "gitlab-runner-kubevirt",
		Short: "GitLab Runner custom executor that runs each CI job in a KubeVirt VM",
		Long: `gitlab-runner-kubevirt runs every CI job in its own KubeVirt
VirtualMachineInstance. GitLab Runner calls it at each custom-executor stage:
config, prepare, run and cleanup. Guest OS support (cloud-init, Cloudbase-Init)
and guest access (SSH) come from plugin binaries.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.logLevel, "log-level", "info", "log level of the runner log (stderr): trace, debug, info, warn, error")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format of the runner log (stderr): text or json")
	pf.StringVar(&g.pluginDir, "plugin-dir", "", "directory holding gitlab-runner-kubevirt-plugin-* binaries and plugins.lock (env GITLAB_RUNNER_KUBEVIRT_PLUGIN_DIR; default: plugins/ beside this binary)")

	root.AddCommand(
		newVersionCmd(),
		newPluginsCmd(g),
		newConfigCmd(g),
		newPrepareCmd(g),
		newRunCmd(g),
		newCleanupCmd(),
		newGCCmd(),
		newInstallCmd(g),
	)
	return root
}
