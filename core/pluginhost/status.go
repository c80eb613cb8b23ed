package pluginhost

import (
	"errors"
	"fmt"
)

// Status is the state of one plugin binary, as `plugins list` shows it.
type Status string

// Statuses of a plugin binary.
const (
	// StatusOK: locked, checksum and GetInfo match the lock.
	StatusOK Status = "ok"
	// StatusNotLocked: a valid plugin that plugins.lock does not list.
	StatusNotLocked Status = "not-locked"
	// StatusChecksumMismatch: the file's sha256 differs from the lock.
	StatusChecksumMismatch Status = "checksum-mismatch"
	// StatusMissing: plugins.lock lists a file the directory lacks.
	StatusMissing Status = "missing"
	// StatusInvalidName: the part after gitlab-runner-kubevirt-plugin- is
	// not a DNS-1123 label.
	StatusInvalidName Status = "invalid-name"
	// StatusNotRegular: a directory, device, socket or dangling symlink.
	StatusNotRegular Status = "not-regular"
	// StatusNotExecutable: no execute permission.
	StatusNotExecutable Status = "not-executable"
	// StatusNotAPlugin: it did not complete the go-plugin handshake.
	StatusNotAPlugin Status = "not-a-plugin"
	// StatusAPIUnsupported: it serves no plugin API version this core
	// speaks.
	StatusAPIUnsupported Status = "api-unsupported"
	// StatusInvalidInfo: its GetInfo answer breaks the contract (empty
	// name, version not semver, ...).
	StatusInvalidInfo Status = "invalid-info"
	// StatusKindMismatch: its GetInfo kind differs from the lock's.
	StatusKindMismatch Status = "kind-mismatch"
	// StatusInfoMismatch: its GetInfo name, version or API versions differ
	// from the lock's.
	StatusInfoMismatch Status = "info-mismatch"
	// StatusStartFailed: it could not be started for another reason.
	StatusStartFailed Status = "start-failed"
	// StatusCallFailed: it started but a call (GetInfo, Ping, Health)
	// failed.
	StatusCallFailed Status = "call-failed"
	// StatusUnhealthy: Health answered FAILING (or no state).
	StatusUnhealthy Status = "unhealthy"
	// StatusDegraded: Health answered DEGRADED; the plugin still works.
	StatusDegraded Status = "degraded"
)

// Error is a problem with one plugin binary: what it is (Status), which
// file, the cause and what the admin should do about it.
type Error struct {
	Status Status
	// File is the plugin binary's path.
	File string
	// Err is the cause.
	Err error
	// Hint says what to do; may be empty.
	Hint string
}

// Error formats as "plugin FILE: STATUS: cause; hint".
func (e *Error) Error() string {
	msg := fmt.Sprintf("plugin %s: %s: %v", e.File, e.Status, e.Err)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// StatusOf returns the Status of the first *Error in err's chain, or
// StatusStartFailed if there is none.
func StatusOf(err error) Status {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return StatusStartFailed
}

// relockHint is the advice for a lock that no longer matches its files.
const relockHint = "if the change is intended, re-run `gitlab-runner-kubevirt plugins lock`"
