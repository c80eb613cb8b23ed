package plugintest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// CheckReaped returns nil when no process with the given pid exists any
// more, i.e. it has exited and its parent has reaped it. It reads
// /proc/<pid>/stat (Linux), so a zombie (exited, not yet reaped) counts as
// still there: the error names its state. Without /proc it fails rather
// than report a process it cannot see as gone.
func CheckReaped(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("check reaped: pid %d: must be positive", pid)
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		// Without procfs every pid would look reaped.
		return fmt.Errorf("check reaped: pid %d: needs a mounted /proc (Linux): %w", pid, err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check reaped: pid %d: %w", pid, err)
	}
	// Format: "pid (comm) state ...". comm may contain spaces and
	// parentheses, so the state follows the last ')'.
	state := "?"
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 {
		if f := strings.Fields(string(stat[i+1:])); len(f) > 0 {
			state = f[0]
		}
	}
	if state == "Z" {
		return fmt.Errorf("process %d has exited but was not reaped (zombie)", pid)
	}
	return fmt.Errorf("process %d is still running (state %s)", pid, state)
}
