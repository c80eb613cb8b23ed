package pluginapi

import "syscall"

// childProcAttr makes the kernel kill a plugin when the core dies, even by
// SIGKILL, so no plugin outlives the stage that started it. The plugin gets
// its own process group: GitLab's SIGTERM to the stage's group reaches the
// core only (which then closes its plugins in order), and killProcessGroup
// can end whatever the plugin started.
//
// A detachable plugin gets no parent-death signal (it must survive the
// core once detached); until it detaches, pluginapi's serve ends it when
// its parent goes (watchParent).
func childProcAttr(detachable bool) *syscall.SysProcAttr {
	if detachable {
		return &syscall.SysProcAttr{Setpgid: true}
	}
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// killProcessGroup SIGKILLs every process in the plugin's process group. A
// child the plugin left behind (a shell script's `sleep`) would otherwise
// keep the plugin's stdout pipe open, and go-plugin waits for that pipe to
// close before Kill returns.
func killProcessGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
