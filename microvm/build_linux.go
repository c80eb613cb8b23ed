//go:build linux

package microvm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// BuildOptions configures Build.
type BuildOptions struct {
	// Guest is the recipe to build, one of Guests().
	Guest string
	// CacheHome replaces ${XDG_CACHE_HOME:-$HOME/.cache} as the cache root
	// (an absolute path); empty keeps the environment's.
	CacheHome string
	// Mirror overrides the recipe's Debian mirror (MICROVM_MIRROR);
	// empty keeps it.
	Mirror string
	// Log receives build.sh's progress (its stderr); nil discards it.
	Log io.Writer
}

// Build builds opts.Guest with the embedded build.sh and recipes, or finds
// it in the cache, and returns the image. ctx cancels the build (build.sh
// then removes its work directory).
func Build(ctx context.Context, opts BuildOptions) (*Image, error) {
	dir, err := run(ctx, opts, false)
	if err != nil {
		return nil, err
	}
	return LoadImage(dir)
}

// ImageDir returns the directory Build would produce for opts, without
// building (build.sh --print-dir).
func ImageDir(ctx context.Context, opts BuildOptions) (string, error) {
	return run(ctx, opts, true)
}

// run extracts the embedded build tree and runs build.sh.
func run(ctx context.Context, opts BuildOptions, printDir bool) (string, error) {
	if !guestPattern.MatchString(opts.Guest) {
		return "", fmt.Errorf("build guest %q: must match %s", opts.Guest, guestPattern)
	}
	if _, err := fs.Stat(recipes, "guests/"+opts.Guest); err != nil {
		return "", fmt.Errorf("build guest %q: no such recipe (have: %s)", opts.Guest, strings.Join(Guests(), ", "))
	}
	if opts.CacheHome != "" && !filepath.IsAbs(opts.CacheHome) {
		return "", fmt.Errorf("build guest %s: CacheHome %q: must be an absolute path", opts.Guest, opts.CacheHome)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		return "", fmt.Errorf("build guest %s: bash not found: install the Debian package bash", opts.Guest)
	}

	tree, err := os.MkdirTemp("", "microvm-recipes-")
	if err != nil {
		return "", fmt.Errorf("build guest %s: %w", opts.Guest, err)
	}
	defer os.RemoveAll(tree)
	if err := os.CopyFS(tree, recipes); err != nil {
		return "", fmt.Errorf("build guest %s: extract recipes: %w", opts.Guest, err)
	}

	args := []string{filepath.Join(tree, "build.sh")}
	if printDir {
		args = append(args, "--print-dir")
	}
	args = append(args, opts.Guest)
	cmd := exec.CommandContext(ctx, bash, args...)
	cmd.Env = os.Environ()
	if opts.CacheHome != "" {
		cmd.Env = append(cmd.Env, "XDG_CACHE_HOME="+opts.CacheHome)
	}
	if opts.Mirror != "" {
		cmd.Env = append(cmd.Env, "MICROVM_MIRROR="+opts.Mirror)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if opts.Log != nil {
		cmd.Stderr = io.MultiWriter(&stderr, opts.Log)
	}
	// Cancelling sends SIGTERM to build.sh and everything it runs
	// (debootstrap, apt, mkfs), so its EXIT trap gets to unmount and
	// remove its work directory; SIGKILL only if that takes a minute.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build guest %s: build.sh: %w: %s", opts.Guest, err, lastLines(stderr.String(), 30))
	}
	out := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	if !filepath.IsAbs(out) {
		return "", errors.New("build guest " + opts.Guest + ": build.sh printed no output directory")
	}
	return out, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
