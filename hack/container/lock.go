package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
)

// lockTimeout bounds `plugins lock` on the host build: it starts every
// plugin once.
const lockTimeout = 2 * time.Minute

// hostLock runs the host build's own `gitlab-runner-kubevirt plugins lock`
// in root's plugin directory, so every plugin answers GetInfo exactly as
// it will for the runner, and returns the lock it wrote. Binaries of other
// architectures cannot run here; [writeLockFor] reuses these entries for
// them with their own digests. What a plugin reports (name, kind, version,
// API versions, shells, capabilities) does not depend on the architecture
// it was compiled for.
func hostLock(ctx context.Context, log io.Writer, o *options, root string, plugins []plugin) (*pluginhost.Lock, error) {
	bin := filepath.Join(root, filepath.FromSlash(installDir))
	pluginDir := filepath.Join(bin, pluginDirName)
	ctx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	out, err := runCmd(ctx, root, nil, filepath.Join(bin, coreName), "--log-level", "warn", "plugins", "lock", "--plugin-dir", pluginDir)
	if err != nil {
		return nil, fmt.Errorf("lock the host build's plugins: %w", err)
	}
	fmt.Fprintf(log, "%s", out)
	lock, err := pluginhost.ReadLock(pluginDir)
	if err != nil {
		return nil, err
	}
	for _, pl := range plugins {
		if _, ok := lock.Entry(pl.File()); !ok {
			return nil, fmt.Errorf("%s/%s does not lock %s", pluginDir, pluginhost.LockFileName, pl.File())
		}
	}
	if len(lock.Plugins) != len(plugins) {
		return nil, fmt.Errorf("%s/%s locks %d plugins, %d were built", pluginDir, pluginhost.LockFileName, len(lock.Plugins), len(plugins))
	}
	return lock, nil
}

// writeLockFor writes root's plugins.lock from base's entries, each with
// the sha256 of root's own binary.
func writeLockFor(root string, base *pluginhost.Lock) (*pluginhost.Lock, error) {
	pluginDir := filepath.Join(root, filepath.FromSlash(installDir), pluginDirName)
	l := &pluginhost.Lock{APIVersion: base.APIVersion}
	for _, e := range base.Plugins {
		sum, err := pluginhost.FileSHA256(filepath.Join(pluginDir, e.File))
		if err != nil {
			return nil, err
		}
		e.SHA256 = sum
		l.Plugins = append(l.Plugins, e)
	}
	if err := pluginhost.WriteLock(pluginDir, l); err != nil {
		return nil, err
	}
	return l, nil
}
