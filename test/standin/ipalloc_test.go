package standin

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func TestIPPool(t *testing.T) {
	tests := []struct {
		name     string
		n        int                    // addresses to take
		busy     func(addr string) bool // trial bind fails
		wantErr  error
		checkAll func(t *testing.T, addrs []string)
	}{
		{
			name: "unique loopback addresses in 127.64.0.0/10",
			n:    300,
			checkAll: func(t *testing.T, addrs []string) {
				seen := map[string]bool{}
				_, pool, _ := net.ParseCIDR("127.64.0.0/10")
				for _, a := range addrs {
					ip := net.ParseIP(a)
					if seen[a] || !pool.Contains(ip) || ip.To4()[3] == 0 || ip.To4()[3] == 255 {
						t.Errorf("address %s: duplicate, outside the pool, or a .0/.255 address", a)
					}
					seen[a] = true
				}
			},
		},
		{
			name: "addresses whose port is taken are skipped",
			n:    5,
			busy: func(addr string) bool { return strings.HasSuffix(strings.Split(addr, ":")[0], "1") },
			checkAll: func(t *testing.T, addrs []string) {
				for _, a := range addrs {
					if strings.HasSuffix(a, "1") {
						t.Errorf("got busy address %s", a)
					}
				}
			},
		},
		{
			name:    "every address busy",
			n:       1,
			busy:    func(string) bool { return true },
			wantErr: errPoolExhausted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIPPool(22)
			p.probe = func(addr string) error {
				if tt.busy != nil && tt.busy(addr) {
					return errors.New("address already in use")
				}
				return nil
			}
			var addrs []string
			for range tt.n {
				a, err := p.get()
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("err = %v, want %v", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				addrs = append(addrs, a.String())
			}
			if p.used() != tt.n {
				t.Errorf("used() = %d, want %d", p.used(), tt.n)
			}
			tt.checkAll(t, addrs)
		})
	}
}

func TestIPPoolReleaseAndWrap(t *testing.T) {
	p := newIPPool(22)
	p.probe = func(string) error { return nil }
	p.next = poolSize - 2 // the last addresses, then wrap around
	a, err := p.get()
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.get()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("same address twice: %s", a)
	}
	if b.As4()[1] != 64 {
		t.Errorf("after the end of the pool got %s, want a wrap to 127.64.x.x", b)
	}
	p.release(a)
	p.release(b)
	if p.used() != 0 {
		t.Errorf("used() = %d after releasing everything", p.used())
	}
}
