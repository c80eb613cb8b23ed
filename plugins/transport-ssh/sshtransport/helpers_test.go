package sshtransport

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

// guestUser is the account the tests log in as: a throwaway account with
// /bin/sh as shell, like the CI user of a guest image. Root's login shell
// on a developer machine may run arbitrary rc files (and the tests kill
// login shells), so tests do not log in as root unless they say so.
var guestUser struct {
	name     string
	uid, gid int
}

// TestMain creates the guest account (this needs root, as CI runs; the
// tests fail, never skip, without it), runs the tests, removes the account
// and checks for leaked goroutines.
func TestMain(m *testing.M) {
	u, err := sshd.CreateUser(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
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

// guestDir returns a fresh directory owned by the guest account, removed
// in t.Cleanup.
func guestDir(t testing.TB) string {
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

// newTransport returns a Transport logging at trace level into the returned
// buffer, closed (and its log shown on failure) in t.Cleanup.
func newTransport(t *testing.T) (*Transport, *plugintest.SyncBuffer) {
	t.Helper()
	logs := &plugintest.SyncBuffer{}
	tr := New(Config{Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs})})
	t.Cleanup(func() {
		tr.Close()
		if t.Failed() {
			t.Logf("transport log:\n%s", logs.String())
		}
	})
	return tr, logs
}

func newKey(t testing.TB) sshd.KeyPair {
	t.Helper()
	kp, err := sshd.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// guest is a real sshd plus the target that reaches it.
type guest struct {
	srv    *sshd.Server
	key    sshd.KeyPair
	target *pluginv1.Target
}

// startGuest starts sshd (stopped in t.Cleanup) authorising a fresh client
// key for the guest account (unless opts.User says otherwise), and returns
// a key-login target for it with options.
func startGuest(t *testing.T, opts sshd.Options, options map[string]string) *guest {
	t.Helper()
	key := newKey(t)
	if opts.User == "" {
		opts.User = guestUser.name
	}
	opts.AuthorizedKeys = append(opts.AuthorizedKeys, key.AuthorizedKey)
	srv := sshd.StartForTest(t, opts)
	return &guest{srv: srv, key: key, target: &pluginv1.Target{
		Host:       srv.Host(),
		Port:       uint32(srv.Port()),
		Username:   opts.User,
		PrivateKey: key.PrivateKeyPEM,
		HostKeys:   []string{srv.HostPublicKey()},
		Options:    options,
	}}
}

// result is what one Exec produced.
type result struct {
	stdout, stderr string
	exit           *pluginv1.ExecExit
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("exit=%v err=%v stdout=%q stderr=%q", r.exit, r.err, r.stdout, r.stderr)
}

// execute runs start to completion with a generous guard deadline.
func execute(t *testing.T, tr pluginapi.TransportPlugin, start *pluginv1.ExecStart, stdio pluginapi.ExecIO) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr plugintest.SyncBuffer
	stdio.Stdout, stdio.Stderr = &stdout, &stderr
	exit, err := tr.Exec(ctx, start, stdio)
	return result{stdout: stdout.String(), stderr: stderr.String(), exit: exit, err: err}
}

// uniqueSleep returns a sleep duration nobody else uses, so pgrep -f can
// find exactly the test's remote process.
func uniqueSleep(t testing.TB) string {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("987.%06d", n.Int64())
}

// pgrep returns the pids whose command line matches the extended regular
// expression pattern. Wait for "^sleep N" to see the command itself run (the
// login shell's command line contains "sleep N" too, while it may still be
// reading its rc files), and for "sleep N" to be gone to see both gone.
func pgrep(t testing.TB, pattern string) []string {
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

// waitFor polls cond until it holds. The deadline only keeps a broken test
// from hanging; it is not what the test asserts.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// notifyWriter collects output and closes seen once it contains marker.
type notifyWriter struct {
	plugintest.SyncBuffer
	marker string
	seen   chan struct{}
	once   sync.Once
}

func newNotifyWriter(marker string) *notifyWriter {
	return &notifyWriter{marker: marker, seen: make(chan struct{})}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	n, err := w.SyncBuffer.Write(p)
	if strings.Contains(w.String(), w.marker) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

// await waits for the marker, failing the test if the command ended first.
func (w *notifyWriter) await(t testing.TB, done <-chan result) {
	t.Helper()
	select {
	case <-w.seen:
	case r := <-done:
		t.Fatalf("the command ended before printing %q: %v", w.marker, r)
	case <-time.After(30 * time.Second):
		t.Fatalf("no %q on the output after 30s", w.marker)
	}
}

func fingerprintOf(t testing.TB, authorizedKey string) string {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(k)
}
