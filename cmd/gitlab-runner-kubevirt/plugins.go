package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/logging"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// maxPluginStartTimeout bounds --start-timeout.
const maxPluginStartTimeout = 5 * time.Minute

// pluginsOptions are the flags of the plugins commands.
type pluginsOptions struct {
	g            *globalOptions
	startTimeout time.Duration
}

func newPluginsCmd(g *globalOptions) *cobra.Command {
	o := &pluginsOptions{g: g}
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List, check and pin the plugin binaries",
		Long: `Plugins are binaries named gitlab-runner-kubevirt-plugin-<name> in the plugin
directory: --plugin-dir, else $GITLAB_RUNNER_KUBEVIRT_PLUGIN_DIR, else plugins/
beside this binary. The runner starts only plugins listed in plugins.lock in
that directory, and only while their sha256 matches it. After installing,
upgrading or removing a plugin, run "plugins lock" to pin the directory's
content again.`,
		Example: `  gitlab-runner-kubevirt plugins list
  gitlab-runner-kubevirt plugins lock
  gitlab-runner-kubevirt plugins health`,
		Args: cobra.NoArgs,
	}
	cmd.PersistentFlags().DurationVar(&o.startTimeout, "start-timeout", pluginapi.DefaultStartTimeout,
		"how long a plugin may take to start and complete the go-plugin handshake, and to answer each call")
	cmd.AddCommand(newPluginsListCmd(o), newPluginsHealthCmd(o), newPluginsLockCmd(o))
	return cmd
}

// host resolves the plugin directory and returns a plugin host logging to
// the command's stderr. The host is closed when the command's context ends
// (SIGTERM, SIGINT) and by the returned function.
func (o *pluginsOptions) host(cmd *cobra.Command) (*pluginhost.Host, func(), error) {
	if o.startTimeout <= 0 || o.startTimeout > maxPluginStartTimeout {
		return nil, nil, fmt.Errorf("--start-timeout %q: must be more than 0s and at most %s", o.startTimeout, maxPluginStartTimeout)
	}
	log, err := logging.New(cmd.ErrOrStderr(), "gitlab-runner-kubevirt", o.g.logLevel, o.g.logFormat)
	if err != nil {
		return nil, nil, err
	}
	dir, err := pluginhost.ResolveDir(o.g.pluginDir)
	if err != nil {
		return nil, nil, err
	}
	log.Debug("plugin directory", "path", dir.Path, "from", dir.Source)
	h, err := pluginhost.New(pluginhost.Options{
		Dir:            dir.Path,
		Logger:         log,
		StartTimeout:   o.startTimeout,
		PluginLogLevel: o.g.logLevel,
	})
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(cmd.Context(), h.Close)
	return h, func() { stop(); h.Close() }, nil
}

func newPluginsListCmd(o *pluginsOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the plugin binaries and their status",
		Long: `List every gitlab-runner-kubevirt-plugin-* file in the plugin directory, and
every file plugins.lock names but the directory lacks, one row each:

  NAME KIND VERSION API PATH SHA256 STATUS

Each binary is started to ask it what it is (GetInfo). STATUS is one of:
  ok                 locked, and sha256 and GetInfo match plugins.lock
  not-locked         a valid plugin that plugins.lock does not list
  checksum-mismatch  the file changed since "plugins lock"
  missing            plugins.lock lists it but the file is gone
  not-executable     no execute permission
  not-regular        a directory, device or dangling symlink
  invalid-name       the <name> part is not a DNS-1123 label
  not-a-plugin       it did not complete the go-plugin handshake
  api-unsupported    it serves no plugin API version this binary speaks
  invalid-info       its GetInfo answer breaks the plugin contract
  kind-mismatch, info-mismatch
                     its GetInfo differs from what plugins.lock records
The table shows the first 12 hex digits of each sha256 and explains every
status other than ok on stderr; -o json has full digests and explanations.
The command fails only if the directory or plugins.lock cannot be read.`,
		Example: `  gitlab-runner-kubevirt plugins list
  gitlab-runner-kubevirt --plugin-dir /opt/gitlab-runner-kubevirt/plugins plugins list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q: must be table or json", output)
			}
			h, done, err := o.host(cmd)
			if err != nil {
				return err
			}
			defer done()
			rows, err := h.Inspect(cmd.Context())
			if rows == nil && err != nil {
				return err
			}
			if output == "json" {
				if rows == nil {
					rows = []pluginhost.Report{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if werr := enc.Encode(rows); werr != nil {
					return fmt.Errorf("write json: %w", werr)
				}
				return err
			}
			if werr := writeListTable(cmd.OutOrStdout(), cmd.ErrOrStderr(), rows); werr != nil {
				return werr
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// writeListTable prints the rows as a table on out and explains every
// status other than ok on errOut.
func writeListTable(out, errOut io.Writer, rows []pluginhost.Report) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tAPI\tPATH\tSHA256\tSTATUS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			dash(r.Name), dash(string(r.Kind)), dash(r.Version), dash(joinInts(r.APIVersions)), r.Path, dash(shortSum(r.SHA256)), r.Status)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(errOut, "%s: %s\n", r.Status, oneLine(r.Error))
		}
	}
	return nil
}

func newPluginsHealthCmd(o *pluginsOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "health",
		Short: "Start every locked plugin and ask it whether it works",
		Long: `Start every plugin listed in plugins.lock the way a job stage does (checksum
check, go-plugin handshake, GetInfo compared with the lock), ping it and call
its Health. Prints one line per plugin:

  STATUS NAME KIND VERSION PATH DETAIL

STATUS ok and degraded pass; anything else fails (unhealthy,
checksum-mismatch, not-a-plugin, ...). The command exits 1 if any plugin
fails, naming them, or if plugins.lock cannot be read or locks no plugin.`,
		Example: `  gitlab-runner-kubevirt plugins health
  gitlab-runner-kubevirt plugins health --start-timeout 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, done, err := o.host(cmd)
			if err != nil {
				return err
			}
			defer done()
			reports, err := h.CheckHealth(cmd.Context())
			if err != nil {
				return err
			}
			if len(reports) == 0 {
				return fmt.Errorf("%s in %s locks no plugin; install plugins there and run `gitlab-runner-kubevirt plugins lock`", pluginhost.LockFileName, h.Dir())
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STATUS\tNAME\tKIND\tVERSION\tPATH\tDETAIL")
			var failed []string
			for _, r := range reports {
				detail := r.Description
				if r.Failed() {
					detail = r.Error
					failed = append(failed, fmt.Sprintf("%s (%s: %s)", r.Entry.Name, r.Entry.File, r.Status))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Status, r.Entry.Name, r.Entry.Kind, r.Entry.Version, r.Path, dash(oneLine(detail)))
			}
			if err := tw.Flush(); err != nil {
				return fmt.Errorf("write table: %w", err)
			}
			warnUnlocked(cmd.ErrOrStderr(), h.Dir())
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d plugins failed: %s", len(failed), len(reports), strings.Join(failed, ", "))
			}
			return nil
		},
	}
}

