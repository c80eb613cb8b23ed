package sshtransport

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// Name is the plugin's name; its binary is gitlab-runner-kubevirt-plugin-transport-ssh.
const Name = "transport-ssh"

// DefaultVersion is the plugin version reported when Config.Version is empty.
const DefaultVersion = "0.1.0"

// Capabilities returns the feature flags the plugin declares in GetInfo.
func Capabilities() []string {
	return []string{"upload", "signal", "keepalive", "password", "key"}
}

// Backoff of WaitReady between attempts.
const (
	retryInitial = 100 * time.Millisecond
	retryMax     = 3 * time.Second
)

// Config configures a Transport.
type Config struct {
	// Logger receives the plugin's log; nil discards it.
	Logger hclog.Logger
	// Version is reported by GetInfo; empty means DefaultVersion.
	Version string
}

// Transport is the SSH implementation of pluginapi.TransportPlugin. It is
// safe for concurrent use. Close it when done.
type Transport struct {
	log     hclog.Logger
	version string
	pool    *pool
}

var _ pluginapi.TransportPlugin = (*Transport)(nil)

// New returns a Transport with an empty connection pool.
func New(cfg Config) *Transport {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	version := cfg.Version
	if version == "" {
		version = DefaultVersion
	}
	return &Transport{log: log, version: version, pool: newPool(log)}
}

// Close closes every pooled connection; running commands end with
// Disconnected. Calls after Close fail.
func (t *Transport) Close() { t.pool.close() }

// GetInfo describes the plugin.
func (t *Transport) GetInfo(context.Context) (*pluginv1.PluginInfo, error) {
	return &pluginv1.PluginInfo{
		Name:         Name,
		Kind:         pluginv1.Kind_KIND_TRANSPORT,
		Version:      t.version,
		ApiVersions:  []uint32{pluginapi.APIVersion1},
		Capabilities: Capabilities(),
		Description:  "SSH transport: pinned host keys, key or password login, exec with signals, SFTP upload",
	}, nil
}

// Health reports OK: the plugin needs nothing but the network.
func (t *Transport) Health(context.Context) (*pluginv1.HealthResponse, error) {
	return &pluginv1.HealthResponse{
		State:       pluginv1.HealthResponse_STATE_OK,
		Description: fmt.Sprintf("ready; %d pooled connection(s)", t.pool.size()),
	}, nil
}

// ValidateTarget checks target, its options above all, without connecting
// (pluginapi.TargetValidator): the core calls it before it creates the job's
// objects.
func (t *Transport) ValidateTarget(_ context.Context, target *pluginv1.Target) error {
	_, err := parseTarget(target)
	return err
}

// WaitReady retries dial, handshake and login with capped exponential
// backoff and jitter until one succeeds or ctx ends. Every failure is
// retried, a host key mismatch included (a guest may serve a temporary key
// until its first-boot data is applied). When ctx ends, the error is a
// DeadlineExceeded (or Canceled) status carrying the last attempt's cause.
// The connection stays in the pool for the calls that follow.
func (t *Transport) WaitReady(ctx context.Context, target *pluginv1.Target) (uint32, error) {
	e, err := parseTarget(target)
	if err != nil {
		return 0, err
	}
	// Answer a little before the caller's deadline: a reply sent at the
	// deadline races the caller's own cancellation, and the caller then
	// gets a bare DeadlineExceeded instead of the last cause (e.g. a host
	// key mismatch).
	ctx, cancel := answerBefore(ctx)
	defer cancel()
	began := time.Now()
	b := newBackoff(retryInitial, retryMax)
	var attempts uint32
	var lastErr error
	for {
		attempts++
		err := t.tryReady(ctx, e)
		if err == nil {
			t.log.Debug("guest ready", "target", e.String(), "attempts", attempts)
			return attempts, nil
		}
		// An attempt cut short by ctx says less than the one before it.
		if lastErr == nil || !expired(ctx) {
			lastErr = err
		}
		if expired(ctx) {
			break
		}
		delay := b.delay()
		t.log.Debug("guest not ready", "target", e.String(), "attempt", attempts, "retry_in", delay, "error", err)
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
		}
		if ctx.Err() != nil {
			break
		}
	}
	code := codes.DeadlineExceeded
	if errors.Is(ctx.Err(), context.Canceled) {
		code = codes.Canceled
	}
	return attempts, status.Errorf(code, "wait ready %s: not reachable after %d attempt(s) in %s: last error: %v",
		e, attempts, time.Since(began).Round(time.Millisecond), lastErr)
}

// answerBefore returns ctx with its deadline moved earlier by a tenth of
// the time left, at most a second, so that a reply still reaches the caller.
func answerBefore(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := min(time.Second, time.Until(deadline)/10)
	return context.WithDeadline(ctx, deadline.Add(-margin))
}

// expired reports whether ctx has ended or its deadline has passed. The
// second test matters: a network deadline set from ctx's deadline may fire
// a moment before ctx itself reports DeadlineExceeded.
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

// tryReady makes one attempt: a pooled connection must answer a keepalive
// (it may have died unnoticed), a new one has just proved itself.
func (t *Transport) tryReady(ctx context.Context, e *endpoint) error {
	c, reused, err := t.pool.get(ctx, e)
	if err != nil {
		return err
	}
	if !reused {
		return nil
	}
	pingCtx, cancel := context.WithTimeout(ctx, e.opts.ConnectTimeout)
	defer cancel()
	if err := c.ping(pingCtx); err != nil {
		c.close(err)
		return err
	}
	return nil
}

// connect returns a pooled connection and what open made on it (a session,
// an SFTP client). When open fails on a reused connection for any reason
// but a refusal by the server (which proves the connection alive, e.g.
// MaxSessions reached), the connection died unnoticed: it is dropped and
// one new connection is dialled.
func connect[T any](ctx context.Context, t *Transport, e *endpoint, open func(*ssh.Client) (T, error)) (*conn, T, error) {
	var zero T
	c, reused, err := t.pool.get(ctx, e)
	if err != nil {
		return nil, zero, err
	}
	v, err := open(c.client)
	if err == nil {
		return c, v, nil
	}
	var refused *ssh.OpenChannelError
	if !reused || errors.As(err, &refused) {
		return nil, zero, fmt.Errorf("open a channel to %s: %w", e, err)
	}
	t.log.Debug("pooled connection failed; reconnecting", "target", e.String(), "error", err)
	c.close(fmt.Errorf("open a channel: %w", err))
	if c, _, err = t.pool.get(ctx, e); err != nil {
		return nil, zero, err
	}
	if v, err = open(c.client); err != nil {
		return nil, zero, fmt.Errorf("open a channel to %s: %w", e, err)
	}
	return c, v, nil
}
