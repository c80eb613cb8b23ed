//go:build linux

package sshd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// privsepDir is the directory OpenSSH's privilege-separated child chroots
// into; Debian creates it at boot, a fresh container may not have it.
const privsepDir = "/run/sshd"

// stopTimeout bounds the wait for sshd to exit after SIGKILL.
const stopTimeout = 30 * time.Second

// Server is a running sshd. Stop it on every path (StartForTest does).
type Server struct {
	dir           string
	logPath       string
	host          string
	port          int
	hostPublicKey string

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait returned

	mu       sync.Mutex
	stopped  bool
	finalLog string // log captured by Stop before the directory goes
}

// Start starts sshd with opts and returns once it listens. ctx bounds the
// start only; the server runs until Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := findSSHD(exec.LookPath, "/usr/sbin/sshd")
	if err != nil {
		return nil, err
	}
	c, err := opts.validate()
	if err != nil {
		return nil, fmt.Errorf("start sshd: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.startTimeout)
	defer cancel()

	if err := ensurePrivsepDir(); err != nil {
		return nil, fmt.Errorf("start sshd: %w", err)
	}
	dir, err := os.MkdirTemp("", "test-sshd-")
	if err != nil {
		return nil, fmt.Errorf("start sshd: %w", err)
	}
	// The account logging in (which may not be the test's user) reads
	// authorized_keys: keep the directory traversable.
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start sshd: %w", err)
	}
	files := map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"ssh_host_key":    {c.hostKey, 0o600},
		"authorized_keys": {[]byte(strings.Join(c.authorizedKeys, "\n") + "\n"), 0o644},
	}
	for name, f := range files {
		if err := os.WriteFile(filepath.Join(dir, name), f.data, f.mode); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("start sshd: write %s: %w", name, err)
		}
	}

	// With port 0 we pick a free port and hand it to sshd; another process
	// may take it in between, so a failed bind is retried with a new one.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := c.port
		if port == 0 {
			if port, err = freePort(c.host); err != nil {
				_ = os.RemoveAll(dir)
				return nil, fmt.Errorf("start sshd: %w", err)
			}
		}
		s, err := launch(ctx, bin, dir, c, port)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if c.port != 0 || !errors.Is(err, errAddrInUse) || ctx.Err() != nil {
			break
		}
	}
	_ = os.RemoveAll(dir)
	return nil, fmt.Errorf("start sshd: %w", lastErr)
}

var errAddrInUse = errors.New("address already in use")

// launch runs sshd once on port and waits until it listens or exits.
func launch(ctx context.Context, bin, dir string, c config, port int) (*Server, error) {
	configPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(configPath, []byte(c.sshdConfig(dir, port)), 0o644); err != nil {
		return nil, fmt.Errorf("write sshd_config: %w", err)
	}
	logPath := filepath.Join(dir, "sshd.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sshd log: %w", err)
	}
	defer logFile.Close() // sshd holds its own descriptor

	// A file, not a pipe, takes sshd's stderr: its session children inherit
	// it, and a pipe would make cmd.Wait wait for them too.
	cmd := exec.Command(bin, "-D", "-e", "-f", configPath)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	// Its own process group: a signal meant for the test's group (a
	// runner harness sending SIGTERM to a stage) must not reach the
	// "guest". Pdeathsig still kills it if the test process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	s := &Server{
		dir:           dir,
		logPath:       logPath,
		host:          c.host,
		port:          port,
		hostPublicKey: c.hostPublicKey,
		cmd:           cmd,
		done:          make(chan struct{}),
	}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()

	listening := fmt.Sprintf("Server listening on %s port %d", c.host, port)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		log, _ := os.ReadFile(logPath)
		if bytes.Contains(log, []byte(listening)) {
			return s, nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(logPath)
			err := fmt.Errorf("sshd exited before listening on %s:%d (%s); its log:\n%s", c.host, port, s.cmd.ProcessState, tail(log, 20))
			if bytes.Contains(log, []byte("Address already in use")) {
				err = fmt.Errorf("%w: %w", errAddrInUse, err)
			}
			return nil, err
		case <-ctx.Done():
			s.killTree()
			<-s.done
			return nil, fmt.Errorf("sshd did not listen on %s:%d: %w; its log:\n%s", c.host, port, ctx.Err(), s.LogTail(20))
		case <-tick.C:
		}
	}
}

// findSSHD looks for sshd with lookPath (PATH), then at fallback
// (/usr/sbin is often not in a non-root PATH). sshd re-executes itself, so
// the path must be absolute.
func findSSHD(lookPath func(string) (string, error), fallback string) (string, error) {
	if p, err := lookPath("sshd"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs, nil
		}
	}
	if fi, err := os.Stat(fallback); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return fallback, nil
	}
	return "", fmt.Errorf("start sshd: no sshd binary in PATH or at %s: install Debian package openssh-server", fallback)
}

