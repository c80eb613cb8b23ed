// Package sshtransport implements the transport-ssh plugin: it reaches a
// guest over SSH (golang.org/x/crypto/ssh), runs commands on it and uploads
// files with SFTP (github.com/pkg/sftp).
//
// # Security
//
// The guest's host key is pinned: only keys listed in Target.HostKeys are
// accepted, and a mismatch is a [HostKeyMismatchError] naming the presented
// and the expected fingerprints. Private keys and passwords are never
// logged or put into errors; environment variables are logged by name only.
//
// # Connections
//
// A [Transport] keeps one SSH connection per target identity (host, port,
// user, a hash of the credentials, the pinned host keys and the keepalive
// settings), so WaitReady, Upload and Exec in one stage share a single
// connection; each Exec is one SSH session on it, each Upload one SFTP
// session. Close ends every connection.
//
// Every connection sends keepalive@openssh.com requests every
// keepalive_interval. When keepalive_count_max intervals pass in a row
// without any answer, the connection is closed and every Exec running on it
// ends with Disconnected=true. A guest that stops answering (frozen, or its
// network is gone) is therefore detected at most
//
//	(keepalive_count_max + 1) × keepalive_interval
//
// after its last answer: 20 s with the defaults. A guest whose connection
// is reset (its sshd or the whole guest died and the kernel or a router
// says so) is detected as soon as the reset arrives.
//
// # Options
//
// Target.Options (--transport-option key=value) accepts only these keys;
// any other key is an InvalidArgument error:
//
//	keepalive_interval   Go duration, 100ms..1h, default 5s
//	keepalive_count_max  integer, 1..100, default 3
//	kill_grace           Go duration, 0..10m, default 2s: how long a
//	                     cancelled Exec waits after TERM before KILL
//	connect_timeout      Go duration, 100ms..10m, default 10s: bound of one
//	                     dial + handshake + login attempt
//	shell_dialect        "posix" (default) or "powershell": how the working
//	                     directory is prefixed to a command
//
// # Signals and cancellation
//
// With the POSIX dialect every command is prefixed so that the remote login
// shell first prints its pid on stderr (a line with a random token, which
// Exec removes from the output). sshd makes that shell a process group
// leader, so a signal is delivered with "kill -s SIG -- -PID" in a second
// session on the same connection. SSH "signal" requests are used only when
// the pid is unknown (the powershell dialect, a shell that printed no pid):
// OpenSSH 7.9 and later honour them, but not in sessions without
// post-authentication privilege separation, which includes every root
// login (OpenSSH 9.2 logs "session signalling requires privilege
// separation"). Each signal is sent one way only, never twice. A signal
// that arrives while the login shell is still starting (before it printed
// its pid, e.g. during a slow ~/.bashrc) waits up to two seconds for the
// pid, then falls back to an SSH signal request, which root logins ignore.
//
// Cancelling an Exec's context sends TERM, waits kill_grace for the exit
// status, sends KILL, and closes the session. Processes the command moved
// out of its process group (setsid, daemons) are not reached.
package sshtransport
