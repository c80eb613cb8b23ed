// Package conformance checks that a plugin binary keeps the
// gitlab-runner-kubevirt plugin contract. A plugin author runs it from
// `go test` against their own built binary, the way the core will run it:
// launched with pluginapi.Launch (sha256 pinned, go-plugin handshake,
// AutoMTLS, an environment that holds only what the kit passes).
//
// An OS plugin (copy into the plugin's main package as conformance_test.go):
//
//	package main
//
//	import (
//		"testing"
//
//		"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/conformance"
//	)
//
//	func TestConformance(t *testing.T) {
//		bin := conformance.Build(t, ".", "my-os")
//		conformance.TestOSPlugin(t, bin, conformance.OSOptions{})
//	}
//
// A transport plugin also needs a guest to talk to; opts.Target returns it
// (plugins/transport-ssh/conformance_test.go starts a real OpenSSH sshd
// with test/sshd and logs in as a throwaway non-root account):
//
//	func TestConformance(t *testing.T) {
//		bin := conformance.Build(t, ".", "my-transport")
//		conformance.TestTransportPlugin(t, bin, conformance.TransportOptions{
//			Target: func(t *testing.T) *pluginv1.Target { return startGuest(t) },
//		})
//	}
//
// Checks (each a subtest, so `go test -run 'TestConformance/Render'` picks
// some):
//
//   - every plugin: Launch (name gitlab-runner-kubevirt-plugin-<name>,
//     checksum, handshake, AutoMTLS), APIVersion (1 is negotiated), GetInfo
//     (name matches the binary, kind, semantic version, api_versions has 1;
//     OS plugins: os_family and at least one shell), Health (STATE_OK),
//     OtherKindUnimplemented, Close (the process is gone, not a zombie) and
//     NoSecretsInLog (no password or private key handed to the plugin shows
//     up in its log, at trace level);
//   - OS plugins: Render/Valid (user-data, a datasource, a recipe whose
//     command contains {script}, a ".ext" script extension, a declared
//     shell), Render/Deterministic (equal input gives equal output except
//     crypt(3) salts), Render/InvalidInput (hostile usernames, hostnames,
//     keys, time zones and unknown options are InvalidArgument errors that
//     name the field) and Render/Concurrent;
//   - transport plugins: WaitReady, Exec (output and exit code, env and
//     workdir, stdin, no stdin, concurrent calls, cancellation ends the
//     remote command, TERM if the plugin declares "signal"), Upload (right
//     and wrong checksum) and HostKey (none pinned, or a wrong one, is
//     refused by WaitReady, Exec and Upload).
//
// No error, log line or failure message of the kit quotes a secret.
package conformance
