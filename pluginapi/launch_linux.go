package pluginapi

import "syscall"

// childProcAttr makes the kernel kill a plugin when the core dies, even by
// SIGKILL, so no plugin outlives the stage that started it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
