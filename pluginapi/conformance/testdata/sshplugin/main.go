// Command sshplugin is a minimal SSH transport plugin that the conformance
// kit's own tests run the kit against (the real one is
// plugins/transport-ssh). CONFORMANCE_FIXTURE_MODE breaks one rule at a
// time, so the tests can check that the kit notices:
//
//	insecure        accepts any host key
//	ignore-cancel   leaves the remote command running when the call ends
//	trust-upload    does not verify an upload's checksum
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// safePath is what Upload accepts as a destination: no quoting needed.
var safePath = regexp.MustCompile(`^/[A-Za-z0-9._/-]+$`)

func main() {
	pluginapi.ServeTransport(&plugin{mode: os.Getenv("CONFORMANCE_FIXTURE_MODE")})
}

type plugin struct{ mode string }

func (p *plugin) GetInfo(context.Context) (*pluginv1.PluginInfo, error) {
	return &pluginv1.PluginInfo{
		Name: "sshfixture", Kind: pluginv1.Kind_KIND_TRANSPORT, Version: "0.1.0",
		ApiVersions: []uint32{pluginapi.APIVersion1}, Capabilities: []string{"signal", "upload"},
	}, nil
}

func (p *plugin) Health(context.Context) (*pluginv1.HealthResponse, error) {
	return &pluginv1.HealthResponse{State: pluginv1.HealthResponse_STATE_OK}, nil
}

func (p *plugin) dial(ctx context.Context, t *pluginv1.Target) (*ssh.Client, error) {
	if len(t.GetHostKeys()) == 0 {
		return nil, pluginapi.InvalidInput("target.host_keys", "", "at least one host key is required")
	}
	var pinned []string
	for _, k := range t.GetHostKeys() {
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
		if err != nil {
			return nil, pluginapi.InvalidInput("target.host_keys", k, "must be authorized_keys lines")
		}
		pinned = append(pinned, string(pk.Marshal()))
	}
	check := func(_ string, _ net.Addr, key ssh.PublicKey) error {
		if p.mode == "insecure" || slices.Contains(pinned, string(key.Marshal())) {
			return nil
		}
		return errors.New("host key is not pinned")
	}
	var auth []ssh.AuthMethod
	if len(t.GetPrivateKey()) > 0 {
		signer, err := ssh.ParsePrivateKey(t.GetPrivateKey())
		if err != nil {
			return nil, pluginapi.InvalidInput("target.private_key", fmt.Sprintf("(%d bytes)", len(t.GetPrivateKey())), "must be an unencrypted private key")
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if t.GetPassword() != "" {
		auth = append(auth, ssh.Password(t.GetPassword()))
	}
	addr := net.JoinHostPort(t.GetHost(), strconv.Itoa(int(t.GetPort())))
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial %s: %v", addr, err)
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{User: t.GetUsername(), Auth: auth, HostKeyCallback: check})
	if err != nil {
		_ = conn.Close()
		return nil, status.Errorf(codes.Unavailable, "ssh %s: %v", addr, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

func (p *plugin) WaitReady(ctx context.Context, t *pluginv1.Target) (uint32, error) {
	for attempts := uint32(1); ; attempts++ {
		c, err := p.dial(ctx, t)
		if err == nil {
			_ = c.Close()
			return attempts, nil
		}
		if pluginapi.IsInvalidInput(err) {
			return attempts, err
		}
		select {
		case <-ctx.Done():
			return attempts, status.Errorf(codes.DeadlineExceeded, "wait ready after %d attempts: %v", attempts, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (p *plugin) Exec(ctx context.Context, start *pluginv1.ExecStart, stdio pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
	c, err := p.dial(ctx, start.GetTarget())
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.Close() }()
	s, err := c.NewSession()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "new session: %v", err)
	}
	defer func() { _ = s.Close() }()
	var cmd strings.Builder
	for k, v := range start.GetEnv() {
		fmt.Fprintf(&cmd, "export %s=%s; ", k, shellQuote(v))
	}
	if wd := start.GetWorkdir(); wd != "" {
		fmt.Fprintf(&cmd, "cd %s && ", shellQuote(wd))
	}
	cmd.WriteString(start.GetCommand())
	s.Stdout, s.Stderr = stdio.Stdout, stdio.Stderr
	stdin, err := s.StdinPipe()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "stdin: %v", err)
	}
	if err := s.Start(cmd.String()); err != nil {
		return nil, status.Errorf(codes.Unavailable, "start: %v", err)
	}
	go func() {
		if stdio.Stdin != nil {
			_, _ = io.Copy(stdin, stdio.Stdin)
		}
		_ = stdin.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	for {
		select {
		case err := <-done:
			var exitErr *ssh.ExitError
			var missing *ssh.ExitMissingError
			switch {
			case err == nil:
				return &pluginv1.ExecExit{}, nil
			case errors.As(err, &exitErr):
				return &pluginv1.ExecExit{Code: int32(exitErr.ExitStatus()), Signal: exitErr.Signal()}, nil
			case errors.As(err, &missing):
				return &pluginv1.ExecExit{Disconnected: true, Message: err.Error()}, nil
			default:
				return &pluginv1.ExecExit{Disconnected: true, Message: err.Error()}, nil
			}
		case name := <-stdio.Signals:
			_ = s.Signal(ssh.Signal(name))
		case <-ctx.Done():
			if p.mode != "ignore-cancel" {
				_ = s.Signal(ssh.SIGKILL)
			}
			return nil, ctx.Err()
		}
	}
}

func (p *plugin) Upload(ctx context.Context, h *pluginv1.UploadHeader, content io.Reader) (*pluginv1.UploadResponse, error) {
	if !safePath.MatchString(h.GetPath()) {
		return nil, pluginapi.InvalidInput("path", h.GetPath(), "must match %s", safePath)
	}
	c, err := p.dial(ctx, h.GetTarget())
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.Close() }()
	s, err := c.NewSession()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "new session: %v", err)
	}
	defer func() { _ = s.Close() }()
	hash, size := sha256.New(), &counter{}
	s.Stdin = io.TeeReader(content, io.MultiWriter(hash, size))
	tmp := h.GetPath() + ".part"
	if out, err := s.CombinedOutput(fmt.Sprintf("umask 077 && cat > %s", tmp)); err != nil {
		return nil, status.Errorf(codes.Unavailable, "write %s: %v: %s", tmp, err, out)
	}
	sum := hex.EncodeToString(hash.Sum(nil))
	final := fmt.Sprintf("chmod %o %s && mv %s %s", h.GetMode(), tmp, tmp, h.GetPath())
	if sum != h.GetSha256() && p.mode != "trust-upload" {
		final = "rm -f " + tmp
		defer func() { _ = p.run(ctx, h.GetTarget(), final) }()
		return nil, status.Errorf(codes.DataLoss, "upload %s: content has sha256 %s, header says %s", h.GetPath(), sum, h.GetSha256())
	}
	if err := p.run(ctx, h.GetTarget(), final); err != nil {
		return nil, err
	}
	return &pluginv1.UploadResponse{Size: size.n, Sha256: sum}, nil
}

// counter counts the bytes written to it.
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func (p *plugin) run(ctx context.Context, t *pluginv1.Target, command string) error {
	c, err := p.dial(ctx, t)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	s, err := c.NewSession()
	if err != nil {
		return status.Errorf(codes.Unavailable, "new session: %v", err)
	}
	defer func() { _ = s.Close() }()
	if out, err := s.CombinedOutput(command); err != nil {
		return status.Errorf(codes.Unavailable, "%s: %v: %s", command, err, out)
	}
	return nil
}
