package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// maxShownOutput bounds the command output quoted in an error.
const maxShownOutput = 4000

// plugin is one first-party plugin: a main package ./plugins/<name>.
type plugin struct {
	// Name is the directory name, the <name> in the binary's file name.
	Name string
	// Pkg is the package path relative to the repository root.
	Pkg string
}

// File is the plugin binary's file name.
func (p plugin) File() string { return pluginapi.BinaryPrefix + p.Name }

// discoverPlugins returns every ./plugins/<name> directory that holds a
// main package, sorted by name. Directories without one (shared code such
// as plugins/internal, or a plugin whose main.go is not written yet) are
// reported on log and left out; a main package that fails to load is an
// error.
func discoverPlugins(ctx context.Context, log io.Writer, o *options) ([]plugin, error) {
	entries, err := os.ReadDir(filepath.Join(o.RepoRoot, "plugins"))
	if err != nil {
		return nil, fmt.Errorf("list plugins: %w", err)
	}
	var pkgs []string
	for _, e := range entries {
		if e.IsDir() {
			pkgs = append(pkgs, "./plugins/"+e.Name())
		}
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("no plugin directories under %s", filepath.Join(o.RepoRoot, "plugins"))
	}
	args := append([]string{"list", "-e", "-f", "{{.Name}}\t{{if .Error}}{{.Error}}{{end}}"}, pkgs...)
	out, err := runCmd(ctx, o.RepoRoot, nil, o.Go, args...)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(pkgs) {
		return nil, fmt.Errorf("go list printed %d lines for %d packages:\n%s", len(lines), len(pkgs), out)
	}
	var plugins []plugin
	for i, line := range lines {
		name, loadErr, _ := strings.Cut(line, "\t")
		switch {
		case name == "main" && loadErr != "":
			return nil, fmt.Errorf("plugin %s does not load: %s", pkgs[i], loadErr)
		case name == "main":
			plugins = append(plugins, plugin{Name: filepath.Base(pkgs[i]), Pkg: pkgs[i]})
		default:
			why := "package " + name
			if name == "" {
				why = loadErr
			}
			fmt.Fprintf(log, "not a plugin, left out: %s (%s)\n", pkgs[i], why)
		}
	}
	if len(plugins) == 0 {
		return nil, fmt.Errorf("no plugin main package under %s/plugins", o.RepoRoot)
	}
	slices.SortFunc(plugins, func(a, b plugin) int { return strings.Compare(a.Name, b.Name) })
	return plugins, nil
}

// compile cross-compiles the core and every plugin for p into
// root/opt/gitlab-runner-kubevirt (core) and .../plugins (plugins), with
// CGO disabled, -trimpath and stripped symbols, as `make build` does. Only
// the core gets -X main.version: each plugin keeps its own version.
func compile(ctx context.Context, log io.Writer, o *options, p platform, root string, plugins []plugin) error {
	bin := filepath.Join(root, filepath.FromSlash(installDir))
	pluginDir := filepath.Join(bin, pluginDirName)
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", pluginDir, err)
	}
	env := []string{"CGO_ENABLED=0", "GOOS=" + p.OS, "GOARCH=" + p.Arch}
	fmt.Fprintf(log, "compile %s: core\n", p)
	if _, err := runCmd(ctx, o.RepoRoot, env, o.Go, "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+o.Version,
		"-o", filepath.Join(bin, coreName), "./cmd/gitlab-runner-kubevirt"); err != nil {
		return fmt.Errorf("compile core for %s: %w", p, err)
	}
	// One go build for all plugins: it writes each main package to
	// <dir>/<last path element>, renamed below.
	tmp := filepath.Join(root, ".plugins-build")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", tmp + string(filepath.Separator)}
	names := make([]string, len(plugins))
	for i, pl := range plugins {
		args = append(args, pl.Pkg)
		names[i] = pl.Name
	}
	fmt.Fprintf(log, "compile %s: plugins %s\n", p, strings.Join(names, ", "))
	if _, err := runCmd(ctx, o.RepoRoot, env, o.Go, args...); err != nil {
		return fmt.Errorf("compile plugins for %s: %w", p, err)
	}
	for _, pl := range plugins {
		if err := os.Rename(filepath.Join(tmp, pl.Name), filepath.Join(pluginDir, pl.File())); err != nil {
			return fmt.Errorf("place plugin %s for %s: %w", pl.Name, p, err)
		}
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("remove %s: %w", tmp, err)
	}
	return nil
}

// runCmd runs name with args in dir, the current environment plus env, and
// returns its standard output. The error quotes the command and the tail of
// its combined output.
func runCmd(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		if msg == "" {
			msg = stdout.String()
		}
		if len(msg) > maxShownOutput {
			msg = "..." + msg[len(msg)-maxShownOutput:]
		}
		return nil, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(msg))
	}
	return stdout.Bytes(), nil
}
