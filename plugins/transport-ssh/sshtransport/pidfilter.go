package sshtransport

import (
	"bytes"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
)

// maxPidScan bounds how much stderr pidFilter holds back while looking for
// the pid line. Only the login shell's startup output (e.g. from .bashrc)
// can precede it.
const maxPidScan = 4 << 10

// pidFilter passes a command's stderr through, except for the first line
// "<token>:<pid>" that the POSIX command prefix prints (see buildCommand):
// it removes that line and records the pid. The pid is the remote login
// shell's, which sshd made a session and process group leader, so
// "kill -s SIG -- -<pid>" reaches the whole command.
//
// Write is called by one goroutine at a time (x/crypto/ssh's copier); Pid
// may be called concurrently.
type pidFilter struct {
	w      io.Writer
	prefix []byte // token + ":"
	buf    []byte
	done   bool
	pid    atomic.Int64
	once   sync.Once
	seen   chan struct{} // closed once the filter stopped looking
}

func newPidFilter(w io.Writer, token string) *pidFilter {
	return &pidFilter{w: w, prefix: []byte(token + ":"), seen: make(chan struct{})}
}

// Seen is closed once the filter stopped looking for the pid line: it
// found it, gave up, or was flushed.
func (f *pidFilter) Seen() <-chan struct{} { return f.seen }

func (f *pidFilter) stop() {
	f.done, f.buf = true, nil
	f.once.Do(func() { close(f.seen) })
}

// Pid returns the remote shell's pid, or 0 if it has not been seen.
func (f *pidFilter) Pid() int { return int(f.pid.Load()) }

func (f *pidFilter) Write(p []byte) (int, error) {
	if f.done {
		return f.w.Write(p)
	}
	f.buf = append(f.buf, p...)
	if i := bytes.Index(f.buf, f.prefix); i >= 0 {
		rest := f.buf[i+len(f.prefix):]
		if j := bytes.IndexByte(rest, '\n'); j >= 0 {
			if pid, err := strconv.Atoi(string(rest[:j])); err == nil && pid > 1 {
				f.pid.Store(int64(pid))
			}
			out := append(f.buf[:i:i], rest[j+1:]...)
			f.stop()
			if len(out) > 0 {
				if _, err := f.w.Write(out); err != nil {
					return 0, err
				}
			}
			return len(p), nil
		}
	}
	if len(f.buf) > maxPidScan {
		// Not a POSIX shell, or it printed no pid: stop looking.
		if err := f.Flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush passes on whatever is held back and stops looking for the pid
// line. Call it once the command's output has ended.
func (f *pidFilter) Flush() error {
	buf := f.buf
	f.stop()
	if len(buf) == 0 {
		return nil
	}
	_, err := f.w.Write(buf)
	return err
}
