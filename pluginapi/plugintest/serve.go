package plugintest

import (
	"context"
	"math"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// Conn is the client side of a plugin served in-process.
type Conn struct {
	t    testing.TB
	ctx  context.Context
	set  plugin.PluginSet
	conn *grpc.ClientConn
}

// ServeOS serves impl as an OS plugin in-process and returns the client
// side. The server and connection end when the test ends.
func ServeOS(t testing.TB, impl pluginapi.OSPlugin) *Conn {
	t.Helper()
	return serve(t, pluginapi.OSPluginSet(impl))
}

// ServeTransport serves impl as a transport plugin in-process and returns
// the client side. The server and connection end when the test ends.
func ServeTransport(t testing.TB, impl pluginapi.TransportPlugin) *Conn {
	t.Helper()
	return serve(t, pluginapi.TransportPluginSet(impl))
}

// OS serves impl in-process and returns its gRPC-backed client.
func OS(t testing.TB, impl pluginapi.OSPlugin) pluginapi.OSPlugin {
	t.Helper()
	return ServeOS(t, impl).OS()
}

// Transport serves impl in-process and returns its gRPC-backed client.
func Transport(t testing.TB, impl pluginapi.TransportPlugin) pluginapi.TransportPlugin {
	t.Helper()
	return ServeTransport(t, impl).Transport()
}

// serve registers set's services on a gRPC server listening on a Unix
// socket (what go-plugin uses on Linux) and dials it with the call options
// go-plugin's client uses. go-plugin's own test helper would do the same
// but logs at debug level to stderr; its extra services (broker, stdio,
// controller) play no part in this contract.
func serve(t testing.TB, set plugin.PluginSet) *Conn {
	t.Helper()
	// A short directory: t.TempDir() names can exceed the 108-byte limit
	// of a socket path.
	dir, err := os.MkdirTemp("", "plugintest")
	if err != nil {
		t.Fatalf("plugintest: socket directory: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "plugin.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("plugintest: listen on %s: %v", sock, err)
	}
	server := plugin.DefaultGRPCServer(nil)
	for key, p := range set {
		gp, ok := p.(plugin.GRPCPlugin)
		if !ok {
			t.Fatalf("plugintest: plugin %q has no gRPC server side", key)
		}
		if err := gp.GRPCServer(nil, server); err != nil {
			t.Fatalf("plugintest: register %q: %v", key, err)
		}
	}
	go func() { _ = server.Serve(lis) }()
	t.Cleanup(server.Stop)

	conn, err := grpc.NewClient("unix://"+sock,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
	)
	if err != nil {
		t.Fatalf("plugintest: dial %s: %v", sock, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = conn.Close()
	})
	return &Conn{t: t, ctx: ctx, set: set, conn: conn}
}

// Info returns the Info service every plugin serves.
func (c *Conn) Info() pluginapi.InfoPlugin {
	c.t.Helper()
	return dispense[pluginapi.InfoPlugin](c, pluginapi.InfoKey)
}

// OS returns the OS service; the test fails if the plugin serves none.
func (c *Conn) OS() pluginapi.OSPlugin {
	c.t.Helper()
	return dispense[pluginapi.OSPlugin](c, pluginapi.OSKey)
}

// Transport returns the Transport service; the test fails if the plugin
// serves none.
func (c *Conn) Transport() pluginapi.TransportPlugin {
	c.t.Helper()
	return dispense[pluginapi.TransportPlugin](c, pluginapi.TransportKey)
}

// ClientConn returns the raw gRPC connection, for tests that speak the
// protocol in pluginapi/proto/v1 directly (malformed streams and the like).
func (c *Conn) ClientConn() *grpc.ClientConn { return c.conn }

func dispense[T any](c *Conn, key string) T {
	c.t.Helper()
	var zero T
	p, ok := c.set[key].(plugin.GRPCPlugin)
	if !ok {
		c.t.Fatalf("plugintest: the plugin does not serve %q", key)
		return zero
	}
	raw, err := p.GRPCClient(c.ctx, nil, c.conn)
	if err != nil {
		c.t.Fatalf("plugintest: dispense %s: %v", key, err)
		return zero
	}
	v, ok := raw.(T)
	if !ok {
		c.t.Fatalf("plugintest: dispense %s: got %T, which does not implement the %s service", key, raw, key)
	}
	return v
}
