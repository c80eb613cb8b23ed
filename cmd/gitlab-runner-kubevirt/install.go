package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
)

// installedCoreName is the core binary's name inside the install
// directory, whatever the running executable is called.
const installedCoreName = "gitlab-runner-kubevirt"

func newInstallCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "install DIR",
		Short: "Copy this binary and its locked plugins into DIR (for init containers)",
		Long: `install copies the running gitlab-runner-kubevirt binary to DIR/gitlab-runner-kubevirt
and the plugins that plugins.lock pins, with plugins.lock itself, to
DIR/plugins/. It is meant for a Kubernetes init container: the container
image has no shell and no cp, and the runner container mounts the shared
volume that DIR lives on.

Each file is written to a temporary file in its target directory, synced and
renamed into place, so a reader never sees a half-written binary; modes are
kept (0755 binaries, 0644 plugins.lock). Every plugin's sha256 is checked
against plugins.lock while it is copied: install fails, leaving that plugin
unchanged, if a binary differs from what the lock pins. Plugin files the
lock does not name are not copied (the runner would ignore them). The source
plugin directory is --plugin-dir, else $GITLAB_RUNNER_KUBEVIRT_PLUGIN_DIR,
else plugins/ beside this binary.`,
		Example: `  # Kubernetes init container (image entrypoint is this binary):
  #   args: ["install", "/target"]   with an emptyDir mounted at /target
  gitlab-runner-kubevirt install /target`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("install takes exactly one argument, the target directory DIR; got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInstall(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), g.pluginDir, args[0])
		},
	}
}

// installItem is one file install copies.
type installItem struct {
	src, dst string
	mode     fs.FileMode
	// sha256 is the digest the copy must have; empty means unchecked.
	sha256 string
}

// runInstall copies the running executable and its locked plugins into dir.
func runInstall(ctx context.Context, out, errOut io.Writer, pluginDirFlag, dir string) error {
	if dir == "" {
		return inputerr.New("DIR", dir, "must be the directory to install into, e.g. /target")
	}
	dest, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("DIR %q: %w", dir, err)
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return fmt.Errorf("find this executable to copy: %w", err)
	}
	srcDir, err := pluginhost.ResolveDir(pluginDirFlag)
	if err != nil {
		return err
	}
	lock, err := pluginhost.ReadLock(srcDir.Path)
	if err != nil {
		return err
	}
	destPlugins := filepath.Join(dest, pluginhost.DefaultDirName)
	if err := refuseSameDir(dest, filepath.Dir(exe), "this binary's directory"); err != nil {
		return err
	}
	if err := refuseSameDir(destPlugins, srcDir.Path, "the source plugin directory"); err != nil {
		return err
	}
	exeInfo, err := os.Stat(exe)
	if err != nil {
		return fmt.Errorf("stat %s: %w", exe, err)
	}

	items, err := planPlugins(errOut, srcDir.Path, destPlugins, lock)
	if err != nil {
		return err
	}
	// The lock goes after the binaries it pins and the core last, so a
	// reader that sees the core also sees a complete plugin directory.
	items = append(items,
		installItem{src: filepath.Join(srcDir.Path, pluginhost.LockFileName), dst: filepath.Join(destPlugins, pluginhost.LockFileName), mode: 0o644},
		installItem{src: exe, dst: filepath.Join(dest, installedCoreName), mode: exeInfo.Mode().Perm()},
	)

	for _, d := range []string{dest, destPlugins} {
		if err := ensureDir(d); err != nil {
			return err
		}
	}
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("install into %s: %w", dest, err)
		}
		sum, err := copyAtomic(it)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(out, "installed %s (mode %04o, sha256 %s)\n", it.dst, it.mode, sum); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	for _, d := range []string{destPlugins, dest} {
		syncDir(d)
	}
	return nil
}

// planPlugins lists the locked plugin binaries to copy, with their modes
// and expected digests, and warns about plugin files the lock does not pin.
func planPlugins(errOut io.Writer, srcDir, destDir string, lock *pluginhost.Lock) ([]installItem, error) {
	cands, err := pluginhost.Discover(srcDir)
	if err != nil {
		return nil, err
	}
	found := map[string]pluginhost.Candidate{}
	for _, c := range cands {
		if _, ok := lock.Entry(c.File); !ok {
			fmt.Fprintf(errOut, "skipped %s: not in %s, so the runner would ignore it\n", c.Path, pluginhost.LockFileName)
			continue
		}
		found[c.File] = c
	}
	var items []installItem
	var errs []error
	for _, e := range lock.Plugins {
		c, ok := found[e.File]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s locks %s, but %s has no such file; reinstall it or run `gitlab-runner-kubevirt plugins lock` there", pluginhost.LockFileName, e.File, srcDir))
			continue
		case !c.Startable():
			errs = append(errs, fmt.Errorf("plugin %s: %s: %w", c.Path, c.Status, c.Err))
			continue
		}
		fi, err := os.Stat(c.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("stat plugin %s: %w", c.Path, err))
			continue
		}
		items = append(items, installItem{src: c.Path, dst: filepath.Join(destDir, e.File), mode: fi.Mode().Perm(), sha256: e.SHA256})
	}
	return items, errors.Join(errs...)
}

// refuseSameDir fails when dst and src are the same directory: copying a
// file onto itself would gain nothing and hide a wrong DIR.
func refuseSameDir(dst, src, what string) error {
	di, err := os.Stat(dst)
	if err != nil {
		return nil // dst does not exist yet, so it differs
	}
	si, err := os.Stat(src)
	if err != nil {
		return nil
	}
	if os.SameFile(di, si) {
		return inputerr.New("DIR", dst, "is %s; install into another directory", what)
	}
	return nil
}

// ensureDir creates dir (mode 0755) if needed and checks it is a directory.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// copyAtomic copies it.src to it.dst through a temporary file in dst's
// directory (written, chmodded, synced, then renamed), checks the digest
// when one is expected, and returns the copy's sha256.
func copyAtomic(it installItem) (sum string, err error) {
	src, err := os.Open(it.src)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", it.src, err)
	}
	defer src.Close()
	if fi, err := src.Stat(); err != nil {
		return "", fmt.Errorf("stat %s: %w", it.src, err)
	} else if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", it.src)
	}
	tmp, err := os.CreateTemp(filepath.Dir(it.dst), "."+filepath.Base(it.dst)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("install %s: %w", it.dst, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	if _, err = io.Copy(io.MultiWriter(tmp, h), src); err != nil {
		return "", fmt.Errorf("copy %s to %s: %w", it.src, tmp.Name(), err)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if it.sha256 != "" && sum != it.sha256 {
		err = fmt.Errorf("%s has sha256 %s but %s pins %s; run `gitlab-runner-kubevirt plugins lock` in its directory if the change is intended", it.src, sum, pluginhost.LockFileName, it.sha256)
		return "", err
	}
	if err = tmp.Chmod(it.mode); err != nil {
		return "", fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return "", fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return "", fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), it.dst); err != nil {
		return "", fmt.Errorf("rename %s to %s: %w", tmp.Name(), it.dst, err)
	}
	return sum, nil
}

// syncDir makes the renames in dir durable; failures only cost durability.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
