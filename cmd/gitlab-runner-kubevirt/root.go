package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/logging"
)

// envPrefix is the prefix of the environment variables that set flags:
// --default-image is read from GITLAB_RUNNER_KUBEVIRT_DEFAULT_IMAGE.
const envPrefix = "GITLAB_RUNNER_KUBEVIRT_"

// globalOptions are the flags every command shares.
type globalOptions struct {
	logLevel  string
	logFormat string
	pluginDir string

	// log is the runner log (stderr), built from --log-level and
	// --log-format before any command runs.
	log hclog.Logger
}

// logger returns the runner log; before the root's PersistentPreRunE ran
// (a command used on its own in a test), a default one on stderr.
func (g *globalOptions) logger() hclog.Logger {
	if g.log != nil {
		return g.log
	}
	log, err := logging.New(os.Stderr, "gitlab-runner-kubevirt", g.logLevel, g.logFormat)
	if err != nil {
		return hclog.New(&hclog.LoggerOptions{Name: "gitlab-runner-kubevirt", Output: os.Stderr})
	}
	return log
}

// envHelp is appended to the root's help: the one rule for every flag.
const envHelp = `
Environment:
  Every flag can also be set with an environment variable named
  GITLAB_RUNNER_KUBEVIRT_<FLAG NAME in upper case, dashes as underscores>,
  e.g. --namespace from GITLAB_RUNNER_KUBEVIRT_NAMESPACE and --default-image
  from GITLAB_RUNNER_KUBEVIRT_DEFAULT_IMAGE. A flag on the command line wins
  over its variable. List flags take a comma-separated value
  (GITLAB_RUNNER_KUBEVIRT_ALLOWED_IMAGES=registry.example.com/ci/*,quay.io/org/*);
  repeatable flags (--node-selector, --toleration, --os-plugin-option,
  --transport-option) take a single value from their variable.
`

func newRootCmd() *cobra.Command { return newRoot(os.Stdout, os.Stderr) }

// newRoot builds the command tree writing to stdout (the job log) and
// stderr (the runner log). The writers are set before the completion
// commands are made: cobra binds their output when it creates them.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "gitlab-runner-kubevirt",
		Short: "GitLab Runner custom executor that runs each CI job in a KubeVirt VM",
		Long: `gitlab-runner-kubevirt runs every CI job in its own KubeVirt
VirtualMachineInstance. GitLab Runner calls it at each custom-executor stage:
config, prepare, run and cleanup. Guest OS support (cloud-init, Cloudbase-Init)
and guest access (SSH) come from plugin binaries.

The job log (what GitLab shows) is this program's stdout; the runner log is
stderr, shaped by --log-level and --log-format.`,
		Example: `  # In the runner's config.toml ([runners.custom]):
  #   config_exec  = "gitlab-runner-kubevirt"
  #   config_args  = ["config"]
  #   prepare_exec = "gitlab-runner-kubevirt"
  #   prepare_args = ["prepare", "--default-image", "quay.io/containerdisks/debian:12"]
  #   run_exec     = "gitlab-runner-kubevirt"
  #   run_args     = ["run"]
  #   cleanup_exec = "gitlab-runner-kubevirt"
  #   cleanup_args = ["cleanup"]

  # The same flag from the environment:
  GITLAB_RUNNER_KUBEVIRT_NAMESPACE=ci gitlab-runner-kubevirt gc --dry-run

  # Debug the runner log as JSON:
  gitlab-runner-kubevirt --log-level debug --log-format json plugins health`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			fromEnv, err := applyEnv(cmd.Flags(), os.LookupEnv)
			if err != nil {
				return cmd.FlagErrorFunc()(cmd, err)
			}
			log, err := logging.New(cmd.ErrOrStderr(), "gitlab-runner-kubevirt", g.logLevel, g.logFormat)
			if err != nil {
				for _, f := range []string{"log-level", "log-format"} {
					if v, ok := fromEnv[f]; ok {
						err = fmt.Errorf("environment variable %s: %w", v, err)
					}
				}
				return cmd.FlagErrorFunc()(cmd, err)
			}
			g.log = log
			return nil
		},
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
		newCleanupCmd(g),
		newGCCmd(),
		newInstallCmd(g),
	)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetUsageTemplate(root.UsageTemplate() + envHelp)
	addCompletionExamples(root)
	annotateEnv(root)
	return root
}

// annotateEnv appends each flag's environment variable to its usage, so
// --help and the generated reference show it next to the flag.
func annotateEnv(root *cobra.Command) {
	seen := map[*pflag.Flag]bool{}
	var visit func(*cobra.Command)
	visit = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.PersistentFlags(), c.LocalNonPersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if seen[f] || f.Name == "help" || strings.Contains(f.Usage, envPrefix) {
					seen[f] = true
					return
				}
				seen[f] = true
				f.Usage += " [$" + EnvName(f.Name) + "]"
			})
		}
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	visit(root)
}

// EnvName returns the environment variable that sets flag name:
// GITLAB_RUNNER_KUBEVIRT_ and the name in upper case with dashes as
// underscores.
func EnvName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// secretFlags may carry secrets: their values are never echoed.
var secretFlags = map[string]bool{"transport-option": true}

// applyEnv sets every flag in fs that the command line did not set from its
// environment variable (see [EnvName]), if lookup finds one. An explicit
// flag wins. A value the flag refuses is an error naming the variable. It
// returns the flags it set, each with its variable's name.
func applyEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) (map[string]string, error) {
	set := map[string]string{}
	var firstErr error
	fs.VisitAll(func(f *pflag.Flag) {
		// --plugin-dir is resolved by pluginhost.ResolveDir, which reads
		// the same variable (GITLAB_RUNNER_KUBEVIRT_PLUGIN_DIR) and
		// reports where the directory came from.
		if firstErr != nil || f.Changed || f.Name == "help" || f.Name == "plugin-dir" {
			return
		}
		name := EnvName(f.Name)
		v, ok := lookup(name)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			if secretFlags[f.Name] {
				// pflag's error repeats the value: leave it out.
				firstErr = fmt.Errorf("environment variable %s=<redacted> (flag --%s): invalid value", name, f.Name)
				return
			}
			firstErr = fmt.Errorf("environment variable %s=%q (flag --%s): %w", name, v, f.Name, err)
			return
		}
		set[f.Name] = name
	})
	return set, firstErr
}

// addCompletionExamples makes cobra's completion commands explicit (so
// they are documented and tested like the others) and gives each an
// example.
func addCompletionExamples(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = `  # Load completion into the current bash session:
  source <(gitlab-runner-kubevirt completion bash)`
		for _, sh := range c.Commands() {
			switch sh.Name() {
			case "bash":
				sh.Example = `  gitlab-runner-kubevirt completion bash > /etc/bash_completion.d/gitlab-runner-kubevirt`
			case "zsh":
				sh.Example = `  gitlab-runner-kubevirt completion zsh > "${fpath[1]}/_gitlab-runner-kubevirt"`
			case "fish":
				sh.Example = `  gitlab-runner-kubevirt completion fish > ~/.config/fish/completions/gitlab-runner-kubevirt.fish`
			case "powershell":
				sh.Example = `  gitlab-runner-kubevirt completion powershell | Out-String | Invoke-Expression`
			}
		}
	}
}
