package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

// e2eVersion is linked into the test build to prove -ldflags works.
const e2eVersion = "0.0.0-e2e"

// Set up once by TestMain: the plugin binary and the guest account.
var (
	pluginPath string
	pluginSum  []byte
	guestUser  struct {
		name     string
		uid, gid int
	}
)

// TestMain builds the real plugin binary with go build, creates a
// throwaway guest account with /bin/sh as shell (like a guest image's CI
// user; this needs root, and the tests fail without it), runs the tests
// against the binary through pluginapi.Launch, and checks for leaked
// goroutines.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "transport-ssh-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		pluginPath = filepath.Join(dir, pluginapi.BinaryPrefix+"transport-ssh")
		if err := build(pluginPath); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		u, err := sshd.CreateUser(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() {
			if err := u.Remove(context.Background()); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}()
		guestUser.name, guestUser.uid, guestUser.gid = u.Name, u.UID, u.GID
		return m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func build(out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go tool is needed to build the plugin under test: %w", err)
	}
	cmd := exec.Command(goBin, "build", "-ldflags", "-X main.version="+e2eVersion, "-o", out, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build the plugin: %w\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	pluginSum = sum[:]
	return nil
}

// launch starts the plugin binary and closes it in t.Cleanup, checking that
// the process is gone.
func launch(t *testing.T) (*pluginapi.Plugin, pluginapi.TransportPlugin, *plugintest.SyncBuffer) {
	t.Helper()
	logs := &plugintest.SyncBuffer{}
	p, err := pluginapi.Launch(context.Background(), pluginapi.LaunchOptions{
		Path:   pluginPath,
		SHA256: pluginSum,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs}),
		Env:    []string{pluginapi.LogLevelEnv + "=trace"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if !p.Exited() {
			t.Errorf("plugin pid %d still running after Close", p.Pid())
		}
		if t.Failed() {
			t.Logf("plugin log:\n%s", logs.String())
		}
	})
	tr, err := p.Transport()
	if err != nil {
		t.Fatal(err)
	}
	return p, tr, logs
}

// guestDir returns a fresh directory owned by the guest account.
func guestDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "transport-ssh-guest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chown(dir, guestUser.uid, guestUser.gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startGuest starts a real sshd and returns it with a key-login target.
func startGuest(t *testing.T, options map[string]string) (*sshd.Server, *pluginv1.Target) {
	t.Helper()
	key, err := sshd.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	srv := sshd.StartForTest(t, sshd.Options{User: guestUser.name, AuthorizedKeys: []string{key.AuthorizedKey}})
	return srv, &pluginv1.Target{
		Host: srv.Host(), Port: uint32(srv.Port()), Username: guestUser.name,
		PrivateKey: key.PrivateKeyPEM, HostKeys: []string{srv.HostPublicKey()}, Options: options,
	}
}

func uniqueSleep(t *testing.T) string {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("986.%06d", n.Int64())
}

func pgrep(t *testing.T, pattern string) []string {
	t.Helper()
	out, err := exec.Command("pgrep", "-f", pattern).Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		return nil
	}
	if err != nil {
		t.Fatalf("pgrep -f %q: %v (install Debian package procps)", pattern, err)
	}
	return strings.Fields(string(out))
}

// waitFor polls cond; the deadline only keeps a broken test from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type execResult struct {
	exit *pluginv1.ExecExit
	err  error
}

// await returns the Exec result; the deadline only keeps a broken test
// from hanging (and lets its cleanup print the plugin's log).
func await(t *testing.T, done <-chan execResult) execResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(60 * time.Second):
		t.Fatal("Exec did not return within 60s")
		return execResult{}
	}
}

