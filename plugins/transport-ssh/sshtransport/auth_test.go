package sshtransport

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

// TestPasswordLogin logs in with a password only (a throwaway account) and
// checks that neither the password nor the private key of another run ever
// reaches the log or an error.
func TestPasswordLogin(t *testing.T) {
	u := sshd.CreateUserForTest(t)
	srv := sshd.StartForTest(t, sshd.Options{User: u.Name, PasswordAuth: true})
	tr, logs := newTransport(t)
	target := &pluginv1.Target{Host: srv.Host(), Port: uint32(srv.Port()), Username: u.Name, Password: u.Password, HostKeys: []string{srv.HostPublicKey()}}

	tests := []struct {
		name     string
		password string
		wantErr  string
	}{
		{name: "right password", password: u.Password},
		{name: "wrong password", password: u.Password + "-wrong", wantErr: "unable to authenticate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target.Password = tt.password
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := tr.WaitReady(ctx, target)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("WaitReady error = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), tt.password) {
					t.Fatalf("the error quotes the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("WaitReady: %v", err)
			}
			r := execute(t, tr, &pluginv1.ExecStart{Target: target, Command: "id -un", Env: nil}, pluginapi.ExecIO{})
			if r.err != nil || strings.TrimSpace(r.stdout) != u.Name {
				t.Fatalf("Exec id -un = %v, want %s", r, u.Name)
			}
		})
	}
	if strings.Contains(logs.String(), u.Password) {
		t.Fatal("the transport logged the password")
	}
}

// TestNoSecretsInLogs runs key logins, a failing login and an Exec with a
// secret environment variable at trace level, then looks for the secrets
// in the log.
func TestNoSecretsInLogs(t *testing.T) {
	g := startGuest(t, sshd.Options{}, nil)
	tr, logs := newTransport(t)
	const secretValue = "glpat-very-secret-token"
	if _, err := tr.WaitReady(context.Background(), g.target); err != nil {
		t.Fatal(err)
	}
	r := execute(t, tr, &pluginv1.ExecStart{Target: g.target, Command: `test "$CI_JOB_TOKEN" = ` + shQuote(secretValue), Env: map[string]string{"CI_JOB_TOKEN": secretValue}}, pluginapi.ExecIO{})
	if r.err != nil || r.exit.GetCode() != 0 {
		t.Fatalf("Exec = %v", r)
	}
	bad := newKey(t)
	badTarget := &pluginv1.Target{Host: g.target.Host, Port: g.target.Port, Username: g.target.Username, PrivateKey: bad.PrivateKeyPEM, Password: "hunter2-password", HostKeys: g.target.HostKeys}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := tr.WaitReady(ctx, badTarget); err == nil {
		t.Fatal("WaitReady with a wrong key and password succeeded")
	}
	log := logs.String()
	if !strings.Contains(log, "CI_JOB_TOKEN") {
		t.Fatalf("the log does not name the env variable (is trace logging on?):\n%s", log)
	}
	secrets := map[string]string{
		"env value":           secretValue,
		"password":            "hunter2-password",
		"private key":         strings.Split(string(g.key.PrivateKeyPEM), "\n")[2],
		"rejected key":        strings.Split(string(bad.PrivateKeyPEM), "\n")[2],
		"private key heading": "PRIVATE KEY",
	}
	for what, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("the log contains the %s", what)
		}
	}
}

