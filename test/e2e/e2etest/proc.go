package e2etest

import (
	"os"
	"strconv"
	"strings"
)

// AllPids returns the pids in /proc except this process's.
func AllPids() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Cmdline returns pid's command line, arguments separated by spaces (""
// if gone).
func Cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// PidsWithCmdline returns the processes (other than this one) whose
// command line contains needle.
func PidsWithCmdline(needle string) []int {
	var pids []int
	for _, p := range AllPids() {
		if strings.Contains(Cmdline(p), needle) {
			pids = append(pids, p)
		}
	}
	return pids
}
