package sshtransport

import (
	"context"
	"errors"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

var _ pluginapi.SessionLiveness = (*Transport)(nil)

// errNoLiveConnection is Alive's answer when the pool holds no open
// connection: the guest closed it (its sshd or VM is gone) or keepalives
// gave up on it.
var errNoLiveConnection = errors.New("no live pooled SSH connection")

// Alive implements pluginapi.SessionLiveness for a detached transport (a
// per-job session): it sends a keepalive@openssh.com request on every
// pooled connection and succeeds if one answers. With no open connection
// the session has nothing to offer (its guest is gone, e.g. gc deleted the
// VM), so the watchdog ends the plugin.
func (t *Transport) Alive(ctx context.Context) error {
	return t.pool.alive(ctx)
}

// alive pings the pool's open connections; one answer is enough.
func (p *pool) alive(ctx context.Context) error {
	p.mu.Lock()
	var conns []*conn
	for _, s := range p.slots {
		if s.conn != nil && s.conn.alive() {
			conns = append(conns, s.conn)
		}
	}
	p.mu.Unlock()
	if len(conns) == 0 {
		return errNoLiveConnection
	}
	var errs []error
	for _, c := range conns {
		err := c.ping(ctx)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
