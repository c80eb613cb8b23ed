//go:build linux

package sshd

import (
	"context"
	"testing"
)

// StartForTest starts sshd for t and stops it in t.Cleanup; when the test
// failed, the cleanup logs the tail of sshd's log. Any start error fails
// the test (it never skips: a missing sshd is an installation problem).
func StartForTest(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("sshd %s log tail:\n%s", s.Addr(), s.LogTail(60))
		}
	})
	return s
}

// CreateUserForTest creates a throwaway account (see CreateUser) and
// removes it in t.Cleanup. Register it before the server that uses it, so
// the server stops first.
func CreateUserForTest(t testing.TB) *User {
	t.Helper()
	u, err := CreateUser(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Remove(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return u
}
