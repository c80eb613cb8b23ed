package sshtransport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// afterKillWait bounds the wait for the exit status after KILL, and for
// the session's goroutines after it is closed.
const afterKillWait = 5 * time.Second

// pidWait bounds the wait for the remote shell's pid line when a signal is
// to be sent right after the start.
const pidWait = 2 * time.Second

// Exec runs start.Command in one SSH session, streaming stdout and stderr
// to stdio as they arrive and stdin from stdio.Stdin, and forwarding
// stdio.Signals as SSH signal requests.
//
// The result tells apart a normal exit (Code), a death by signal (Signal,
// with Code 128+signal number), and a lost connection (Disconnected, Code
// -1: the command's outcome is unknown). An error means the command did not
// start: invalid input (InvalidArgument), no connection, or an environment
// variable the guest's sshd refused.
//
// When ctx ends, Exec sends TERM to the remote command, waits kill_grace
// for its exit status, sends KILL, closes the session, and returns the exit
// it observed together with an error wrapping ctx's.
//
// Exec does not wait for stdio.Stdin to reach EOF: the goroutine copying it
// ends when its Read returns.
func (t *Transport) Exec(ctx context.Context, start *pluginv1.ExecStart, stdio pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
	if start == nil {
		return nil, pluginapi.InvalidInput("exec start", "", "is required")
	}
	e, err := parseTarget(start.GetTarget())
	if err != nil {
		return nil, err
	}
	pidToken, err := randomToken()
	if err != nil {
		return nil, fmt.Errorf("exec on %s: %w", e, err)
	}
	command, err := buildCommand(start.GetCommand(), start.GetWorkdir(), e.opts.ShellDialect, pidToken)
	if err != nil {
		return nil, err
	}
	env := start.GetEnv()
	if err := validateEnv(env); err != nil {
		return nil, err
	}

	c, sess, err := connect(ctx, t, e, (*ssh.Client).NewSession)
	if err != nil {
		return nil, fmt.Errorf("exec on %s: %w", e, err)
	}
	defer sess.Close()

	names := make([]string, 0, len(env))
	for name := range env {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := sess.Setenv(name, env[name]); err != nil {
			if !c.alive() {
				return nil, fmt.Errorf("exec on %s: set environment variable %s: connection lost: %w", e, name, c.closeReason())
			}
			return nil, fmt.Errorf("exec on %s: the guest's sshd refused environment variable %s (%v): "+
				"list it in AcceptEnv in the guest's sshd_config (e.g. AcceptEnv %s), or pass it another way", e, name, err, name)
		}
	}
	sess.Stdout = orDiscard(stdio.Stdout)
	var filter *pidFilter
	if e.opts.ShellDialect == DialectPOSIX {
		filter = newPidFilter(orDiscard(stdio.Stderr), pidToken)
		sess.Stderr = filter
	} else {
		sess.Stderr = orDiscard(stdio.Stderr)
	}
	r := &running{t: t, e: e, c: c, sess: sess, filter: filter}
	if stdio.Stdin != nil {
		// Not sess.Stdin: Wait would wait for Stdin's EOF, and a caller's
		// stdin may stay open after the command exits.
		w, err := sess.StdinPipe()
		if err != nil {
			return nil, fmt.Errorf("exec on %s: stdin: %w", e, err)
		}
		go func() {
			_, _ = io.Copy(w, stdio.Stdin)
			_ = w.Close()
		}()
	}
	if err := sess.Start(command); err != nil {
		return nil, fmt.Errorf("exec on %s: start command: %w", e, err)
	}
	t.log.Debug("command started", "target", e.String(), "env", names, "workdir", start.GetWorkdir())

	waitc := make(chan error, 1)
	go func() { waitc <- sess.Wait() }()
	signals := stdio.Signals
	for {
		select {
		case err := <-waitc:
			if filter != nil {
				// The copiers are done: nothing writes to the filter now.
				if ferr := filter.Flush(); ferr != nil && err == nil {
					err = ferr
				}
			}
			return t.exitOf(e, c, err)
		case name, ok := <-signals:
			if !ok {
				signals = nil
				continue
			}
			sig, valid := normalizeSignal(name)
			if !valid {
				t.log.Warn("ignoring an unknown signal name", "target", e.String(), "signal", name)
				continue
			}
			r.signal(sig)
		case <-ctx.Done():
			exit := r.terminate(waitc)
			return exit, fmt.Errorf("exec on %s: %w", e, ctx.Err())
		}
	}
}

// running is a started command.
type running struct {
	t      *Transport
	e      *endpoint
	c      *conn
	sess   *ssh.Session
	filter *pidFilter // nil unless the POSIX dialect
}

