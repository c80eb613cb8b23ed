package sshtransport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

func TestExec(t *testing.T) {
	g := startGuest(t, sshd.Options{}, nil)
	tr, _ := newTransport(t)

	workdir := filepath.Join(guestDir(t), `dir with 'quotes' and $x`)
	if err := os.Mkdir(workdir, 0o755); err != nil {
		t.Fatal(err)
	}
	var lines, outWant, errWant strings.Builder
	for i := 1; i <= 300; i++ {
		fmt.Fprintf(&outWant, "out %d\n", i)
		fmt.Fprintf(&errWant, "err %d\n", i)
	}
	lines.WriteString(`i=1; while [ $i -le 300 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done`)
	bigStdin := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	bigSum := sha256.Sum256([]byte(bigStdin))

	tests := []struct {
		name       string
		command    string
		env        map[string]string
		workdir    string
		stdin      io.Reader
		wantCode   int32
		wantSignal string
		wantStdout string
		wantStderr string
	}{
		{name: "exit 0", command: "true"},
		{name: "exit 3", command: "exit 3", wantCode: 3},
		{name: "exit 255", command: "exit 255", wantCode: 255},
		{name: "killed by signal", command: "echo before; kill -KILL $$", wantCode: 128 + 9, wantSignal: "KILL", wantStdout: "before\n"},
		{name: "stdout and stderr keep their order", command: lines.String(), wantStdout: outWant.String(), wantStderr: errWant.String()},
		{name: "stdin passthrough", command: "cat", stdin: strings.NewReader("line 1\nline 2\n"), wantStdout: "line 1\nline 2\n"},
		{name: "large stdin", command: "sha256sum | cut -d' ' -f1", stdin: strings.NewReader(bigStdin), wantStdout: hex.EncodeToString(bigSum[:]) + "\n"},
		{name: "nil stdin is closed at once", command: "cat; echo eof", wantStdout: "eof\n"},
		{name: "env", command: `printf '%s|%s' "$GREETING" "$TRICKY"`, env: map[string]string{"GREETING": "hello world", "TRICKY": `it's "$HOME" ` + "`id`"}, wantStdout: `hello world|it's "$HOME" ` + "`id`"},
		{name: "workdir", command: "pwd", workdir: workdir, wantStdout: workdir + "\n"},
		// The guest account's shell is dash: cd fails with status 2.
		{name: "missing workdir fails the command", command: "echo ran", workdir: "/nonexistent/dir", wantCode: 2, wantStderr: "can't cd to /nonexistent/dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := execute(t, tr, &pluginv1.ExecStart{Target: g.target, Command: tt.command, Env: tt.env, Workdir: tt.workdir}, pluginapi.ExecIO{Stdin: tt.stdin})
			if r.err != nil {
				t.Fatalf("Exec: %v", r.err)
			}
			if r.exit.GetCode() != tt.wantCode || r.exit.GetSignal() != tt.wantSignal || r.exit.GetDisconnected() {
				t.Fatalf("exit = %v, want code %d signal %q", r.exit, tt.wantCode, tt.wantSignal)
			}
			if r.stdout != tt.wantStdout {
				t.Fatalf("stdout = %q, want %q", r.stdout, tt.wantStdout)
			}
			if tt.wantStderr != "" && !strings.Contains(r.stderr, tt.wantStderr) || tt.wantStderr == "" && r.stderr != "" {
				t.Fatalf("stderr = %q, want %q", r.stderr, tt.wantStderr)
			}
		})
	}
}

