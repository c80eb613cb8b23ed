package sshtransport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"
)

// keepaliveRequest is OpenSSH's keepalive global request; servers answer it
// (usually with a failure reply), which proves they are alive.
const keepaliveRequest = "keepalive@openssh.com"

var errPoolClosed = errors.New("the transport is closed")

// pool keeps one SSH connection per endpoint key.
type pool struct {
	log hclog.Logger

	mu     sync.Mutex
	slots  map[string]*slot
	closed bool
	wg     sync.WaitGroup // keepalive and watch goroutines
}

// slot serialises dialing for one key; conn is guarded by pool.mu.
type slot struct {
	dialing chan struct{} // 1-buffered; held while dialing
	conn    *conn
}

func newPool(log hclog.Logger) *pool {
	return &pool{log: log, slots: map[string]*slot{}}
}

// get returns a live pooled connection for e or dials one. reused tells
// whether the connection existed before the call (it may then be stale in
// ways keepalives have not noticed yet).
func (p *pool) get(ctx context.Context, e *endpoint) (c *conn, reused bool, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, errPoolClosed
	}
	s := p.slots[e.key]
	if s == nil {
		s = &slot{dialing: make(chan struct{}, 1)}
		p.slots[e.key] = s
	}
	p.mu.Unlock()

	select {
	case s.dialing <- struct{}{}:
	case <-ctx.Done():
		return nil, false, fmt.Errorf("wait for another dial to %s: %w", e, ctx.Err())
	}
	defer func() { <-s.dialing }()

	p.mu.Lock()
	if c := s.conn; c != nil && c.alive() {
		p.mu.Unlock()
		return c, true, nil
	}
	p.mu.Unlock()

	client, err := dial(ctx, e)
	if err != nil {
		return nil, false, err
	}
	c = &conn{client: client, name: e.String(), done: make(chan struct{})}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = client.Close()
		return nil, false, errPoolClosed
	}
	s.conn = c
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		c.close(client.Wait())
	}()
	go func() {
		defer p.wg.Done()
		c.keepalive(e.opts.KeepaliveInterval, e.opts.KeepaliveCountMax, p.log)
	}()
	p.log.Debug("connected", "target", e.String(), "options", e.opts.String())
	return c, false, nil
}

// size returns the number of live connections.
func (p *pool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.slots {
		if s.conn != nil && s.conn.alive() {
			n++
		}
	}
	return n
}

// close ends every connection and waits for their goroutines.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	var conns []*conn
	for _, s := range p.slots {
		if s.conn != nil {
			conns = append(conns, s.conn)
		}
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close(errPoolClosed)
	}
	p.wg.Wait()
}

// conn is one pooled SSH connection.
type conn struct {
	client *ssh.Client
	name   string // user@host:port

	once   sync.Once
	done   chan struct{} // closed once the connection is closed
	reason error         // why it closed; valid after done
}

func (c *conn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// close closes the connection for reason; the first reason wins.
func (c *conn) close(reason error) {
	c.once.Do(func() {
		if reason == nil {
			reason = errors.New("the server closed the connection")
		}
		c.reason = reason
		close(c.done)
		_ = c.client.Close()
	})
}

// closeReason says why the connection closed, or nil while it is open.
func (c *conn) closeReason() error {
	if c.alive() {
		return nil
	}
	return c.reason
}

// ping sends one keepalive and waits for the answer or ctx.
func (c *conn) ping(ctx context.Context) error {
	answered := make(chan error, 1)
	go func() {
		_, _, err := c.client.SendRequest(keepaliveRequest, true, nil)
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			return fmt.Errorf("keepalive to %s: %w", c.name, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("keepalive to %s: %w", c.name, ctx.Err())
	case <-c.done:
		return fmt.Errorf("keepalive to %s: connection closed: %w", c.name, c.reason)
	}
}

// keepalive sends a keepalive request every interval and closes the
// connection when countMax intervals in a row passed without any answer.
// See the package documentation for the resulting detection bound.
func (c *conn) keepalive(interval time.Duration, countMax int, log hclog.Logger) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var senders sync.WaitGroup
	defer senders.Wait() // they return once the connection is closed
	answers := make(chan struct{}, 1)
	answered := true // the handshake just proved the peer alive
	missed := 0
	for {
		select {
		case <-c.done:
			return
		case <-answers:
			answered = true
		case <-ticker.C:
			if answered {
				missed = 0
			} else {
				missed++
			}
			if missed >= countMax {
				err := fmt.Errorf("no answer to keepalives for %d intervals of %s", missed, interval)
				log.Warn("closing an unresponsive connection", "target", c.name, "error", err)
				c.close(err)
				return
			}
			answered = false
			// SendRequest blocks until the answer; with a frozen peer
			// it returns only when the connection is closed.
			senders.Add(1)
			go func() {
				defer senders.Done()
				if _, _, err := c.client.SendRequest(keepaliveRequest, true, nil); err == nil {
					select {
					case answers <- struct{}{}:
					default:
					}
				}
			}()
		}
	}
}
