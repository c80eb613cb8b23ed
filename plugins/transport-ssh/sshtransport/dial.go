package sshtransport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/crypto/ssh"
)

// dial connects to e and logs in, within ctx and e's connect timeout.
// x/crypto/ssh knows no contexts: the handshake is bounded by a deadline on
// the TCP connection, moved into the past when ctx ends early.
func dial(ctx context.Context, e *endpoint) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", e.addr, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	conn, chans, reqs, err := ssh.NewClientConn(nc, e.addr, e.clientConfig())
	if !stop() && err == nil {
		// ctx ended right after the handshake and moved the deadline
		// into the past: the connection is unusable.
		_ = conn.Close()
		err = ctx.Err()
	}
	if err != nil {
		_ = nc.Close()
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			return nil, fmt.Errorf("ssh login to %s: %w: %w", e, ctxErr, err)
		}
		return nil, fmt.Errorf("ssh login to %s: %w", e, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return ssh.NewClient(conn, chans, reqs), nil
}
