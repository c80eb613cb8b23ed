package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
)

// DriverName is reported to GitLab as driver.name.
const DriverName = "gitlab-runner-kubevirt"

// ConfigOptions configure the config stage.
type ConfigOptions struct {
	// Shell is the GitLab shell jobs are written for (--shell).
	Shell string
	// OSPlugin, when set, names the OS plugin (--os-plugin); otherwise the
	// plugin serving Shell is used.
	OSPlugin string
	// Username is the guest login (--ssh-user); it places the default
	// builds and cache directories on Linux guests.
	Username string
	// BuildsDir and CacheDir override the OS family's defaults.
	BuildsDir, CacheDir string
	// NamePrefix is the VMI name prefix (the hostname GitLab shows).
	NamePrefix string
	// Version is this executor's version.
	Version string
}

// ConfigOutput is the JSON document the config stage prints.
type ConfigOutput struct {
	BuildsDir         string            `json:"builds_dir"`
	CacheDir          string            `json:"cache_dir"`
	BuildsDirIsShared bool              `json:"builds_dir_is_shared"`
	Hostname          string            `json:"hostname"`
	Driver            Driver            `json:"driver"`
	Shell             string            `json:"shell"`
	JobEnv            map[string]string `json:"job_env"`
}

// Driver is the driver section of ConfigOutput.
type Driver struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// OSPluginFacts is what the config stage needs to know about the OS
// plugin: what it said about itself when the admin locked it.
type OSPluginFacts struct {
	// Name is the plugin's name ("linux-cloudinit").
	Name string
	// OSFamily is the guest OS family ("linux", "windows").
	OSFamily string
	// Shells are the GitLab shells whose scripts the guest runs.
	Shells []string
}

// OSCatalog finds OS plugins without starting them (pluginhost.Catalog
// reads plugins.lock, which records each plugin's GetInfo answer).
type OSCatalog interface {
	// OSByName returns the OS plugin called name.
	OSByName(name string) (OSPluginFacts, error)
	// OSForShell returns the OS plugin that serves GitLab shell shell.
	OSForShell(shell string) (OSPluginFacts, error)
}

// Config runs the config stage: it checks that a locked OS plugin serves
// the shell, and writes GitLab's configuration JSON to out. It needs no
// cluster access and starts no plugin: what it needs to know about the OS
// plugin (its OS family and shells) comes from catalog.
func Config(ctx context.Context, lookup jobenv.Lookup, catalog OSCatalog, opts ConfigOptions, out io.Writer) error {
	if opts.Shell == "" {
		return SystemFailure(inputerr.New("--shell", "", "is required (bash, pwsh, ...)"))
	}
	if err := ctx.Err(); err != nil {
		return SystemFailure(fmt.Errorf("config: %w", err))
	}
	info, err := osFacts(catalog, opts.OSPlugin, opts.Shell)
	if err != nil {
		return SystemFailure(err)
	}
	cfg := ConfigOutput{
		BuildsDir: opts.BuildsDir,
		CacheDir:  opts.CacheDir,
		Hostname:  DriverName,
		Driver:    Driver{Name: DriverName, Version: opts.Version},
		Shell:     opts.Shell,
		JobEnv:    map[string]string{},
	}
	defBuilds, defCache := defaultDirs(info.OSFamily, opts.Username)
	if cfg.BuildsDir == "" {
		cfg.BuildsDir = defBuilds
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = defCache
	}
	// The hostname GitLab prints ("Running on ...") is the VMI's name when
	// the job's ids are known (they are, with a real gitlab-runner).
	if job, err := jobenv.ReadJob(lookup); err == nil {
		if names, err := naming.ForJob(opts.NamePrefix, job.RunnerID, job.JobID); err == nil {
			cfg.Hostname = names.VMI
		}
	}
	enc := json.NewEncoder(out)
	if err := enc.Encode(cfg); err != nil {
		return SystemFailure(fmt.Errorf("write config: %w", err))
	}
	return nil
}

// osFacts finds the OS plugin (by name, or the one serving shell) and
// checks that it serves shell.
func osFacts(catalog OSCatalog, name, shell string) (OSPluginFacts, error) {
	if name == "" {
		f, err := catalog.OSForShell(shell)
		if err != nil {
			return OSPluginFacts{}, fmt.Errorf("find the OS plugin for shell %q: %w", shell, err)
		}
		return f, nil
	}
	f, err := catalog.OSByName(name)
	if err != nil {
		return OSPluginFacts{}, fmt.Errorf("find os plugin %q: %w", name, err)
	}
	if !slices.Contains(f.Shells, shell) {
		return OSPluginFacts{}, inputerr.New("--shell", shell, "is not served by os plugin %s (it serves %s)", name, strings.Join(f.Shells, ", "))
	}
	return f, nil
}

// defaultDirs are the builds and cache directories on the guest: in the
// login's home on Linux-like guests, at the root of C: on Windows. GitLab's
// scripts create them.
func defaultDirs(family, user string) (string, string) {
	if strings.EqualFold(family, "windows") {
		return `C:\builds`, `C:\cache`
	}
	home := "/home/" + user
	if user == "root" || user == "" {
		home = "/root"
	}
	return home + "/builds", home + "/cache"
}