func TestExecInvalidInput(t *testing.T) {
	tr, _ := newTransport(t)
	key, host := newKey(t), newKey(t)
	target := &pluginv1.Target{Host: "127.0.0.1", Port: 1, Username: "u", PrivateKey: key.PrivateKeyPEM, HostKeys: []string{host.AuthorizedKey}}
	tests := []struct {
		name    string
		start   *pluginv1.ExecStart
		wantErr string
	}{
		{name: "no start", start: nil, wantErr: "exec start"},
		{name: "no target", start: &pluginv1.ExecStart{Command: "true"}, wantErr: "target"},
		{name: "empty command", start: &pluginv1.ExecStart{Target: target}, wantErr: `command ""`},
		{name: "bad env name", start: &pluginv1.ExecStart{Target: target, Command: "true", Env: map[string]string{"A B": "x"}}, wantErr: `env name "A B"`},
		{name: "unknown option", start: &pluginv1.ExecStart{Target: &pluginv1.Target{Host: "h", Username: "u", Password: "p", HostKeys: []string{host.AuthorizedKey}, Options: map[string]string{"x": "y"}}, Command: "true"}, wantErr: `option "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exit, err := tr.Exec(context.Background(), tt.start, pluginapi.ExecIO{})
			if exit != nil || !pluginapi.IsInvalidInput(err) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Exec = %v, %v; want InvalidArgument containing %q", exit, err, tt.wantErr)
			}
		})
	}
}

func TestExecStreamsOutput(t *testing.T) {
	g := startGuest(t, sshd.Options{}, nil)
	tr, _ := newTransport(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := newNotifyWriter("first\n")
	done := make(chan result, 1)
	go func() {
		exit, err := tr.Exec(ctx, &pluginv1.ExecStart{Target: g.target, Command: "echo first; sleep " + uniqueSleep(t)}, pluginapi.ExecIO{Stdout: out})
		done <- result{exit: exit, err: err}
	}()
	// The command sleeps for 16 minutes: output that arrives now was
	// streamed, not buffered until the end.
	out.await(t, done)
	cancel()
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Exec after cancel = %v, want context.Canceled", r)
	}
}

func TestExecEnvRefused(t *testing.T) {
	g := startGuest(t, sshd.Options{AcceptEnv: []string{"LANG"}}, nil)
	tr, _ := newTransport(t)
	const secret = "s3cr3t-value"
	r := execute(t, tr, &pluginv1.ExecStart{Target: g.target, Command: "true", Env: map[string]string{"LANG": "C.UTF-8", "CI_TOKEN": secret}}, pluginapi.ExecIO{})
	if r.err == nil {
		t.Fatalf("Exec with a refused variable = %v, want an error", r)
	}
	for _, want := range []string{"refused environment variable CI_TOKEN", "AcceptEnv"} {
		if !strings.Contains(r.err.Error(), want) {
			t.Fatalf("error %q does not contain %q", r.err, want)
		}
	}
	if strings.Contains(r.err.Error(), secret) {
		t.Fatalf("the error quotes the variable's value: %v", r.err)
	}
}

func TestExecSignalForwarded(t *testing.T) {
	g := startGuest(t, sshd.Options{}, nil)
	tr, _ := newTransport(t)
	tests := []struct {
		name, signal, want string
	}{
		{name: "INT", signal: "INT", want: "INT"},
		{name: "SIGTERM spelling", signal: "SIGTERM", want: "TERM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := newNotifyWriter("ready\n")
			signals := make(chan string, 2)
			done := make(chan result, 1)
			go func() {
				exit, err := tr.Exec(context.Background(), &pluginv1.ExecStart{Target: g.target, Command: "echo ready; exec sleep " + uniqueSleep(t)},
					pluginapi.ExecIO{Stdout: out, Signals: signals})
				done <- result{exit: exit, err: err}
			}()
			out.await(t, done)
			signals <- "NOSUCHSIG" // ignored with a warning
			signals <- tt.signal
			r := <-done
			if r.err != nil || r.exit.GetSignal() != tt.want || r.exit.GetDisconnected() {
				t.Fatalf("Exec = %v, want death by %s", r, tt.want)
			}
		})
	}
}

func TestExecCancelEndsRemoteCommand(t *testing.T) {
	tests := []struct {
		name       string
		command    string // %s is the unique sleep duration
		killGrace  string
		wantSignal string
	}{
		{name: "TERM suffices", command: "sleep %s", killGrace: "10s", wantSignal: "TERM"},
		{name: "TERM ignored, KILL follows", command: "trap '' TERM; echo trapped; sleep %s; echo survived", killGrace: "300ms", wantSignal: "KILL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := startGuest(t, sshd.Options{}, map[string]string{"kill_grace": tt.killGrace})
			tr, logs := newTransport(t)
			marker := uniqueSleep(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan result, 1)
			go func() {
				exit, err := tr.Exec(ctx, &pluginv1.ExecStart{Target: g.target, Command: fmt.Sprintf(tt.command, marker)}, pluginapi.ExecIO{})
				done <- result{exit: exit, err: err}
			}()
			waitFor(t, "the remote sleep to start", func() bool { return len(pgrep(t, "^sleep "+marker)) > 0 })
			cancel()
			r := <-done
			if !errors.Is(r.err, context.Canceled) {
				t.Fatalf("Exec after cancel: %v, want context.Canceled", r)
			}
			if r.exit.GetSignal() != tt.wantSignal {
				t.Fatalf("exit after cancel = %v, want signal %s", r.exit, tt.wantSignal)
			}
			waitFor(t, "the remote sleep to be gone", func() bool { return len(pgrep(t, "sleep "+marker)) == 0 })
			// A POSIX shell's pid is known: signals go through kill(1),
			// which also works for root logins.
			if !strings.Contains(logs.String(), "signal=TERM via=kill") {
				t.Fatalf("TERM was not sent with kill(1):\n%s", logs.String())
			}
		})
	}
}

func TestExecDisconnected(t *testing.T) {
	tests := []struct {
		name        string
		options     map[string]string
		fault       func(*sshd.Server) error
		wantMessage string
	}{
		{name: "guest died", fault: (*sshd.Server).Kill, wantMessage: "lost the connection"},
		{
			name: "guest frozen",
			// Detection bound: (2+1) x 200ms.
			options:     map[string]string{"keepalive_interval": "200ms", "keepalive_count_max": "2"},
			fault:       (*sshd.Server).Pause,
			wantMessage: "no answer to keepalives for 2 intervals of 200ms",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := startGuest(t, sshd.Options{}, tt.options)
			tr, _ := newTransport(t)
			out := newNotifyWriter("started\n")
			done := make(chan result, 1)
			go func() {
				exit, err := tr.Exec(context.Background(), &pluginv1.ExecStart{Target: g.target, Command: "echo started; sleep " + uniqueSleep(t)}, pluginapi.ExecIO{Stdout: out})
				done <- result{exit: exit, err: err}
			}()
			out.await(t, done)
			if err := tt.fault(g.srv); err != nil {
				t.Fatal(err)
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("Exec did not notice the fault within 60s")
			}
			if r.err != nil || !r.exit.GetDisconnected() || r.exit.GetCode() != -1 {
				t.Fatalf("Exec = %v, want Disconnected with code -1", r)
			}
			if !strings.Contains(r.exit.GetMessage(), tt.wantMessage) {
				t.Fatalf("message %q does not contain %q", r.exit.GetMessage(), tt.wantMessage)
			}
			if h, _ := tr.Health(context.Background()); !strings.Contains(h.GetDescription(), "0 pooled") {
				t.Fatalf("the dead connection is still pooled: %s", h.GetDescription())
			}
		})
	}
}

// TestConnectionReuse checks that WaitReady, Upload and Exec for one target
// share one SSH connection: sshd logs one login.
func TestConnectionReuse(t *testing.T) {
	g := startGuest(t, sshd.Options{}, nil)
	tr, _ := newTransport(t)
	ctx := context.Background()
	if _, err := tr.WaitReady(ctx, g.target); err != nil {
		t.Fatal(err)
	}
	content := []byte("echo hi\n")
	sum := sha256.Sum256(content)
	path := filepath.Join(guestDir(t), "s.sh")
	if _, err := tr.Upload(ctx, &pluginv1.UploadHeader{Target: g.target, Path: path, Mode: 0o700, Size: int64(len(content)), Sha256: hex.EncodeToString(sum[:])}, strings.NewReader(string(content))); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if r := execute(t, tr, &pluginv1.ExecStart{Target: g.target, Command: path}, pluginapi.ExecIO{}); r.err != nil || r.stdout != "hi\n" {
			t.Fatalf("Exec #%d = %v", i, r)
		}
	}
	if n := strings.Count(g.srv.LogTail(1000), "Accepted publickey"); n != 1 {
		t.Fatalf("sshd accepted %d logins, want 1 shared connection", n)
	}
	if h, _ := tr.Health(ctx); !strings.Contains(h.GetDescription(), "1 pooled") {
		t.Fatalf("Health = %q, want 1 pooled connection", h.GetDescription())
	}
}

// TestReconnectAfterRestart checks that a pooled connection to a guest that
// went away is replaced: a new sshd on the same address serves the next
// call.
func TestReconnectAfterRestart(t *testing.T) {
	hostKey := newKey(t)
	g := startGuest(t, sshd.Options{HostKey: hostKey.PrivateKeyPEM}, nil)
	tr, _ := newTransport(t)
	if r := execute(t, tr, &pluginv1.ExecStart{Target: g.target, Command: "echo one"}, pluginapi.ExecIO{}); r.err != nil || r.stdout != "one\n" {
		t.Fatalf("first Exec = %v", r)
	}
	if err := g.srv.Stop(); err != nil {
		t.Fatal(err)
	}
	sshd.StartForTest(t, sshd.Options{ListenAddr: g.srv.Addr(), User: guestUser.name, HostKey: hostKey.PrivateKeyPEM, AuthorizedKeys: []string{g.key.AuthorizedKey}})
	if _, err := tr.WaitReady(context.Background(), g.target); err != nil {
		t.Fatal(err)
	}
	if r := execute(t, tr, &pluginv1.ExecStart{Target: g.target, Command: "echo two"}, pluginapi.ExecIO{}); r.err != nil || r.stdout != "two\n" {
		t.Fatalf("Exec after restart = %v", r)
	}
}
