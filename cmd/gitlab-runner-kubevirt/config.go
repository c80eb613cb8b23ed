package main

import (
	"github.com/spf13/cobra"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/stages"
)

func newConfigCmd(g *globalOptions) *cobra.Command {
	opts := stages.ConfigOptions{}
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the executor configuration GitLab Runner reads (custom executor config_exec)",
		Long: `config prints the JSON document gitlab-runner reads before a job:
builds and cache directories on the guest, the hostname, the driver and the
shell. It checks that a locked OS plugin serves the shell, from plugins.lock
alone: it starts no plugin (prepare starts and verifies them). It needs no
cluster.`,
		Example: `  # config.toml: config_exec = "gitlab-runner-kubevirt", config_args = ["config"]
  gitlab-runner-kubevirt config
  gitlab-runner-kubevirt config --shell pwsh --ssh-user Administrator`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Version = version
			return stageExit(stages.Config(cmd.Context(), jobenv.OS(), &lockCatalog{g: g}, opts, cmd.OutOrStdout()))
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

// lockCatalog answers the config stage's questions about OS plugins from
// plugins.lock (pluginhost.Catalog). The plugin directory is resolved on
// first use, so a stage that fails validation never looks at it.
type lockCatalog struct {
	g   *globalOptions
	cat *pluginhost.Catalog
}

func (c *lockCatalog) get() (*pluginhost.Catalog, error) {
	if c.cat != nil {
		return c.cat, nil
	}
	dir, err := pluginhost.ResolveDir(c.g.pluginDir)
	if err != nil {
		return nil, err
	}
	log := c.g.logger()
	log.Debug("plugin directory", "path", dir.Path, "from", dir.Source)
	c.cat = pluginhost.NewCatalog(dir.Path, log)
	return c.cat, nil
}

// OSByName returns the locked OS plugin called name.
func (c *lockCatalog) OSByName(name string) (stages.OSPluginFacts, error) {
	cat, err := c.get()
	if err != nil {
		return stages.OSPluginFacts{}, err
	}
	e, err := cat.ByName(pluginhost.KindOS, name)
	return osFacts(e), err
}

// OSForShell returns the locked OS plugin serving shell.
func (c *lockCatalog) OSForShell(shell string) (stages.OSPluginFacts, error) {
	cat, err := c.get()
	if err != nil {
		return stages.OSPluginFacts{}, err
	}
	e, err := cat.ForShell(shell)
	return osFacts(e), err
}

func osFacts(e pluginhost.Entry) stages.OSPluginFacts {
	return stages.OSPluginFacts{Name: e.Name, OSFamily: e.OSFamily, Shells: e.Shells}
}