// warnUnlocked names plugin files that plugins.lock does not list: the
// runner ignores them, which may surprise an admin who just installed one.
func warnUnlocked(w io.Writer, dir string) {
	cands, err := pluginhost.Discover(dir)
	if err != nil {
		return
	}
	lock, err := pluginhost.ReadLock(dir)
	if err != nil {
		return
	}
	for _, c := range cands {
		if _, ok := lock.Entry(c.File); !ok {
			fmt.Fprintf(w, "warning: %s is not in %s, so the runner ignores it; run `gitlab-runner-kubevirt plugins lock` to allow it\n", c.Path, pluginhost.LockFileName)
		}
	}
}

func newPluginsLockCmd(o *pluginsOptions) *cobra.Command {
	var skipInvalid bool
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Pin the plugins in the plugin directory in plugins.lock",
		Long: `Start every gitlab-runner-kubevirt-plugin-* binary in the plugin directory, ask
it what it is (GetInfo), and write plugins.lock: its sha256, name, kind,
version, API versions, OS family, shells and capabilities. The file is
replaced atomically (mode 0644). The runner then starts only these binaries,
and only while their sha256 is unchanged; run this command again after every
plugin install, upgrade or removal.

A file that is not a usable plugin (not executable, not a plugin, an
unsupported API) makes the command fail without writing anything, unless
--skip-invalid is given: then it is left out of the lock.`,
		Example: `  gitlab-runner-kubevirt plugins lock
  gitlab-runner-kubevirt --plugin-dir /opt/gitlab-runner-kubevirt/plugins plugins lock --skip-invalid`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, done, err := o.host(cmd)
			if err != nil {
				return err
			}
			defer done()
			old, _ := pluginhost.ReadLock(h.Dir())
			lock, rows, err := h.BuildLock(cmd.Context(), skipInvalid)
			if err != nil {
				return err
			}
			if err := pluginhost.WriteLock(h.Dir(), lock); err != nil {
				return err
			}
			for _, r := range rows {
				if r.Status != pluginhost.StatusOK {
					fmt.Fprintf(cmd.ErrOrStderr(), "skipped (--skip-invalid): %s\n", oneLine(r.Error))
				}
			}
			if len(lock.Plugins) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: no plugin found in %s; the runner will not be able to start any\n", h.Dir())
			}
			return writeLockSummary(cmd.OutOrStdout(), h.Dir(), old, lock)
		},
	}
	cmd.Flags().BoolVar(&skipInvalid, "skip-invalid", false, "leave files that are not usable plugins out of the lock instead of failing")
	return cmd
}

// writeLockSummary prints the locked plugins and what changed since the
// previous lock (old may be nil).
func writeLockSummary(out io.Writer, dir string, old, lock *pluginhost.Lock) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANGE\tNAME\tKIND\tVERSION\tAPI\tFILE\tSHA256")
	row := func(change string, e pluginhost.Entry) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", change, e.Name, e.Kind, e.Version, joinInts(e.APIVersions), e.File, shortSum(e.SHA256))
	}
	for _, e := range lock.Plugins {
		change := "added"
		if old != nil {
			if prev, ok := old.Entry(e.File); ok {
				change = "unchanged"
				if prev.SHA256 != e.SHA256 {
					change = "changed"
				}
			}
		}
		row(change, e)
	}
	if old != nil {
		for _, e := range old.Plugins {
			if _, ok := lock.Entry(e.File); !ok {
				row("removed", e)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	_, err := fmt.Fprintf(out, "wrote %s/%s (%d plugins)\n", dir, pluginhost.LockFileName, len(lock.Plugins))
	return err
}

// shortSum shortens a hex sha256 for a table.
func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// dash stands in for an empty table cell.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine folds a multi-line message into one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
