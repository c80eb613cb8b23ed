package pluginapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Direct output
//
// Every byte of an Exec's output used to cross the plugin -> core gRPC hop
// (mTLS, framing, two extra copies and context switches per chunk). With
// direct output the core instead hands its own stdout and stderr file
// descriptors to the plugin, which writes the remote output straight into
// them; the Exec stream then carries only control (start, stdin, signals,
// exit).
//
// The descriptors travel over a side channel: a unix socket the plugin
// listens on in a 0700 directory of its own (under go-plugin's socket
// directory when PLUGIN_UNIX_SOCKET_DIR is set, the job's session
// directory, else under os.TempDir()). The core asks for its path once
// (Transport.OutputChannel), connects, sends a fresh 128-bit random token
// with both descriptors in one SCM_RIGHTS message and waits for a one-byte
// acknowledgement; then it starts the Exec with that token over the mTLS
// connection. The plugin pairs token and descriptors once: an unknown,
// expired or reused token fails the Exec, it never falls back silently.
// No secret crosses the side channel, and descriptors alone do nothing
// without an authenticated Exec naming their token. SCM_RIGHTS rather
// than go-plugin's ExtraFiles because a reattached session plugin is not
// the core's child.
//
// Ordering: the plugin's writes go to the descriptors in the order its
// implementation makes them (stdout and stderr relative order as before),
// and the plugin finishes every write and closes its copies before it
// sends the exit, so the core never returns before the output is
// complete.

// Direct output limits.
const (
	// outputTokenSize is the size of a direct output token (128 bits).
	outputTokenSize = 16
	// outputPendingTTL is how long a registered token waits for its Exec.
	outputPendingTTL = 10 * time.Second
	// outputMaxPending bounds registered, unclaimed tokens.
	outputMaxPending = 64
	// outputChannelTimeout bounds one side-channel exchange.
	outputChannelTimeout = 2 * time.Second
	// outputAckOK is the plugin's acknowledgement of a registered token.
	outputAckOK = 0
	// directCopyBuffer is the read buffer of directWriter.ReadFrom: one
	// write(2) for whatever piled up, not one per 32 KiB.
	directCopyBuffer = 256 << 10
)

// errDirectOutputClosed is what a write after the end of its Exec gets.
var errDirectOutputClosed = errors.New("direct output: the exec has ended")

// ---------------------------------------------------------------- plugin side

// directOutput is the plugin side of direct output: the side channel's
// listener and the registered, not yet claimed descriptors.
type directOutput struct {
	log hclog.Logger

	mu      sync.Mutex
	dir     string // the 0700 directory holding the socket
	path    string
	ln      *net.UnixListener
	closed  bool
	pending map[[outputTokenSize]byte]*pendingOutput
}

// pendingOutput is a registered pair of descriptors awaiting its Exec.
type pendingOutput struct {
	stdout, stderr *os.File
	expire         *time.Timer
}

func (p *pendingOutput) close() {
	_ = p.stdout.Close()
	_ = p.stderr.Close()
}

func newDirectOutput(log hclog.Logger) *directOutput {
	return &directOutput{log: log, pending: map[[outputTokenSize]byte]*pendingOutput{}}
}

// channel returns the side channel's socket path, listening on first use.
func (d *directOutput) channel() (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return "", errors.New("direct output: the plugin is shutting down")
	}
	if d.ln != nil {
		return d.path, nil
	}
	bases := []string{os.Getenv(plugin.EnvUnixSocketDir), os.TempDir()}
	var lastErr error
	for _, base := range bases {
		if base == "" {
			continue
		}
		dir, err := os.MkdirTemp(base, "kvout")
		if err != nil {
			lastErr = fmt.Errorf("direct output: create a 0700 directory in %s: %w", base, err)
			continue
		}
		path := filepath.Join(dir, "s")
		if len(path) >= maxSocketPath {
			_ = os.Remove(dir)
			lastErr = fmt.Errorf("direct output: socket path %s is longer than %d bytes", path, maxSocketPath-1)
			continue
		}
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			_ = os.RemoveAll(dir)
			lastErr = fmt.Errorf("direct output: listen on %s: %w", path, err)
			continue
		}
		d.dir, d.path, d.ln = dir, path, ln
		go d.accept(ln)
		return path, nil
	}
	return "", lastErr
}

func (d *directOutput) accept(ln *net.UnixListener) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		go func() {
			if err := d.register(c); err != nil {
				d.log.Debug("direct output: refused a registration", "error", err)
			}
		}()
	}
}

// register reads one token with its two descriptors from c and keeps them
// for the Exec that names the token.
func (d *directOutput) register(c *net.UnixConn) error {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(outputChannelTimeout))
	buf := make([]byte, outputTokenSize+1)
	// Room for one descriptor more than allowed, to notice extras.
	oob := make([]byte, unix.CmsgSpace(3*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	fds, ferr := parseRights(oob[:oobn])
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), fmt.Sprintf("core-output-%d", i))
	}
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	switch {
	case ferr != nil:
		closeAll()
		return ferr
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		closeAll()
		return errors.New("message truncated")
	case n != outputTokenSize:
		closeAll()
		return fmt.Errorf("token of %d bytes, want %d", n, outputTokenSize)
	case len(files) != 2:
		closeAll()
		return fmt.Errorf("%d descriptors, want 2 (stdout, stderr)", len(files))
	}
	var token [outputTokenSize]byte
	copy(token[:], buf[:n])
	p := &pendingOutput{stdout: files[0], stderr: files[1]}
	d.mu.Lock()
	_, dup := d.pending[token]
	switch {
	case d.closed:
		err = errors.New("the plugin is shutting down")
	case dup:
		err = errors.New("token already registered")
	case len(d.pending) >= outputMaxPending:
		err = fmt.Errorf("%d tokens already wait for their exec", outputMaxPending)
	default:
		d.pending[token] = p
		p.expire = time.AfterFunc(outputPendingTTL, func() { d.expire(token, p) })
	}
	d.mu.Unlock()
	if err != nil {
		p.close()
		return err
	}
	if _, err := c.Write([]byte{outputAckOK}); err != nil {
		// The core gave up: it will not start the Exec with this token.
		d.expire(token, p)
		return fmt.Errorf("acknowledge: %w", err)
	}
	return nil
}

