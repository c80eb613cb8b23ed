package standin

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// Loopback addresses handed to VMIs come from 127.64.0.0/10, away from
// 127.0.0.1 (where other test servers listen on random ports).
const (
	poolBase = uint32(127)<<24 | uint32(64)<<16
	poolSize = uint32(1) << 22 // 127.64.0.0 - 127.127.255.255
)

// ipPool hands out unique loopback addresses. It starts at a random offset
// so stand-ins in concurrently running test binaries rarely meet, and skips
// an address whose port is taken by someone else (found by a trial bind).
type ipPool struct {
	mu     sync.Mutex
	next   uint32
	inUse  map[netip.Addr]bool
	port   int
	probe  func(addr string) error
	limits int
}

func newIPPool(port int) *ipPool {
	return &ipPool{
		next:   rand.Uint32N(poolSize),
		inUse:  map[netip.Addr]bool{},
		port:   port,
		probe:  probeListen,
		limits: 64,
	}
}

// errPoolExhausted is returned when no free address was found.
var errPoolExhausted = errors.New("no free loopback address")

// get reserves a free address: host byte neither 0 nor 255, not in use by
// this pool, and port free on it (a trial bind).
func (p *ipPool) get() (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var lastErr error
	for attempts := 0; attempts < p.limits; {
		off := p.next % poolSize
		p.next++
		v := poolBase + off
		if b := byte(v); b == 0 || b == 255 {
			continue
		}
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if p.inUse[a] {
			continue
		}
		attempts++
		if err := p.probe(net.JoinHostPort(a.String(), strconv.Itoa(p.port))); err != nil {
			lastErr = err
			continue
		}
		p.inUse[a] = true
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("%w for port %d after %d attempts (last: %v)", errPoolExhausted, p.port, p.limits, lastErr)
}

// release returns a to the pool.
func (p *ipPool) release(a netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.inUse, a)
}

// used returns how many addresses are reserved.
func (p *ipPool) used() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inUse)
}

// probeListen checks that addr can be bound right now.
func probeListen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}
