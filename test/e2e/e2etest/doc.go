// Package e2etest holds the scaffolding the end-to-end test suites share
// (test/e2e, test/e2e/realvm, test/reliability, and the stand-in's own
// tests): finding or building the binaries under test, the stand-in's
// behaviour registry and log, running a job under the runner harness,
// the checks every test makes that a job left nothing behind, and small
// readers of /proc.
//
// Helpers that check take a testing.TB and report through it; none of
// them asserts anything about time: the waits are bounded by the caller's
// context, a deadline against hangs, never a performance expectation.
package e2etest
