package pluginhost

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"time"
)

// go-plugin reports start failures as plain strings, and pluginapi.Launch
// rewords two of them; these are the phrases the host tells apart. The
// tests start real binaries that produce each of them, so a rewording in
// go-plugin or pluginapi fails a test.
const (
	msgTimeout        = "timeout while waiting for plugin to start"
	msgExitedEarly    = "plugin exited before we could connect"     // go-plugin
	msgExitedSilently = "exited before the go-plugin handshake"     // pluginapi
	msgStdout         = "on stdout before the go-plugin handshake"  // pluginapi
	msgUnrecognized   = "Unrecognized remote plugin message"        // go-plugin
	msgIncompatible   = "incompatible API version with plugin"      // go-plugin
	msgCoreProtocol   = "incompatible core API version with plugin" // go-plugin
	msgCoreParse      = "error parsing core protocol version"       // go-plugin
	msgChecksumLaunch = "no longer matches the pinned checksum"     // pluginapi
	msgChecksumRead   = "error verifying checksum"                  // go-plugin: SecureConfig could not read the file
)

// notPluginHint is the advice for a binary that failed the handshake.
const notPluginHint = "if it is not a gitlab-runner-kubevirt plugin, remove it from the plugin directory; if it is, fix it (see its log lines above)"

// classifyLaunch turns a pluginapi.Launch error into an *Error with the
// Status it means and advice.
func classifyLaunch(path string, err error, timeout time.Duration) error {
	msg := err.Error()
	e := &Error{File: path, Err: withoutPrefix(err, "launch plugin "+path+": ")}
	switch {
	case errors.Is(err, ErrClosed):
		return err
	case errors.Is(err, fs.ErrPermission):
		e.Status = StatusNotExecutable
		e.Hint = "let the user running gitlab-runner execute it (chmod 0755), or remove it"
	case errors.Is(err, syscall.ENOEXEC):
		e.Status = StatusNotAPlugin
		e.Hint = "it is not a program for this machine; remove it or install the build for this OS and architecture"
	case errors.Is(err, fs.ErrNotExist):
		e.Status = StatusMissing
		e.Hint = "the file (or the interpreter named on its #! line) does not exist; reinstall it"
	case strings.Contains(msg, msgIncompatible):
		e.Status = StatusAPIUnsupported
		e.Err = fmt.Errorf("it serves no plugin API version this gitlab-runner-kubevirt speaks (%v): %w", supportedAPIVersions(), e.Err)
		e.Hint = fmt.Sprintf("install a build of the plugin for plugin API %v, or upgrade gitlab-runner-kubevirt", supportedAPIVersions())
	case strings.Contains(msg, msgStdout):
		e.Status = StatusNotAPlugin
		e.Hint = notPluginHint
	case strings.Contains(msg, msgTimeout):
		e.Status = StatusNotAPlugin
		e.Err = fmt.Errorf("it did not complete the go-plugin handshake within %s: %w", timeout, e.Err)
		e.Hint = "it is not a gitlab-runner-kubevirt plugin (remove it from the plugin directory), or it starts too slowly (raise --start-timeout)"
	case strings.Contains(msg, msgExitedEarly), strings.Contains(msg, msgExitedSilently):
		e.Status = StatusNotAPlugin
		if strings.Contains(msg, msgExitedEarly) {
			e.Err = fmt.Errorf("it exited before the go-plugin handshake: %w", e.Err)
		}
		e.Hint = notPluginHint
	case strings.Contains(msg, msgUnrecognized), strings.Contains(msg, msgCoreProtocol), strings.Contains(msg, msgCoreParse):
		e.Status = StatusNotAPlugin
		e.Hint = notPluginHint
	case strings.Contains(msg, msgChecksumRead):
		e.Status = StatusNotRegular
		e.Hint = "the file could not be read to verify its sha256; let the user running gitlab-runner read it (chmod 0755), or reinstall it"
	case strings.Contains(msg, msgChecksumLaunch):
		e.Status = StatusChecksumMismatch
		e.Hint = "the file changed while it was being started; " + relockHint
	default:
		e.Status = StatusStartFailed
		e.Hint = "see the log lines above"
	}
	return e
}

// prefixTrimmed is an error whose message drops a prefix that repeats what
// the enclosing *Error already says (the plugin's path).
type prefixTrimmed struct {
	msg string
	err error
}

// Error returns the trimmed message.
func (e prefixTrimmed) Error() string { return e.msg }

// Unwrap returns the original error.
func (e prefixTrimmed) Unwrap() error { return e.err }

// withoutPrefix returns err with prefix cut from its message, if present.
func withoutPrefix(err error, prefix string) error {
	if msg, ok := strings.CutPrefix(err.Error(), prefix); ok {
		return prefixTrimmed{msg: msg, err: err}
	}
	return err
}
