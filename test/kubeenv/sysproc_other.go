//go:build unix && !linux

package kubeenv

import "syscall"

// sysProcAttr puts a child in its own process group so Stop can signal the
// group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}