// signal delivers sig to the remote command's process group. When the
// remote shell's pid is known it runs "kill -s SIG -- -PID" in a second
// session on the same connection: OpenSSH refuses SSH signal requests in
// sessions without post-authentication privilege separation, which
// includes every root login (measured with OpenSSH 9.2: "session
// signalling requires privilege separation"). Otherwise it sends an SSH
// "signal" request, which OpenSSH 7.9 and later deliver to the process
// group for other users. Exactly one of the two is used, so a command
// never receives a signal twice.
func (r *running) signal(sig string) {
	var err error
	via := "kill"
	if pid := r.pid(); pid > 0 {
		var opened bool
		if opened, err = r.kill(sig, pid); !opened {
			// kill never ran (e.g. MaxSessions reached): an SSH signal
			// request cannot make it a double delivery.
			r.t.log.Debug("no session for kill(1); falling back to an SSH signal request", "target", r.e.String(), "error", err)
			via = "ssh-request"
			err = r.sess.Signal(ssh.Signal(sig))
		}
	} else {
		via = "ssh-request"
		err = r.sess.Signal(ssh.Signal(sig))
	}
	if err != nil {
		r.t.log.Warn("could not deliver a signal", "target", r.e.String(), "signal", sig, "via", via, "error", err)
		return
	}
	r.t.log.Debug("signal sent", "target", r.e.String(), "signal", sig, "via", via)
}

// pid returns the remote shell's pid, waiting up to pidWait for the pid
// line (the shell prints it first thing, but it may still be in flight),
// or 0 when it is unknown.
func (r *running) pid() int {
	if r.filter == nil {
		return 0
	}
	select {
	case <-r.filter.Seen():
	case <-time.After(pidWait):
	}
	return r.filter.Pid()
}

// kill runs kill(1) for the process group pid in a new session, bounded by
// afterKillWait. opened reports whether the session could be opened (and
// so whether kill may have run).
func (r *running) kill(sig string, pid int) (opened bool, err error) {
	s, err := r.c.client.NewSession()
	if err != nil {
		return false, fmt.Errorf("open a session to send %s: %w", sig, err)
	}
	defer s.Close()
	done := make(chan error, 1)
	go func() { done <- s.Run(fmt.Sprintf("kill -s %s -- -%d", sig, pid)) }()
	select {
	case err = <-done:
	case <-time.After(afterKillWait):
		_ = s.Close()
		err = <-done
	}
	if err != nil {
		return true, fmt.Errorf("kill -s %s -- -%d: %w", sig, pid, err)
	}
	return true, nil
}

// terminate ends a running command after its caller gave up: TERM, up to
// kill_grace for the exit status, KILL, close.
func (r *running) terminate(waitc <-chan error) *pluginv1.ExecExit {
	e := r.e
	outcome := func(err error, how string) *pluginv1.ExecExit {
		exit := exitStatus(e, nil, err)
		exit.Message = "cancelled: " + how + "; " + exit.GetMessage()
		return exit
	}
	r.t.log.Debug("cancelled; sending TERM", "target", e.String(), "kill_grace", e.opts.KillGrace)
	r.signal("TERM")
	grace := time.NewTimer(e.opts.KillGrace)
	defer grace.Stop()
	select {
	case err := <-waitc:
		return outcome(err, "the command ended after TERM")
	case <-grace.C:
	}
	r.t.log.Debug("no exit after TERM; sending KILL", "target", e.String())
	r.signal("KILL")
	select {
	case err := <-waitc:
		return outcome(err, "the command ended after KILL")
	case <-time.After(afterKillWait):
	}
	_ = r.sess.Close()
	select {
	case err := <-waitc:
		return outcome(err, "no exit status after KILL; session closed")
	case <-time.After(afterKillWait):
		r.t.log.Warn("session did not end after close", "target", e.String())
		return &pluginv1.ExecExit{Code: -1, Disconnected: true, Message: "cancelled: no exit status after KILL; session closed"}
	}
}

// randomToken returns a fresh token that marks the pid line on stderr.
func randomToken() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return "gitlab-runner-kubevirt-pid-" + hex.EncodeToString(b), nil
}

// exitOf turns sess.Wait's result into an exit, or an error when output
// could not be forwarded.
func (t *Transport) exitOf(e *endpoint, c *conn, err error) (*pluginv1.ExecExit, error) {
	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	if err != nil && !errors.As(err, &exitErr) && !errors.As(err, &missing) && c.alive() {
		// Wait reports copy errors only after a clean exit status.
		return nil, fmt.Errorf("exec on %s: forward output: %w", e, err)
	}
	exit := exitStatus(e, c, err)
	t.log.Debug("command ended", "target", e.String(), "code", exit.GetCode(), "signal", exit.GetSignal(), "disconnected", exit.GetDisconnected())
	return exit, nil
}

// exitStatus classifies sess.Wait's result. c, when known, explains a lost
// connection.
func exitStatus(e *endpoint, c *conn, err error) *pluginv1.ExecExit {
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
		return &pluginv1.ExecExit{Code: 0}
	case errors.As(err, &exitErr):
		if sig := exitErr.Signal(); sig != "" {
			msg := "killed by signal " + sig
			if m := exitErr.Msg(); m != "" {
				msg += ": " + m
			}
			return &pluginv1.ExecExit{Code: int32(exitErr.ExitStatus()), Signal: sig, Message: msg}
		}
		return &pluginv1.ExecExit{Code: int32(exitErr.ExitStatus())}
	default:
		reason := err
		if c != nil {
			if r := c.closeReason(); r != nil {
				reason = r
			}
		}
		return &pluginv1.ExecExit{
			Code:         -1,
			Disconnected: true,
			Message:      fmt.Sprintf("lost the connection to %s before the command's exit status arrived (%v): its outcome is unknown", e, reason),
		}
	}
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