func TestPluginInfo(t *testing.T) {
	p, _, _ := launch(t)
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := info.GetInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetName() != "transport-ssh" || got.GetKind() != pluginv1.Kind_KIND_TRANSPORT || got.GetVersion() != e2eVersion {
		t.Fatalf("GetInfo = %v, want transport-ssh, KIND_TRANSPORT, version %s (from -ldflags)", got, e2eVersion)
	}
	if p.APIVersion() != pluginapi.APIVersion1 {
		t.Fatalf("negotiated API version %d", p.APIVersion())
	}
	h, err := info.Health(ctx)
	if err != nil || h.GetState() != pluginv1.HealthResponse_STATE_OK {
		t.Fatalf("Health = %v, %v", h, err)
	}
}

// TestPluginStage does what one run stage does: wait for the guest, upload
// the script, run it with stdin, env and a working directory.
func TestPluginStage(t *testing.T) {
	srv, target := startGuest(t, nil)
	_, tr, _ := launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := tr.WaitReady(ctx, target); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	dir := guestDir(t)
	script := []byte("#!/bin/sh\nread line\necho \"stdout: $line in $(pwd) for $JOB_NAME\"\necho 'stderr: done' >&2\nexit 3\n")
	// Pad the script beyond one gRPC chunk so the upload streams.
	script = append(script, []byte("# "+strings.Repeat("x", 200<<10)+"\n")...)
	sum := sha256.Sum256(script)
	path := filepath.Join(dir, "step_script.sh")
	resp, err := tr.Upload(ctx, &pluginv1.UploadHeader{Target: target, Path: path, Mode: 0o700, Size: int64(len(script)), Sha256: hex.EncodeToString(sum[:])}, bytes.NewReader(script))
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if resp.GetSha256() != hex.EncodeToString(sum[:]) || resp.GetSize() != int64(len(script)) {
		t.Fatalf("Upload = %v", resp)
	}
	var stdout, stderr bytes.Buffer
	exit, err := tr.Exec(ctx, &pluginv1.ExecStart{Target: target, Command: path, Env: map[string]string{"JOB_NAME": "build"}, Workdir: dir},
		pluginapi.ExecIO{Stdin: strings.NewReader("hello\n"), Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if exit.GetCode() != 3 || exit.GetDisconnected() || exit.GetSignal() != "" {
		t.Fatalf("exit = %v, want code 3", exit)
	}
	if want := "stdout: hello in " + dir + " for build\n"; stdout.String() != want {
		t.Fatalf("stdout = %q, want %q", stdout.String(), want)
	}
	if stderr.String() != "stderr: done\n" {
		t.Fatalf("stderr = %q", stderr.String())
	}
	if n := strings.Count(srv.LogTail(1000), "Accepted publickey"); n != 1 {
		t.Fatalf("sshd accepted %d logins for one stage, want 1", n)
	}
}

func TestPluginSignal(t *testing.T) {
	_, target := startGuest(t, nil)
	_, tr, _ := launch(t)
	marker := uniqueSleep(t)
	signals := make(chan string, 1)
	done := make(chan execResult, 1)
	go func() {
		exit, err := tr.Exec(context.Background(), &pluginv1.ExecStart{Target: target, Command: "sleep " + marker}, pluginapi.ExecIO{Signals: signals})
		done <- execResult{exit, err}
	}()
	waitFor(t, "the remote sleep to start", func() bool { return len(pgrep(t, "^sleep "+marker)) > 0 })
	signals <- "INT"
	r := await(t, done)
	if r.err != nil || r.exit.GetSignal() != "INT" {
		t.Fatalf("Exec = %v, %v; want death by INT", r.exit, r.err)
	}
}

// TestPluginCancel cancels the Exec RPC: the plugin must end the remote
// command, not just the call.
func TestPluginCancel(t *testing.T) {
	_, target := startGuest(t, map[string]string{"kill_grace": "500ms"})
	_, tr, _ := launch(t)
	tests := []struct {
		name    string
		command string
	}{
		{name: "plain", command: "sleep %s"},
		{name: "ignores TERM", command: "trap '' TERM; sleep %s; echo survived"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marker := uniqueSleep(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan execResult, 1)
			go func() {
				exit, err := tr.Exec(ctx, &pluginv1.ExecStart{Target: target, Command: fmt.Sprintf(tt.command, marker)}, pluginapi.ExecIO{})
				done <- execResult{exit, err}
			}()
			waitFor(t, "the remote sleep to start", func() bool { return len(pgrep(t, "^sleep "+marker)) > 0 })
			cancel()
			if r := await(t, done); status.Code(r.err) != codes.Canceled {
				t.Fatalf("Exec after cancel = %v, %v; want Canceled", r.exit, r.err)
			}
			waitFor(t, "the remote sleep to be gone", func() bool { return len(pgrep(t, "sleep "+marker)) == 0 })
		})
	}
}

func TestPluginDisconnected(t *testing.T) {
	srv, target := startGuest(t, nil)
	_, tr, _ := launch(t)
	marker := uniqueSleep(t)
	done := make(chan execResult, 1)
	go func() {
		exit, err := tr.Exec(context.Background(), &pluginv1.ExecStart{Target: target, Command: "sleep " + marker}, pluginapi.ExecIO{})
		done <- execResult{exit, err}
	}()
	waitFor(t, "the remote sleep to start", func() bool { return len(pgrep(t, "^sleep "+marker)) > 0 })
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	r := await(t, done)
	if r.err != nil || !r.exit.GetDisconnected() || !strings.Contains(r.exit.GetMessage(), "lost the connection") {
		t.Fatalf("Exec after the guest died = %v, %v; want Disconnected", r.exit, r.err)
	}
}

// TestPluginErrors checks that refusals cross the gRPC boundary with their
// code and a message a user can act on.
func TestPluginErrors(t *testing.T) {
	_, target := startGuest(t, nil)
	_, tr, _ := launch(t)
	other, err := sshd.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	clone := func(mutate func(*pluginv1.Target)) *pluginv1.Target {
		c := &pluginv1.Target{Host: target.Host, Port: target.Port, Username: target.Username, PrivateKey: target.PrivateKey, HostKeys: target.HostKeys}
		mutate(c)
		return c
	}
	content := []byte("data")
	tests := []struct {
		name        string
		call        func() error
		invalid     bool
		wantMessage []string
	}{
		{
			name: "unknown option",
			call: func() error {
				_, err := tr.Exec(ctx, &pluginv1.ExecStart{Target: clone(func(t *pluginv1.Target) { t.Options = map[string]string{"StrictHostKeyChecking": "no"} }), Command: "true"}, pluginapi.ExecIO{})
				return err
			},
			invalid:     true,
			wantMessage: []string{`option "StrictHostKeyChecking": unknown transport-ssh option`},
		},
		{
			name: "host key mismatch",
			call: func() error {
				_, err := tr.Exec(ctx, &pluginv1.ExecStart{Target: clone(func(t *pluginv1.Target) { t.HostKeys = []string{other.AuthorizedKey} }), Command: "true"}, pluginapi.ExecIO{})
				return err
			},
			wantMessage: []string{"host key mismatch", "man-in-the-middle"},
		},
		{
			name: "upload checksum mismatch",
			call: func() error {
				wrong := sha256.Sum256([]byte("other"))
				_, err := tr.Upload(ctx, &pluginv1.UploadHeader{Target: target, Path: filepath.Join(guestDir(t), "f"), Size: 4, Sha256: hex.EncodeToString(wrong[:])}, bytes.NewReader(content))
				return err
			},
			wantMessage: []string{"content mismatch", hexSum(content), hexSum([]byte("other"))},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("the call succeeded")
			}
			if pluginapi.IsInvalidInput(err) != tt.invalid {
				t.Fatalf("IsInvalidInput(%v) = %v, want %v", err, !tt.invalid, tt.invalid)
			}
			for _, want := range tt.wantMessage {
				if !strings.Contains(pluginapi.ErrorMessage(err), want) {
					t.Fatalf("message %q does not contain %q", pluginapi.ErrorMessage(err), want)
				}
			}
		})
	}
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
