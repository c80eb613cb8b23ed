// Package reliability is the executor's reliability and security suite:
// faults (API server down, VMI failed or deleted, guest sshd killed or
// frozen, transport plugin killed, SIGTERM and SIGKILL at every stage),
// hostile job variables and runner flags, plugin integrity, plugin
// environment isolation, host-key pinning against a man in the middle,
// RBAC least privilege and concurrent load. Every test runs the real
// binaries (built with go build) against a real kube-apiserver and etcd
// (test/kubeenv), with the VMI stand-in (test/standin) running a real
// OpenSSH sshd per guest, driven like gitlab-runner does (test/runner).
//
// Every test asserts what it leaves behind: no VMI, no Secret, no plugin
// or executor process, no remote command. RELIABILITY.md at the repository
// root is the matrix of faults, expected behaviour and the test proving it.
//
// The package has no API: it holds tests only. Environment variables:
//
//	E2E_BIN_DIR            test prebuilt binaries (make build's bin/) instead of building
//	RELIABILITY_LOAD_JOBS  concurrent jobs of TestLoad (default 20)
package reliability
