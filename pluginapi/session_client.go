package pluginapi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// Session timing on the core side.
const (
	// reattachDialTimeout bounds the first connection to a session's socket.
	reattachDialTimeout = 2 * time.Second
	// stopGrace is how long Stop waits for a graceful exit before SIGKILL.
	stopGrace = 2 * time.Second
	// stopPoll is how often Stop looks whether the plugin has exited.
	stopPoll = 10 * time.Millisecond
)

// ErrSessionGone says that a session's plugin process no longer exists (or
// its pid now belongs to another process).
var ErrSessionGone = errors.New("the session's plugin process is gone")

// Detach turns the plugin into a session that outlives this process: the
// plugin redirects its standard streams to /dev/null, clears its
// parent-death signal and starts a watchdog bounded by opts (see the
// Session service in the contract). It returns what [Reattach] and
// [StopSession] need. From then on Close only drops this process's
// connection; Stop ends the plugin. A plugin without the Session service
// fails with codes.Unimplemented and stays an ordinary plugin.
func (p *Plugin) Detach(ctx context.Context, opts DetachOptions) (*SessionState, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	rc := p.client.ReattachConfig()
	if rc == nil || rc.Addr == nil {
		return nil, fmt.Errorf("detach plugin %s: it is not running", p.path)
	}
	if rc.Addr.Network() != "unix" {
		return nil, fmt.Errorf("detach plugin %s: it listens on %s %s; sessions need a unix socket", p.path, rc.Addr.Network(), rc.Addr)
	}
	server := p.tls.server()
	if server == nil {
		return nil, fmt.Errorf("detach plugin %s: its certificate was not recorded", p.path)
	}
	start, _, err := procStart(rc.Pid)
	if err != nil {
		return nil, fmt.Errorf("detach plugin %s: %w", p.path, err)
	}
	raw, err := p.rpc.Dispense(SessionKey)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: dispense session: %w", p.path, err)
	}
	resp, err := raw.(pluginv1.SessionClient).Detach(ctx, &pluginv1.DetachRequest{
		IdleTimeoutMs: opts.IdleTimeout.Milliseconds(),
		MaxLifetimeMs: opts.MaxLifetime.Milliseconds(),
	})
	if err != nil {
		return nil, fmt.Errorf("plugin %s: detach: %w", p.path, err)
	}
	if int(resp.GetPid()) != rc.Pid {
		return nil, fmt.Errorf("plugin %s: detach: it reports pid %d, it was started as %d", p.path, resp.GetPid(), rc.Pid)
	}
	st := &SessionState{
		Format:     SessionStateFormat,
		Path:       p.path,
		SHA256:     hex.EncodeToString(p.sha256),
		APIVersion: p.APIVersion(),
		Network:    rc.Addr.Network(),
		Addr:       rc.Addr.String(),
		Pid:        rc.Pid,
		StartTime:  start,
		ClientCert: p.tls.clientCertPEM,
		ClientKey:  p.tls.clientKeyPEM,
		ServerCert: server,
	}
	p.session.Store(st)
	return st, nil
}

// ReattachOptions configure Reattach.
type ReattachOptions struct {
	// Logger receives go-plugin's messages; nil discards them.
	Logger hclog.Logger
}

// Validate checks a stored state before anything uses it.
func (s *SessionState) Validate() error {
	switch {
	case s == nil:
		return errors.New("session state: missing")
	case s.Format != SessionStateFormat:
		return fmt.Errorf("session state: format %d, want %d", s.Format, SessionStateFormat)
	case s.Network != "unix" || !filepath.IsAbs(s.Addr):
		return fmt.Errorf("session state: address %s %q must be an absolute unix socket path", s.Network, s.Addr)
	case s.Pid <= 1:
		return fmt.Errorf("session state: pid %d must be above 1", s.Pid)
	case s.StartTime == 0:
		return errors.New("session state: the process start time is missing")
	case s.APIVersion != APIVersion1:
		return fmt.Errorf("session state: API version %d is not served by this core (%d)", s.APIVersion, APIVersion1)
	case len(s.ClientCert) == 0 || len(s.ClientKey) == 0 || len(s.ServerCert) == 0:
		return errors.New("session state: the mTLS material is incomplete")
	}
	return nil
}

// verifyProcess checks that the session's pid is still the plugin that was
// detached (same start time, not a zombie).
func (s *SessionState) verifyProcess() error {
	start, state, err := procStart(s.Pid)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pid %d: %w", s.Pid, ErrSessionGone)
	}
	if err != nil {
		return err
	}
	if start != s.StartTime {
		return fmt.Errorf("pid %d was reused by another process: %w", s.Pid, ErrSessionGone)
	}
	if state == 'Z' || state == 'X' {
		return fmt.Errorf("pid %d has exited: %w", s.Pid, ErrSessionGone)
	}
	return nil
}