// TestSSHSignalRequests covers the path that sends SSH "signal" requests
// (used when the remote shell's pid is unknown, e.g. shell_dialect
// powershell): OpenSSH honours them for a non-root account.
func TestSSHSignalRequests(t *testing.T) {
	u := sshd.CreateUserForTest(t)
	key := newKey(t)
	srv := sshd.StartForTest(t, sshd.Options{User: u.Name, AuthorizedKeys: []string{key.AuthorizedKey}})
	target := &pluginv1.Target{Host: srv.Host(), Port: uint32(srv.Port()), Username: u.Name, PrivateKey: key.PrivateKeyPEM, HostKeys: []string{srv.HostPublicKey()},
		Options: map[string]string{"shell_dialect": "powershell", "kill_grace": "10s"}}
	tr, logs := newTransport(t)

	t.Run("forwarded signal", func(t *testing.T) {
		out := newNotifyWriter("ready\n")
		signals := make(chan string, 1)
		done := make(chan result, 1)
		go func() {
			exit, err := tr.Exec(context.Background(), &pluginv1.ExecStart{Target: target, Command: "echo ready; sleep " + uniqueSleep(t)}, pluginapi.ExecIO{Stdout: out, Signals: signals})
			done <- result{exit: exit, err: err}
		}()
		out.await(t, done)
		signals <- "USR1"
		if r := <-done; r.err != nil || r.exit.GetSignal() != "USR1" {
			t.Fatalf("Exec = %v, want death by USR1", r)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		marker := uniqueSleep(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan result, 1)
		go func() {
			exit, err := tr.Exec(ctx, &pluginv1.ExecStart{Target: target, Command: "sleep " + marker}, pluginapi.ExecIO{})
			done <- result{exit: exit, err: err}
		}()
		waitFor(t, "the remote sleep to start", func() bool { return len(pgrep(t, "^sleep "+marker)) > 0 })
		cancel()
		r := <-done
		if !errors.Is(r.err, context.Canceled) || r.exit.GetSignal() != "TERM" {
			t.Fatalf("Exec after cancel = %v, want TERM", r)
		}
		waitFor(t, "the remote sleep to be gone", func() bool { return len(pgrep(t, "sleep "+marker)) == 0 })
	})
	if log := logs.String(); !strings.Contains(log, "via=ssh-request") || strings.Contains(log, "via=kill") {
		t.Fatalf("the powershell dialect did not use SSH signal requests only:\n%s", log)
	}
}

// TestSessionLimit checks what happens when the guest's MaxSessions is
// reached: a second Exec is refused without dropping the connection that
// the first one runs on, and cancelling the first one still ends it (kill
// needs a second session, so an SSH signal request is sent instead).
func TestSessionLimit(t *testing.T) {
	u := sshd.CreateUserForTest(t)
	key := newKey(t)
	srv := sshd.StartForTest(t, sshd.Options{User: u.Name, AuthorizedKeys: []string{key.AuthorizedKey}, MaxSessions: 1})
	target := &pluginv1.Target{Host: srv.Host(), Port: uint32(srv.Port()), Username: u.Name, PrivateKey: key.PrivateKeyPEM, HostKeys: []string{srv.HostPublicKey()}}
	tr, logs := newTransport(t)
	marker := uniqueSleep(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := newNotifyWriter("started\n")
	done := make(chan result, 1)
	go func() {
		exit, err := tr.Exec(ctx, &pluginv1.ExecStart{Target: target, Command: "echo started; sleep " + marker}, pluginapi.ExecIO{Stdout: out})
		done <- result{exit: exit, err: err}
	}()
	out.await(t, done)

	second := execute(t, tr, &pluginv1.ExecStart{Target: target, Command: "true"}, pluginapi.ExecIO{})
	if second.err == nil || !strings.Contains(second.err.Error(), "open a channel") {
		t.Fatalf("second Exec beyond MaxSessions = %v, want a refused channel", second)
	}
	if h, _ := tr.Health(context.Background()); !strings.Contains(h.GetDescription(), "1 pooled") {
		t.Fatalf("the refusal dropped the connection: %s", h.GetDescription())
	}
	cancel()
	r := <-done
	if !errors.Is(r.err, context.Canceled) || r.exit.GetSignal() != "TERM" || r.exit.GetDisconnected() {
		t.Fatalf("first Exec after cancel = %v, want TERM on a live connection", r)
	}
	waitFor(t, "the remote sleep to be gone", func() bool { return len(pgrep(t, "sleep "+marker)) == 0 })
	if !strings.Contains(logs.String(), "signal=TERM via=ssh-request") {
		t.Fatalf("TERM did not fall back to an SSH signal request:\n%s", logs.String())
	}
}
