//go:build !linux

package pluginapi

import "errors"

// errNotDetachable is returned where a process cannot detach.
var errNotDetachable = errors.New("this platform cannot detach a plugin")

// detachProcess is not supported outside Linux: the core then starts a
// fresh plugin in every stage.
func detachProcess() error { return errNotDetachable }
