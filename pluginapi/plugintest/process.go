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
	state, err := procState("check reaped", pid)
	switch {
	case err != nil:
		return err
	case state == "":
		return nil
	case state == "Z":
		return fmt.Errorf("process %d has exited but was not reaped (zombie)", pid)
	}
	return fmt.Errorf("process %d is still running (state %s)", pid, state)
}

// CheckExited returns nil once the process with the given pid has ended:
// it no longer exists, or it has exited and only waits for its parent to
// reap it (a zombie). Use it for a process the caller is not the parent
// of, such as a detached plugin whose parent ended and whose new parent
// (init, or a container's pid 1) reaps it whenever it does; use
// [CheckReaped] for the caller's own children. While the process runs, the
// error names its state. It reads /proc/<pid>/stat (Linux), and without
// /proc it fails rather than report a process it cannot see as ended.
func CheckExited(pid int) error {
	state, err := procState("check exited", pid)
	switch {
	case err != nil:
		return err
	case state == "", state == "Z":
		return nil
	}
	return fmt.Errorf("process %d is still running (state %s)", pid, state)
}

// procState returns the state letter of process pid from /proc/<pid>/stat
// ("R", "S", "Z", ...), or "" when there is no such process. what prefixes
// errors.
func procState(what string, pid int) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("%s: pid %d: must be positive", what, pid)
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		// Without procfs every pid would look gone.
		return "", fmt.Errorf("%s: pid %d: needs a mounted /proc (Linux): %w", what, pid, err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%s: pid %d: %w", what, pid, err)
	}
	// Format: "pid (comm) state ...". comm may contain spaces and
	// parentheses, so the state follows the last ')'.
	state := "?"
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 {
		if f := strings.Fields(string(stat[i+1:])); len(f) > 0 {
			state = f[0]
		}
	}
	return state, nil
}