// parseRights returns the descriptors of every SCM_RIGHTS message in oob.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var fds []int
	var perr error
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			perr = fmt.Errorf("parse control message: %w", err)
			continue
		}
		fds = append(fds, got...)
	}
	if perr != nil {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
		return nil, perr
	}
	return fds, nil
}

// expire drops token's descriptors if they are still p (not claimed).
func (d *directOutput) expire(token [outputTokenSize]byte, p *pendingOutput) {
	d.mu.Lock()
	cur, ok := d.pending[token]
	if ok && cur == p {
		delete(d.pending, token)
	}
	d.mu.Unlock()
	if ok && cur == p {
		p.close()
	}
}

// take claims the descriptors registered under token, once.
func (d *directOutput) take(token []byte) (*directWriter, *directWriter, error) {
	if len(token) != outputTokenSize {
		return nil, nil, InvalidInput("exec start output_token", fmt.Sprintf("%d bytes", len(token)), "must be %d bytes registered on the output channel", outputTokenSize)
	}
	var key [outputTokenSize]byte
	copy(key[:], token)
	d.mu.Lock()
	p, ok := d.pending[key]
	delete(d.pending, key)
	d.mu.Unlock()
	if !ok {
		// Never echo the token: it is a capability.
		return nil, nil, status.Error(codes.InvalidArgument, "exec start output_token: unknown, expired or already used: must be registered on the output channel right before the exec, and is valid once")
	}
	p.expire.Stop()
	return &directWriter{f: p.stdout}, &directWriter{f: p.stderr}, nil
}

// close stops the side channel, removes its directory and drops every
// unclaimed descriptor.
func (d *directOutput) close() {
	d.mu.Lock()
	d.closed = true
	ln, dir := d.ln, d.dir
	pending := d.pending
	d.pending = map[[outputTokenSize]byte]*pendingOutput{}
	d.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	for _, p := range pending {
		p.expire.Stop()
		p.close()
	}
}

// directWriter is one of the core's descriptors as an Exec's Stdout or
// Stderr. Closing it waits for a write in progress and refuses later ones,
// so nothing reaches the core's stdout after the exit was sent, even from
// a goroutine of the implementation that outlived its Exec.
type directWriter struct {
	mu     sync.Mutex
	f      *os.File
	closed bool
	buf    []byte // ReadFrom's buffer, allocated on first use
}

// Write writes p to the core's descriptor.
func (w *directWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, errDirectOutputClosed
	}
	return w.f.Write(p)
}

// ReadFrom copies r to the descriptor until EOF, one write for whatever a
// Read returns (up to directCopyBuffer), so io.Copy from an SSH channel
// makes fewer, larger writes. Nothing is held back: each Read's data is
// written at once.
func (w *directWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.buf == nil {
		w.buf = make([]byte, directCopyBuffer)
	}
	return readEach(r, w.buf, w.Write)
}

// close waits for a write in progress, then closes the plugin's copy of
// the descriptor. It is safe to call more than once.
func (w *directWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		_ = w.f.Close()
	}
}

// ---------------------------------------------------------------- core side

// directFiles returns stdio's Stdout and Stderr when both are files, the
// condition for direct output.
func directFiles(stdio ExecIO) (stdout, stderr *os.File, ok bool) {
	stdout, ok1 := stdio.Stdout.(*os.File)
	stderr, ok2 := stdio.Stderr.(*os.File)
	if !ok1 || !ok2 || stdout == nil || stderr == nil {
		return nil, nil, false
	}
	return stdout, stderr, true
}

// newOutputToken returns a fresh random token.
func newOutputToken() ([]byte, error) {
	token := make([]byte, outputTokenSize)
	if _, err := rand.Read(token); err != nil {
		return nil, fmt.Errorf("direct output: random token: %w", err)
	}
	return token, nil
}

// sendOutputFiles registers stdout and stderr under token on the plugin's
// output channel at path, and returns once the plugin acknowledged them.
func sendOutputFiles(ctx context.Context, path string, token []byte, stdout, stderr *os.File) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("direct output: channel path %q is not absolute", path)
	}
	ctx, cancel := context.WithTimeout(ctx, outputChannelTimeout)
	defer cancel()
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("direct output: %w", err)
	}
	defer c.Close()
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("direct output: %s is not a unix socket", path)
	}
	deadline, _ := ctx.Deadline()
	_ = uc.SetDeadline(deadline)
	// Through RawConn.Control, not File.Fd: Fd would switch a
	// non-blocking descriptor to blocking mode, a flag shared with every
	// process holding the same open file (the runner's pipe).
	err = withFD(stdout, func(outFD int) error {
		return withFD(stderr, func(errFD int) error {
			_, _, err := uc.WriteMsgUnix(token, unix.UnixRights(outFD, errFD), nil)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("direct output: send descriptors: %w", err)
	}
	ack := make([]byte, 1)
	if _, err := io.ReadFull(uc, ack); err != nil {
		return fmt.Errorf("direct output: no acknowledgement: %w", err)
	}
	if ack[0] != outputAckOK {
		return fmt.Errorf("direct output: refused (%d)", ack[0])
	}
	return nil
}

// withFD runs fn with f's descriptor, which stays valid during fn.
func withFD(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
