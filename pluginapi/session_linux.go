package pluginapi

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// detachProcess makes the plugin survive the core process that started it:
// stdin, stdout and stderr become /dev/null (the pipes to a dead parent
// would otherwise SIGPIPE the plugin at its next log line), SIGHUP and
// SIGPIPE are ignored. The plugin must have been launched detachable
// (LaunchOptions.Detachable: no parent-death signal, which Linux keeps per
// thread and a goroutine cannot clear for the main thread); the parent
// watch of serve stops ending it. It has its own process group, so the
// runner's SIGTERM to the stage's group never reaches it.
func detachProcess() error {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer null.Close()
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(int(null.Fd()), fd, 0); err != nil {
			return fmt.Errorf("redirect fd %d to %s: %w", fd, os.DevNull, err)
		}
	}
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	return nil
}
