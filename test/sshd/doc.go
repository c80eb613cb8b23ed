// Package sshd runs a real OpenSSH server (/usr/sbin/sshd) for tests.
//
// [Start] writes a private sshd_config, host key and authorized_keys file
// into a fresh temporary directory and runs
//
//	sshd -D -e -f <dir>/sshd_config
//
// on a loopback address, so transport code is exercised against the same
// server that runs in the guest images: real key exchange, real
// authentication, real exec/env/signal/sftp handling. Nothing is mocked.
//
// The server is configured for tests, not for production: StrictModes and
// PAM are off, the sftp subsystem is sshd's internal-sftp, MaxStartups and
// MaxSessions are high enough for load tests, and only [Options.User] (by
// default the user running the test, root in CI) may log in.
//
// Fault injection for transport tests:
//
//   - [Server.Pause] freezes sshd and everything it started with SIGSTOP,
//     like a frozen guest: TCP connections stay open but nothing answers;
//     [Server.Resume] thaws it.
//   - [Server.Kill] kills sshd and everything it started with SIGKILL, like
//     a guest that died: the kernel closes every connection.
//
// sshd must be installed (Debian package openssh-server); when it is
// missing, Start returns an error that says so, and tests must fail on it
// rather than skip.
//
// Password authentication needs a real system account. [CreateUser] makes a
// throwaway account with a random password (root only) and removes it again.
//
// Use from a test:
//
//	key, _ := sshd.NewKeyPair()
//	srv := sshd.StartForTest(t, sshd.Options{AuthorizedKeys: []string{key.AuthorizedKey}})
//	// dial srv.Addr(), pin srv.HostPublicKey(), log in with key.PrivateKeyPEM
package sshd
