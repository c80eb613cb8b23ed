//go:build linux

package sshd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// dial logs in to s with the given auth methods, pinning s's host key.
func dial(t *testing.T, s *Server, username string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	t.Helper()
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.HostPublicKey()))
	if err != nil {
		t.Fatalf("parse host key %q: %v", s.HostPublicKey(), err)
	}
	return ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{
		User:            username,
		Auth:            auth,
		HostKeyCallback: ssh.FixedHostKey(hostKey),
		Timeout:         10 * time.Second,
	})
}

func run(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("run %q: %v: %s", cmd, err, out)
	}
	return string(out)
}

func currentUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

func newKey(t *testing.T) KeyPair {
	t.Helper()
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func TestOptionsValidate(t *testing.T) {
	key := newKey(t)
	tests := []struct {
		name    string
		opts    Options
		wantErr string // substring; empty means valid
	}{
		{name: "zero value", opts: Options{}},
		{name: "other loopback address", opts: Options{ListenAddr: "127.3.4.5:0"}},
		{name: "wildcard address", opts: Options{ListenAddr: "0.0.0.0:22"}, wantErr: `option ListenAddr "0.0.0.0:22": must be host:port with an IPv4 loopback host`},
		{name: "host name", opts: Options{ListenAddr: "localhost:22"}, wantErr: `option ListenAddr "localhost:22"`},
		{name: "ipv6 loopback", opts: Options{ListenAddr: "[::1]:22"}, wantErr: `option ListenAddr "[::1]:22"`},
		{name: "port out of range", opts: Options{ListenAddr: "127.0.0.1:65536"}, wantErr: "a port in 0..65535"},
		{name: "no port", opts: Options{ListenAddr: "127.0.0.1"}, wantErr: `option ListenAddr "127.0.0.1"`},
		{name: "garbage host key", opts: Options{HostKey: []byte("not a key")}, wantErr: "option HostKey: must be an unencrypted private key in PEM format"},
		{name: "authorized key with newline", opts: Options{AuthorizedKeys: []string{key.AuthorizedKey + "\n" + key.AuthorizedKey}}, wantErr: "option AuthorizedKeys[0]"},
		{name: "authorized key garbage", opts: Options{AuthorizedKeys: []string{key.AuthorizedKey, "ssh-ed25519 nope"}}, wantErr: `option AuthorizedKeys[1] "ssh-ed25519 nope": must be an authorized_keys line`},
		{name: "user with newline", opts: Options{User: "root\nAllowUsers *"}, wantErr: `option User "root\nAllowUsers *": must match`},
		{name: "unknown user", opts: Options{User: "no-such-user-x"}, wantErr: `option User "no-such-user-x": must be an existing account`},
		{name: "accept env pattern with space", opts: Options{AcceptEnv: []string{"A B"}}, wantErr: `option AcceptEnv[0] "A B": must match`},
		{name: "negative max startups", opts: Options{MaxStartups: -1}, wantErr: "option MaxStartups -1: must be in 1..100000"},
		{name: "huge max sessions", opts: Options{MaxSessions: 1 << 20}, wantErr: "option MaxSessions 1048576"},
		{name: "unknown log level", opts: Options{LogLevel: "LOUD"}, wantErr: `option LogLevel "LOUD": must be one of`},
		{name: "lower-case log level", opts: Options{LogLevel: "debug3"}},
		{name: "negative start timeout", opts: Options{StartTimeout: -time.Second}, wantErr: "option StartTimeout -1s: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.opts.validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("validate error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestHostKeyNeverInErrors(t *testing.T) {
	key := newKey(t)
	broken := bytes.Replace(key.PrivateKeyPEM, []byte("\n"), []byte("\n!"), 3)
	_, err := Options{HostKey: broken}.validate()
	if err == nil {
		t.Fatal("validate accepted a corrupted host key")
	}
	body := strings.Split(string(key.PrivateKeyPEM), "\n")[1]
	if strings.Contains(err.Error(), body[:20]) {
		t.Fatalf("the error quotes the private key: %v", err)
	}
}

func TestFindSSHD(t *testing.T) {
	notFound := func(string) (string, error) { return "", exec.ErrNotFound }
	tests := []struct {
		name     string
		lookPath func(string) (string, error)
		fallback string
		want     string
		wantErr  string
	}{
		{name: "from PATH", lookPath: func(string) (string, error) { return "/opt/bin/sshd", nil }, fallback: "/nonexistent/sshd", want: "/opt/bin/sshd"},
		{name: "fallback", lookPath: notFound, fallback: "/bin/sh", want: "/bin/sh"},
		{name: "missing", lookPath: notFound, fallback: filepath.Join(t.TempDir(), "sshd"), wantErr: "install Debian package openssh-server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findSSHD(tt.lookPath, tt.fallback)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("findSSHD error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("findSSHD = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestKeyLogin(t *testing.T) {
	client, other := newKey(t), newKey(t)
	hostKey := newKey(t)
	tests := []struct {
		name    string
		opts    Options
		signer  ssh.Signer
		wantErr string
	}{
		{name: "authorized key", opts: Options{AuthorizedKeys: []string{client.AuthorizedKey}}, signer: client.Signer},
		{name: "given host key and address", opts: Options{ListenAddr: "127.0.0.7:0", HostKey: hostKey.PrivateKeyPEM, AuthorizedKeys: []string{client.AuthorizedKey}}, signer: client.Signer},
		{name: "second authorized key", opts: Options{AuthorizedKeys: []string{other.AuthorizedKey, client.AuthorizedKey}}, signer: client.Signer},
		{name: "unknown key refused", opts: Options{AuthorizedKeys: []string{other.AuthorizedKey}}, signer: client.Signer, wantErr: "unable to authenticate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := StartForTest(t, tt.opts)
			if tt.opts.HostKey != nil && s.HostPublicKey() != hostKey.AuthorizedKey {
				t.Fatalf("HostPublicKey = %q, want the given key %q", s.HostPublicKey(), hostKey.AuthorizedKey)
			}
			c, err := dial(t, s, currentUser(t), ssh.PublicKeys(tt.signer))
			if tt.wantErr != "" {
				if err == nil {
					c.Close()
					t.Fatal("login succeeded with a key that is not authorized")
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("login error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			defer c.Close()
			if got := strings.TrimSpace(run(t, c, "id -un")); got != currentUser(t) {
				t.Fatalf("id -un = %q, want %q", got, currentUser(t))
			}
		})
	}
}

func TestAcceptEnv(t *testing.T) {
	key := newKey(t)
	tests := []struct {
		name       string
		acceptEnv  []string
		wantAccept bool
	}{
		{name: "nil accepts all", acceptEnv: nil, wantAccept: true},
		{name: "pattern", acceptEnv: []string{"GREETING*"}, wantAccept: true},
		{name: "empty accepts none", acceptEnv: []string{}, wantAccept: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := StartForTest(t, Options{AuthorizedKeys: []string{key.AuthorizedKey}, AcceptEnv: tt.acceptEnv})
			c, err := dial(t, s, currentUser(t), ssh.PublicKeys(key.Signer))
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			defer c.Close()
			sess, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			err = sess.Setenv("GREETING_X", "hi there")
			if !tt.wantAccept {
				if err == nil {
					t.Fatal("sshd accepted an env request it was configured to refuse")
				}
				return
			}
			if err != nil {
				t.Fatalf("setenv: %v", err)
			}
			out, err := sess.Output(`printf %s "$GREETING_X"`)
			if err != nil || string(out) != "hi there" {
				t.Fatalf("output = %q, %v; want %q", out, err, "hi there")
			}
		})
	}
}

func TestOpenSSHClient(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatal("the ssh client is missing: install Debian package openssh-client")
	}
	key := newKey(t)
	s := StartForTest(t, Options{AuthorizedKeys: []string{key.AuthorizedKey}})
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id")
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(keyFile, key.PrivateKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("[%s]:%d %s\n", s.Host(), s.Port(), s.HostPublicKey())
	if err := os.WriteFile(knownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sshBin,
		"-F", "none",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+knownHosts,
		"-o", "IdentitiesOnly=yes",
		"-i", keyFile,
		"-p", fmt.Sprint(s.Port()),
		"-l", currentUser(t),
		s.Host(), "echo", "hello from sshd")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ssh: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "hello from sshd" {
		t.Fatalf("ssh output = %q", got)
	}
}

func TestSFTPSubsystem(t *testing.T) {
	key := newKey(t)
	s := StartForTest(t, Options{AuthorizedKeys: []string{key.AuthorizedKey}})
	c, err := dial(t, s, currentUser(t), ssh.PublicKeys(key.Signer))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer c.Close()
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatalf("sftp: %v", err)
	}
	defer sc.Close()
	path := filepath.Join(t.TempDir(), "f")
	f, err := sc.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("via sftp")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "via sftp" {
		t.Fatalf("file = %q, %v", got, err)
	}
}

func TestPasswordLogin(t *testing.T) {
	u := CreateUserForTest(t)
	if lu, err := user.Lookup(u.Name); err != nil || lu.Uid != strconv.Itoa(u.UID) || lu.Gid != strconv.Itoa(u.GID) {
		t.Fatalf("account %s: lookup %+v, %v; CreateUser reported uid %d gid %d", u.Name, lu, err, u.UID, u.GID)
	}
	s := StartForTest(t, Options{User: u.Name, PasswordAuth: true})
	tests := []struct {
		name     string
		password string
		wantErr  bool
	}{
		{name: "right password", password: u.Password},
		{name: "wrong password", password: u.Password + "x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := dial(t, s, u.Name, ssh.Password(tt.password))
			if tt.wantErr {
				if err == nil {
					c.Close()
					t.Fatal("login succeeded with a wrong password")
				}
				if strings.Contains(err.Error(), tt.password) {
					t.Fatalf("the error quotes the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			defer c.Close()
			if got := strings.TrimSpace(run(t, c, "id -un")); got != u.Name {
				t.Fatalf("id -un = %q, want %q", got, u.Name)
			}
		})
	}
}

// pgrep reports the pids whose command line matches the regular
// expression pattern.
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

// startSleep runs a uniquely recognisable sleep on c and returns its marker
// once the process exists.
func startSleep(t *testing.T, c *ssh.Client) (marker string, done <-chan error) {
	t.Helper()
	marker = fmt.Sprintf("%d.%06d", 900+time.Now().UnixNano()%99, time.Now().UnixNano()%1000000)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		defer sess.Close()
		errc <- sess.Run("sleep " + marker)
	}()
	// "^sleep": the sleep itself, not the login shell still reading its rc
	// files (whose command line contains "sleep N" too).
	waitFor(t, "the sleep process to start", func() bool { return len(pgrep(t, "^sleep "+marker)) > 0 })
	return marker, errc
}

// waitFor polls cond until it holds; the deadline only bounds a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKillEndsConnectionsAndCommands(t *testing.T) {
	key := newKey(t)
	s := StartForTest(t, Options{AuthorizedKeys: []string{key.AuthorizedKey}})
	c, err := dial(t, s, currentUser(t), ssh.PublicKeys(key.Signer))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer c.Close()
	marker, done := startSleep(t, c)
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("the command ended successfully although sshd was killed")
	}
	if pids := pgrep(t, "sleep "+marker); len(pids) > 0 {
		t.Fatalf("the remote command survived Kill: pids %v", pids)
	}
	if _, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second); err == nil {
		t.Fatal("sshd still accepts connections after Kill")
	}
	if err := s.Pause(); err == nil {
		t.Fatal("Pause after Kill succeeded")
	}
}

func TestPauseResume(t *testing.T) {
	key := newKey(t)
	s := StartForTest(t, Options{AuthorizedKeys: []string{key.AuthorizedKey}})
	c, err := dial(t, s, currentUser(t), ssh.PublicKeys(key.Signer))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer c.Close()
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	// A frozen server completes TCP handshakes (the kernel does) but never
	// sends its banner.
	conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial a paused sshd: %v", err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 64)); err == nil {
		t.Fatalf("a paused sshd sent %d bytes", n)
	}
	// The existing connection does not answer either.
	reply := make(chan error, 1)
	go func() {
		_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
		reply <- err
	}()
	select {
	case err := <-reply:
		t.Fatalf("a paused sshd answered a keepalive (err %v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := <-reply; err != nil {
		t.Fatalf("keepalive after Resume: %v", err)
	}
	if got := strings.TrimSpace(run(t, c, "echo back")); got != "back" {
		t.Fatalf("after Resume: %q", got)
	}
}

func TestStop(t *testing.T) {
	key := newKey(t)
	s, err := Start(context.Background(), Options{AuthorizedKeys: []string{key.AuthorizedKey}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := dial(t, s, currentUser(t), ssh.PublicKeys(key.Signer))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer c.Close()
	marker, done := startSleep(t, c)
	for i := 0; i < 2; i++ {
		if err := s.Stop(); err != nil {
			t.Fatalf("Stop #%d: %v", i+1, err)
		}
	}
	<-done
	if pids := pgrep(t, "sleep "+marker); len(pids) > 0 {
		t.Fatalf("a session command survived Stop: pids %v", pids)
	}
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Fatalf("Stop left %s behind (stat: %v)", s.dir, err)
	}
	if log := s.LogTail(50); !strings.Contains(log, "Server listening on") {
		t.Fatalf("LogTail after Stop lost the log:\n%s", log)
	}
	if err := s.Resume(); err == nil {
		t.Fatal("Resume after Stop succeeded")
	}
}

func TestFixedPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Start(context.Background(), Options{ListenAddr: l.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("Start on a taken port: %v, want an error with sshd's bind failure", err)
	}
}

func TestLogTail(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{in: "a\nb\nc\n", n: 2, want: "b\nc"},
		{in: "a\nb\nc", n: 5, want: "a\nb\nc"},
		{in: "a\nb\nc\n", n: 0, want: ""},
	}
	for _, tt := range tests {
		if got := tail([]byte(tt.in), tt.n); got != tt.want {
			t.Errorf("tail(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
