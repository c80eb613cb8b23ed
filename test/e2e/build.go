package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
)

// Names of the built binaries, as `make build` lays them out.
const (
	// CoreBinary is the executor's file name in the bin dir.
	CoreBinary = "gitlab-runner-kubevirt"
	// PluginPrefix starts every plugin binary's name.
	PluginPrefix = "gitlab-runner-kubevirt-plugin-"
	// PluginsDir is the plugin directory's name inside the bin dir.
	PluginsDir = "plugins"
)

// The go build flags of `make build` (the Makefile's LDFLAGS and its
// plugin loop), so tests and benchmarks start, hash and measure the
// binaries a runner gets: stripped (-s -w), about a third smaller. Keep
// them in step with the Makefile.
const (
	// buildFlags go before -ldflags for every binary.
	buildFlags = "-trimpath"
	// coreLDFlags is the core's -ldflags without the version stamp.
	coreLDFlags = "-s -w"
	// pluginLDFlags is every plugin's -ldflags.
	pluginLDFlags = "-s -w"
)

// RequiredPlugins are the plugins a Linux job needs.
var RequiredPlugins = []string{"linux-cloudinit", "transport-ssh"}

// BuildBinaries builds the core into dir/gitlab-runner-kubevirt and every
// plugin main package under plugins/ into
// dir/plugins/gitlab-runner-kubevirt-plugin-<name>, then pins them with
// `gitlab-runner-kubevirt plugins lock`, as `make build` does and with its
// flags (stripped; the core stamped with `git describe`'s version). Plugin
// directories without a main.go (work in progress) are skipped and
// reported in the returned list; a missing required plugin is an error.
func BuildBinaries(ctx context.Context, dir string) (skipped []string, err error) {
	root, err := kubeenv.RepoRoot()
	if err != nil {
		return nil, fmt.Errorf("build binaries: %w", err)
	}
	// go test and go run put their own go first in PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("build binaries: the go command is not in PATH: %w", err)
	}
	build := func(out, pkg, ldflags string) error {
		cmd := exec.CommandContext(ctx, goBin, "build", buildFlags, "-ldflags", ldflags, "-o", out, pkg)
		cmd.Dir = root
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s -ldflags %q -o %s %s: %w\n%s", buildFlags, ldflags, out, pkg, err, buf.String())
		}
		return nil
	}
	pluginDir := filepath.Join(dir, PluginsDir)
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return nil, fmt.Errorf("build binaries: %w", err)
	}
	core := filepath.Join(dir, CoreBinary)
	coreFlags := coreLDFlags + " -X main.version=" + version(ctx, root)
	if err := build(core, "./cmd/gitlab-runner-kubevirt", coreFlags); err != nil {
		return nil, err
	}
	dirs, err := filepath.Glob(filepath.Join(root, "plugins", "*-*"))
	if err != nil {
		return nil, fmt.Errorf("build binaries: %w", err)
	}
	built := map[string]bool{}
	for _, d := range dirs {
		name := filepath.Base(d)
		if _, err := os.Stat(filepath.Join(d, "main.go")); err != nil {
			skipped = append(skipped, name)
			continue
		}
		if err := build(filepath.Join(pluginDir, PluginPrefix+name), "./plugins/"+name, pluginLDFlags); err != nil {
			return skipped, err
		}
		built[name] = true
	}
	for _, name := range RequiredPlugins {
		if !built[name] {
			return skipped, fmt.Errorf("build binaries: plugin %s (plugins/%s/main.go) does not exist; a Linux job needs it", name, name)
		}
	}
	if err := Lock(ctx, dir); err != nil {
		return skipped, err
	}
	return skipped, nil
}

// version is the core's version stamp as the Makefile computes it: `git
// describe --tags --always --dirty` in root, or "dev" without git or
// history.
func version(ctx context.Context, root string) string {
	cmd := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return "dev"
}

// Lock runs `<binDir>/gitlab-runner-kubevirt plugins lock` on binDir's
// plugin directory.
func Lock(ctx context.Context, binDir string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, CoreBinary), "plugins", "lock", "--plugin-dir", filepath.Join(binDir, PluginsDir))
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, buf.String())
	}
	return nil
}

// CheckBinDir checks that binDir holds the core, the required plugins and
// plugins.lock.
func CheckBinDir(binDir string) error {
	need := []string{filepath.Join(binDir, CoreBinary), filepath.Join(binDir, PluginsDir, "plugins.lock")}
	for _, p := range RequiredPlugins {
		need = append(need, filepath.Join(binDir, PluginsDir, PluginPrefix+p))
	}
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("bin dir %s: %w (run `make build` first)", binDir, err)
		}
	}
	return nil
}