func ensurePrivsepDir() error {
	if _, err := os.Stat(privsepDir); err == nil {
		return nil
	}
	if err := os.MkdirAll(privsepDir, 0o755); err != nil {
		if os.Geteuid() != 0 {
			// A non-root sshd does not chroot and does not need it.
			return nil
		}
		return fmt.Errorf("create sshd's privilege separation directory: %w", err)
	}
	return nil
}

// freePort asks the kernel for a free TCP port on host.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr returns the address sshd listens on, "host:port".
func (s *Server) Addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

// Host returns the IP address sshd listens on.
func (s *Server) Host() string { return s.host }

// Port returns the TCP port sshd listens on.
func (s *Server) Port() int { return s.port }

// HostPublicKey returns sshd's host public key in authorized_keys format.
func (s *Server) HostPublicKey() string { return s.hostPublicKey }

// Pid returns the process id of the sshd listener.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop kills sshd and every process it started (connection handlers and
// the commands they run), reaps the listener and removes the temporary
// directory. It is safe to call more than once and after Kill.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	s.killTree()
	var errs []error
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		errs = append(errs, fmt.Errorf("stop sshd: pid %d did not exit %s after SIGKILL", s.Pid(), stopTimeout))
	}
	s.finalLog = s.readTail(200)
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("stop sshd: remove %s: %w", s.dir, err))
	}
	return errors.Join(errs...)
}

// Pause freezes sshd and every process it started with SIGSTOP, like a
// frozen guest: connections stay open, nothing answers, new connections
// complete the TCP handshake but never see an SSH banner.
func (s *Server) Pause() error {
	if err := s.alive("pause"); err != nil {
		return err
	}
	s.freezeTree()
	return nil
}

// Resume thaws a paused sshd and its processes with SIGCONT.
func (s *Server) Resume() error {
	if err := s.alive("resume"); err != nil {
		return err
	}
	for _, pid := range append([]int{s.Pid()}, descendants(s.Pid())...) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	return nil
}

// Kill kills sshd and every process it started with SIGKILL, like a guest
// that died: the kernel closes every connection, and running commands are
// gone. Stop still has to be called to remove the temporary directory.
func (s *Server) Kill() error {
	if err := s.alive("kill"); err != nil {
		return err
	}
	s.killTree()
	select {
	case <-s.done:
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("kill sshd: pid %d did not exit %s after SIGKILL", s.Pid(), stopTimeout)
	}
}

func (s *Server) alive(op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return fmt.Errorf("%s sshd: the server was stopped", op)
	}
	select {
	case <-s.done:
		return fmt.Errorf("%s sshd: pid %d has exited (%s)", op, s.Pid(), s.cmd.ProcessState)
	default:
		return nil
	}
}

// freezeTree stops the listener and its descendants, repeating until no
// new process appears (a process may fork while we walk the tree), and
// returns what it stopped.
func (s *Server) freezeTree() []int {
	select {
	case <-s.done:
		return nil
	default:
	}
	root := s.Pid()
	stopped := map[int]bool{}
	order := []int{}
	for round := 0; round < 100; round++ {
		fresh := false
		for _, pid := range append([]int{root}, descendants(root)...) {
			if stopped[pid] {
				continue
			}
			fresh = true
			stopped[pid] = true
			order = append(order, pid)
			_ = syscall.Kill(pid, syscall.SIGSTOP)
		}
		if !fresh {
			break
		}
	}
	return order
}

// killTree freezes the tree so nothing forks any more, kills it, and waits
// (bounded) until every killed process has exited: SIGKILL is delivered
// asynchronously, and callers check right after that the processes are gone.
func (s *Server) killTree() {
	pids := s.freezeTree()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(stopTimeout)
	for _, pid := range pids {
		for exists(pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// LogTail returns about the last n lines sshd logged (it logs to stderr
// with -e). After Stop it returns the tail captured before the log file was
// removed.
func (s *Server) LogTail(n int) string {
	s.mu.Lock()
	stopped, final := s.stopped, s.finalLog
	s.mu.Unlock()
	if stopped {
		return tail([]byte(final), n)
	}
	return s.readTail(n)
}

func (s *Server) readTail(n int) string {
	const maxBytes = 64 << 10
	f, err := os.Open(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no sshd log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxBytes {
		if _, err := f.Seek(-maxBytes, io.SeekEnd); err != nil {
			return fmt.Sprintf("(read sshd log: %v)", err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(read sshd log: %v)", err)
	}
	return tail(data, n)
}

func tail(data []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if n >= 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
