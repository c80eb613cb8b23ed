package sshtransport

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

// freePort returns a loopback port nothing listens on (right now).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestWaitReadyLateListener(t *testing.T) {
	tr, _ := newTransport(t)
	hostKey, clientKey := newKey(t), newKey(t)
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	started := make(chan *sshd.Server, 1)
	failed := make(chan error, 1)
	go func() {
		time.Sleep(time.Second) // the guest boots
		s, err := sshd.Start(context.Background(), sshd.Options{ListenAddr: addr, User: guestUser.name, HostKey: hostKey.PrivateKeyPEM, AuthorizedKeys: []string{clientKey.AuthorizedKey}})
		if err != nil {
			failed <- err
			return
		}
		started <- s
	}()
	t.Cleanup(func() {
		select {
		case s := <-started:
			_ = s.Stop()
		case err := <-failed:
			t.Errorf("start sshd: %v", err)
		}
	})
	target := &pluginv1.Target{Host: "127.0.0.1", Port: uint32(port), Username: guestUser.name, PrivateKey: clientKey.PrivateKeyPEM, HostKeys: []string{hostKey.AuthorizedKey}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	attempts, err := tr.WaitReady(ctx, target)
	if err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if attempts < 2 {
		t.Fatalf("WaitReady took %d attempt(s), want retries while nothing listened", attempts)
	}
	if r := execute(t, tr, &pluginv1.ExecStart{Target: target, Command: "echo up"}, pluginapi.ExecIO{}); r.err != nil || r.stdout != "up\n" {
		t.Fatalf("Exec after WaitReady = %v", r)
	}
}

func TestWaitReadyDeadline(t *testing.T) {
	g := startGuest(t, sshd.Options{}, nil)
	otherHost, otherClient := newKey(t), newKey(t)
	withTarget := func(mutate func(*pluginv1.Target)) *pluginv1.Target {
		c := &pluginv1.Target{Host: g.target.Host, Port: g.target.Port, Username: g.target.Username, PrivateKey: g.target.PrivateKey, HostKeys: g.target.HostKeys}
		mutate(c)
		return c
	}
	tests := []struct {
		name   string
		target *pluginv1.Target
		want   []string
	}{
		{name: "nothing listens", target: withTarget(func(t2 *pluginv1.Target) { t2.Port = uint32(freePort(t)) }), want: []string{"connection refused"}},
		{name: "man in the middle", target: withTarget(func(t2 *pluginv1.Target) { t2.HostKeys = []string{otherHost.AuthorizedKey} }),
			want: []string{"host key mismatch", "the guest presented ssh-ed25519 SHA256:", "man-in-the-middle", "did not apply its first-boot data"}},
		{name: "key not authorized", target: withTarget(func(t2 *pluginv1.Target) { t2.PrivateKey = otherClient.PrivateKeyPEM }), want: []string{"unable to authenticate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, _ := newTransport(t)
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			attempts, err := tr.WaitReady(ctx, tt.target)
			if err == nil {
				t.Fatal("WaitReady succeeded")
			}
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("WaitReady error code = %v, want DeadlineExceeded (%v)", status.Code(err), err)
			}
			if attempts < 2 {
				t.Fatalf("WaitReady made %d attempt(s), want retries", attempts)
			}
			for _, want := range append([]string{"last error"}, tt.want...) {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// TestHostKeyMismatchNamesFingerprints checks the exact fingerprints in the
// error of a single Exec against a server presenting another key.
func TestHostKeyMismatchNamesFingerprints(t *testing.T) {
	g := startGuest(t, sshd.Options{}, nil)
	pinned := newKey(t)
	tr, _ := newTransport(t)
	target := &pluginv1.Target{Host: g.target.Host, Port: g.target.Port, Username: g.target.Username, PrivateKey: g.target.PrivateKey, HostKeys: []string{pinned.AuthorizedKey}}
	r := execute(t, tr, &pluginv1.ExecStart{Target: target, Command: "echo must not run"}, pluginapi.ExecIO{})
	if r.err == nil {
		t.Fatalf("Exec against an unpinned host key = %v, want an error", r)
	}
	presented := "ssh-ed25519 " + fingerprintOf(t, g.srv.HostPublicKey())
	expected := "ssh-ed25519 " + fingerprintOf(t, pinned.AuthorizedKey)
	for _, want := range []string{"presented " + presented, "only " + expected + " is pinned"} {
		if !strings.Contains(r.err.Error(), want) {
			t.Fatalf("error %q does not contain %q", r.err, want)
		}
	}
	if r.stdout != "" {
		t.Fatalf("the command ran: %q", r.stdout)
	}
}

func TestWaitReadyCancelled(t *testing.T) {
	tr, _ := newTransport(t)
	key, host := newKey(t), newKey(t)
	target := &pluginv1.Target{Host: "127.0.0.1", Port: uint32(freePort(t)), Username: "u", PrivateKey: key.PrivateKeyPEM, HostKeys: []string{host.AuthorizedKey}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(300 * time.Millisecond)
		cancel()
	}()
	_, err := tr.WaitReady(ctx, target)
	if status.Code(err) != codes.Canceled || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("WaitReady error = %v, want Canceled with the last cause", err)
	}
}