// Reattach connects to a detached plugin described by state: it checks that
// the pid is still the plugin that detached, connects over the unix socket
// with the stored client certificate, trusting only the stored plugin
// certificate, and pings it. The returned Plugin's Close only disconnects;
// Stop ends the session.
func Reattach(ctx context.Context, state *SessionState, opts ReattachOptions) (*Plugin, error) {
	if err := state.Validate(); err != nil {
		return nil, err
	}
	if err := state.verifyProcess(); err != nil {
		return nil, fmt.Errorf("reattach plugin %s: %w", state.Path, err)
	}
	// A quick probe of the socket: go-plugin's own dial does not fail
	// fast on a socket nobody listens on.
	d := net.Dialer{Timeout: reattachDialTimeout}
	c, err := d.DialContext(ctx, "unix", state.Addr)
	if err != nil {
		return nil, fmt.Errorf("reattach plugin %s: %w", state.Path, err)
	}
	_ = c.Close()
	mat, err := materialFromPEM(state.ClientCert, state.ClientKey, state.ServerCert)
	if err != nil {
		return nil, fmt.Errorf("reattach plugin %s: %w", state.Path, err)
	}
	tlsConfig, err := mat.reattachConfig()
	if err != nil {
		return nil, fmt.Errorf("reattach plugin %s: %w", state.Path, err)
	}
	sum, err := hex.DecodeString(state.SHA256)
	if err != nil {
		return nil, fmt.Errorf("reattach plugin %s: sha256 %q: %w", state.Path, state.SHA256, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: Handshake(),
		Plugins:         pluginSets()[state.APIVersion],
		Reattach: &plugin.ReattachConfig{
			Protocol:        plugin.ProtocolGRPC,
			ProtocolVersion: state.APIVersion,
			Addr:            &net.UnixAddr{Name: state.Addr, Net: "unix"},
			Pid:             state.Pid,
		},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		TLSConfig:        tlsConfig,
		Logger:           quietExitLogger{logger},
	})
	rpc, err := client.Client()
	if err != nil {
		return nil, fmt.Errorf("reattach plugin %s: %w", state.Path, err)
	}
	p := &Plugin{path: state.Path, sha256: sum, pid: state.Pid, client: client, rpc: rpc, version: state.APIVersion, tls: mat}
	p.session.Store(state)
	if err := ctx.Err(); err != nil {
		p.disconnect()
		return nil, fmt.Errorf("reattach plugin %s: %w", state.Path, err)
	}
	if err := p.Ping(); err != nil {
		p.disconnect()
		return nil, fmt.Errorf("reattach plugin %s: %w", state.Path, err)
	}
	return p, nil
}

// Session returns the session state of a detached or reattached plugin,
// nil for an ordinary one.
func (p *Plugin) Session() *SessionState { return p.session.Load() }

// disconnect drops the gRPC connection without asking the plugin to stop
// (go-plugin's GRPCClient.Close would shut it down).
func (p *Plugin) disconnect() {
	if c, ok := p.rpc.(*plugin.GRPCClient); ok && c != nil && c.Conn != nil {
		_ = c.Conn.Close()
	}
}

// Stop ends the plugin of a session: a graceful shutdown through
// go-plugin's controller, then, after a short grace or when ctx ends,
// SIGKILL of its process group (only while its pid still is the plugin),
// and its socket is removed. For an ordinary plugin it is Close.
func (p *Plugin) Stop(ctx context.Context) error {
	st := p.session.Load()
	if st == nil {
		p.Close()
		return nil
	}
	var err error
	p.close.Do(func() {
		// GRPCClient.Close asks the plugin to shut down, then closes.
		_ = p.rpc.Close()
		err = endProcess(ctx, st)
	})
	return err
}

// StopSession ends the session described by state without a Plugin: it
// reattaches to shut it down gracefully and, if that fails, kills the
// verified pid. A session whose process is already gone is success. The
// socket is removed in every case.
func StopSession(ctx context.Context, state *SessionState, opts ReattachOptions) error {
	if err := state.Validate(); err != nil {
		return err
	}
	if err := state.verifyProcess(); err != nil {
		removeSocket(state)
		if errors.Is(err, ErrSessionGone) {
			return nil
		}
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, reattachDialTimeout)
	p, err := Reattach(rctx, state, opts)
	cancel()
	if err == nil {
		return p.Stop(ctx)
	}
	return endProcess(ctx, state)
}

// endProcess waits for the session's process to exit, SIGKILLs its group
// after stopGrace (or when ctx ends), and removes the socket.
func endProcess(ctx context.Context, st *SessionState) error {
	defer removeSocket(st)
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	tick := time.NewTicker(stopPoll)
	defer tick.Stop()
	for {
		if st.verifyProcess() != nil {
			return nil
		}
		select {
		case <-tick.C:
			continue
		case <-grace.C:
		case <-ctx.Done():
		}
		break
	}
	if st.verifyProcess() != nil {
		return nil
	}
	if err := killGroup(st.Pid); err != nil {
		return fmt.Errorf("stop session plugin pid %d: %w", st.Pid, err)
	}
	return nil
}

func removeSocket(st *SessionState) {
	if st.Network == "unix" && filepath.IsAbs(st.Addr) {
		_ = os.Remove(st.Addr)
	}
}
