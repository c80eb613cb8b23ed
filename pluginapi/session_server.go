package pluginapi

import (
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
)

// Watchdog cadence of a detached plugin.
const (
	// watchdogTick is how often the watchdog looks at the clock.
	watchdogTick = 250 * time.Millisecond
	// aliveEvery is how often an idle detached plugin asks its
	// implementation whether its target is still there.
	aliveEvery = 2 * time.Second
	// aliveTimeout bounds one Alive call.
	aliveTimeout = 5 * time.Second
)

// contractPrefix is the gRPC method prefix of this contract's services.
// go-plugin's own services (broker, controller, stdio, health) keep streams
// open for as long as a client is connected; only calls to the contract
// count as activity.
const contractPrefix = "/gitlabrunnerkubevirt.plugin."

// sessionServer is the plugin side of sessions: it counts calls in flight
// (through interceptors on the plugin's gRPC server) and, once detached,
// runs the watchdog that ends the plugin.
type sessionServer struct {
	impl any // the plugin implementation; may implement SessionLiveness
	log  hclog.Logger

	inflight atomic.Int64
	last     atomic.Int64 // unix nanos of the last call start or end

	mu       sync.Mutex
	server   *grpc.Server
	detached bool
	opts     DetachOptions
	deadline time.Time
	stopOnce sync.Once
}

func newSessionServer(impl any, log hclog.Logger) *sessionServer {
	s := &sessionServer{impl: impl, log: log}
	s.last.Store(time.Now().UnixNano())
	return s
}

// grpcServer is the ServeConfig.GRPCServer factory: go-plugin's default
// server plus the activity interceptors.
func (s *sessionServer) grpcServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.ChainUnaryInterceptor(s.unary), grpc.ChainStreamInterceptor(s.stream))
	srv := grpc.NewServer(opts...)
	s.mu.Lock()
	s.server = srv
	s.mu.Unlock()
	return srv
}

func (s *sessionServer) begin(method string) func() {
	if !strings.HasPrefix(method, contractPrefix) {
		return func() {}
	}
	s.inflight.Add(1)
	s.last.Store(time.Now().UnixNano())
	return func() {
		s.last.Store(time.Now().UnixNano())
		s.inflight.Add(-1)
	}
}

func (s *sessionServer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	defer s.begin(info.FullMethod)()
	return handler(ctx, req)
}

func (s *sessionServer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	defer s.begin(info.FullMethod)()
	return handler(srv, ss)
}

// parentPoll is how often a plugin checks that its parent still runs.
const parentPoll = 200 * time.Millisecond

// watchParent ends the plugin when the process that started it is gone,
// unless the plugin was detached: a detachable launch has no parent-death
// signal, and a core killed before it detached the plugin must not leave
// it behind.
func (s *sessionServer) watchParent() {
	ppid := os.Getppid()
	if ppid <= 1 {
		return
	}
	t := time.NewTicker(parentPoll)
	defer t.Stop()
	for range t.C {
		s.mu.Lock()
		detached := s.detached
		s.mu.Unlock()
		if detached {
			return
		}
		if os.Getppid() != ppid {
			s.log.Info("the core that started this plugin is gone: exiting")
			os.Exit(1)
		}
	}
}

// detach makes the process independent of its parent and starts the
// watchdog. A second call updates the bounds.
func (s *sessionServer) detach(opts DetachOptions) (int, error) {
	if err := detachProcess(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	first := !s.detached
	s.detached = true
	s.opts = opts
	s.deadline = time.Now().Add(opts.MaxLifetime)
	s.mu.Unlock()
	s.log.Debug("detached", "idle_timeout", opts.IdleTimeout.String(), "max_lifetime", opts.MaxLifetime.String())
	if first {
		go s.watchdog()
	}
	return os.Getpid(), nil
}

// watchdog ends the plugin when it has been idle for the idle timeout, when
// its lifetime is over, or when its implementation says its target is gone.
func (s *sessionServer) watchdog() {
	t := time.NewTicker(watchdogTick)
	defer t.Stop()
	var lastAlive time.Time
	for range t.C {
		s.mu.Lock()
		opts, deadline := s.opts, s.deadline
		s.mu.Unlock()
		now := time.Now()
		if now.After(deadline) {
			s.end("the session's maximum lifetime passed", nil)
			return
		}
		if s.inflight.Load() > 0 {
			continue
		}
		idle := now.Sub(time.Unix(0, s.last.Load()))
		if idle >= opts.IdleTimeout {
			s.end("the session was idle for "+opts.IdleTimeout.String(), nil)
			return
		}
		if l, ok := s.impl.(SessionLiveness); ok && now.Sub(lastAlive) >= aliveEvery {
			lastAlive = now
			ctx, cancel := context.WithTimeout(context.Background(), aliveTimeout)
			err := l.Alive(ctx)
			cancel()
			// A call that started meanwhile proves the session in use.
			if err != nil && s.inflight.Load() == 0 {
				s.end("the session's target is gone", err)
				return
			}
		}
	}
}

// end stops the gRPC server, which makes Serve return and the plugin exit.
func (s *sessionServer) end(why string, err error) {
	s.stopOnce.Do(func() {
		if err != nil {
			s.log.Info("ending detached plugin", "reason", why, "error", err)
		} else {
			s.log.Info("ending detached plugin", "reason", why)
		}
		s.mu.Lock()
		srv := s.server
		s.mu.Unlock()
		if srv == nil {
			os.Exit(0)
		}
		srv.Stop()
	})
}
