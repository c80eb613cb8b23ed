package standin

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// killTimeout bounds the wait for killed processes to disappear.
const killTimeout = 30 * time.Second

// killMatching SIGKILLs every process for which match holds, again and
// again until none is left (a process may fork while the others die), and
// waits until they are gone or reaped.
func killMatching(match func(pid int) bool) error {
	deadline := time.Now().Add(killTimeout)
	for {
		var pids []int
		for _, pid := range allPids() {
			if pid != os.Getpid() && match(pid) {
				pids = append(pids, pid)
			}
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v survived SIGKILL for %s", pids, killTimeout)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGSTOP)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// allPids lists the process ids in /proc.
func allPids() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	pids := make([]int, 0, len(entries))
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procUID returns the real uid of a living process, -1 for a zombie or a
// process that is gone (zombies only wait for their parent to reap them).
func procUID(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	uid := -1
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "State:") && (strings.Contains(line, "zombie") || strings.Contains(line, "dead")):
			return -1
		case strings.HasPrefix(line, "Uid:"):
			if f := strings.Fields(line); len(f) > 1 {
				uid, _ = strconv.Atoi(f[1])
			}
		}
	}
	return uid
}

// sshSessionOf reports whether pid runs in an SSH session that sshd
// accepted on addr ("ip port"): sshd puts "client-ip client-port server-ip
// server-port" in SSH_CONNECTION, and every process of the session
// inherits it, also after its parent died. This finds what a session left
// running in the background, which the process tree no longer shows.
func sshSessionOf(pid int, addr string) bool {
	if procUID(pid) < 0 {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		v, ok := bytes.CutPrefix(kv, []byte("SSH_CONNECTION="))
		if !ok {
			continue
		}
		f := strings.Fields(string(v))
		return len(f) == 4 && f[2]+" "+f[3] == addr
	}
	return false
}
