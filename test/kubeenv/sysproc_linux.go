package kubeenv

import "syscall"

// sysProcAttr puts a child in its own process group (so Stop can signal the
// group) and asks the kernel to kill it if this process dies first, so a
// crashed or killed test binary leaves no etcd or kube-apiserver behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}
