//go:build !linux

package pluginapi

import "syscall"

// childProcAttr has no parent-death signal outside Linux; Close still ends
// the plugin on every ordinary exit path.
func childProcAttr(bool) *syscall.SysProcAttr { return nil }

// killProcessGroup is a no-op outside Linux: the plugin shares the core's
// process group there.
func killProcessGroup(int) {}
