package pluginapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// DefaultStartTimeout bounds launch + handshake + AutoMTLS of one plugin.
const DefaultStartTimeout = 10 * time.Second

// LaunchOptions configures Launch.
type LaunchOptions struct {
	// Path of the plugin binary.
	Path string
	// SHA256 is the digest the binary must have. go-plugin hashes the file
	// again, with a fresh hash, right before it starts it (SecureConfig).
	// Required: an unpinned plugin is never started.
	SHA256 []byte
	// Logger receives go-plugin's messages and the plugin's own log lines
	// (it logs JSON on stderr). Nil discards them.
	Logger hclog.Logger
	// StartTimeout bounds the start and handshake; zero means
	// DefaultStartTimeout. A context deadline that comes sooner wins.
	StartTimeout time.Duration
	// Detachable launches the plugin without a parent-death signal, so
	// that [Plugin.Detach] can make it outlive this process. Until it
	// detaches, a plugin built with pluginapi still exits when its parent
	// dies (it watches its parent pid).
	Detachable bool
	// SocketDir, when set, is the directory the plugin creates its unix
	// socket in (go-plugin's PLUGIN_UNIX_SOCKET_DIR); a session keeps it
	// in a 0700 directory of the job. A directory too long for a socket
	// path (108 bytes on Linux) is ignored: the plugin then uses its
	// default, os.TempDir().
	SocketDir string
	// Env is the plugin's whole environment. The core's own environment is
	// never inherited, so Kubernetes credentials and job variables do not
	// reach plugins by accident.
	Env []string
}

// Plugin is a started plugin process with a negotiated gRPC connection.
// Close it on every path: it kills the process and reaps it, unless the
// plugin was detached ([Plugin.Detach]) or reattached ([Reattach]); then
// Close only drops the connection and [Plugin.Stop] ends the plugin.
type Plugin struct {
	path   string
	sha256 []byte
	pid    int // leader of the plugin's process group
	client *plugin.Client
	rpc    plugin.ClientProtocol
	close  sync.Once

	// version is the negotiated API version of a reattached plugin
	// (go-plugin only knows it for plugins it launched).
	version int
	// tls is the connection's mTLS material, kept for Detach.
	tls *tlsMaterial
	// cancelStart kills a launched plugin (exec.CommandContext); nil for
	// a reattached one.
	cancelStart context.CancelFunc
	// session is set once the plugin is detached or was reattached: it
	// then outlives this process and Close only disconnects.
	session atomic.Pointer[SessionState]
}

// maxSocketPath is the size of sun_path on Linux, terminating NUL
// included. go-plugin names sockets <dir>/plugin<up to 10 digits>.
const maxSocketPath = 108

// closeGrace bounds go-plugin's own shutdown (a graceful stop, then SIGKILL
// of the plugin after two seconds) before the plugin's whole process group
// is killed, which also releases a stdout pipe held open by a child the
// plugin started.
const closeGrace = 3 * time.Second

// Launch starts the plugin binary at opts.Path, checks its checksum,
// negotiates the API version over a mutual-TLS gRPC connection (fresh keys
// per launch) and returns the connected plugin. Cancelling ctx during the
// start kills the plugin at once.
func Launch(ctx context.Context, opts LaunchOptions) (*Plugin, error) {
	if len(opts.SHA256) != sha256.Size {
		return nil, fmt.Errorf("launch plugin %s: a sha256 checksum is required", opts.Path)
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < timeout {
		timeout = time.Until(deadline)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("launch plugin %s: %w", opts.Path, context.DeadlineExceeded)
	}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	// Our own mTLS instead of go-plugin's AutoMTLS: the same protocol (the
	// client certificate goes in PLUGIN_CLIENT_CERT, the plugin answers
	// with its certificate in the handshake line, which go-plugin loads
	// into tlsConfig.RootCAs), but the material stays readable so that a
	// detached plugin can be reattached, and the client key is P-256
	// instead of P-521 (cheaper to generate and to handshake with).
	mat, err := newTLSMaterial()
	if err != nil {
		return nil, fmt.Errorf("launch plugin %s: %w", opts.Path, err)
	}
	// The start context kills the plugin (exec.CommandContext) when ctx
	// ends during the handshake, so a SIGTERM does not wait for the start
	// timeout. Once started, the plugin no longer depends on ctx: a
	// cancelled stage still closes its plugins in order.
	startCtx, cancelStart := context.WithCancel(context.Background())
	stopWatch := context.AfterFunc(ctx, cancelStart)
	cmd := exec.CommandContext(startCtx, opts.Path)
	cmd.Env = append(slices.Clip(opts.Env), "PLUGIN_CLIENT_CERT="+string(mat.clientCertPEM))
	if opts.SocketDir != "" && len(opts.SocketDir)+len("/plugin")+12 < maxSocketPath {
		cmd.Env = append(cmd.Env, plugin.EnvUnixSocketDir+"="+opts.SocketDir)
	}
	cmd.SysProcAttr = childProcAttr(opts.Detachable)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake(),
		VersionedPlugins: pluginSets(),
		Cmd:              cmd,
		SecureConfig:     &plugin.SecureConfig{Checksum: opts.SHA256, Hash: sha256.New()},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		TLSConfig:        mat.clientConfig(),
		StartTimeout:     timeout,
		Logger:           quietExitLogger{logger},
		SkipHostEnv:      true,
	})
	rpc, err := client.Client()
	p := &Plugin{path: opts.Path, sha256: opts.SHA256, client: client, rpc: rpc, tls: mat, cancelStart: cancelStart}
	if cmd.Process != nil {
		p.pid = cmd.Process.Pid
	}
	if !stopWatch() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		// The process (a non-plugin, or a plugin that failed the
		// handshake) may have started children that hold its stdout open:
		// kill the group first so go-plugin's Kill does not wait for them.
		killProcessGroup(p.pid)
		p.Close()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, fmt.Errorf("launch plugin %s: its sha256 no longer matches the pinned checksum %x", opts.Path, opts.SHA256)
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("launch plugin %s: %w", opts.Path, cerr)
		}
		return nil, handshakeError(opts.Path, err)
	}
	return p, nil
}

// Path returns the binary the plugin was started from.
func (p *Plugin) Path() string { return p.path }

// APIVersion returns the contract version negotiated with the plugin.
func (p *Plugin) APIVersion() int {
	if p.version != 0 {
		return p.version
	}
	return p.client.NegotiatedVersion()
}

// Pid returns the plugin's process id, or 0 if it is not running.
func (p *Plugin) Pid() int {
	if p.version != 0 {
		return p.pid
	}
	if rc := p.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Info returns the Info service every plugin serves.
func (p *Plugin) Info() (InfoPlugin, error) {
	raw, err := p.rpc.Dispense(InfoKey)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: dispense info: %w", p.path, err)
	}
	return raw.(InfoPlugin), nil
}

// OS returns the plugin's OS service. Check PluginInfo.Kind first: a
// transport plugin answers its calls with Unimplemented.
func (p *Plugin) OS() (OSPlugin, error) {
	raw, err := p.rpc.Dispense(OSKey)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: dispense os: %w", p.path, err)
	}
	return raw.(OSPlugin), nil
}

// Transport returns the plugin's Transport service. Check PluginInfo.Kind
// first: an OS plugin answers its calls with Unimplemented.
func (p *Plugin) Transport() (TransportPlugin, error) {
	raw, err := p.rpc.Dispense(TransportKey)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: dispense transport: %w", p.path, err)
	}
	return raw.(TransportPlugin), nil
}

// Ping checks that the plugin's gRPC server answers.
func (p *Plugin) Ping() error {
	if err := p.rpc.Ping(); err != nil {
		return fmt.Errorf("plugin %s: ping: %w", p.path, err)
	}
	return nil
}

// Exited reports whether the plugin process has ended.
func (p *Plugin) Exited() bool { return p.client.Exited() }

// Close ends the plugin: a graceful stop, then SIGKILL after two seconds,
// and the process is reaped; then every process left in the plugin's
// process group is killed. A detached or reattached plugin is not ended:
// Close only drops this process's connection to it (see [Plugin.Stop]).
// It is safe to call more than once, and from several goroutines.
func (p *Plugin) Close() {
	// Once only: after the first Close the pid may belong to someone else.
	p.close.Do(func() {
		if p.session.Load() != nil {
			p.disconnect()
			return
		}
		if p.cancelStart != nil {
			defer p.cancelStart()
		}
		// If go-plugin's Kill is still waiting after closeGrace, a child of
		// the plugin holds its stdout or stderr open: kill the group to
		// release it.
		t := time.AfterFunc(closeGrace, func() { killProcessGroup(p.pid) })
		p.client.Kill()
		t.Stop()
		killProcessGroup(p.pid)
	})
}

// quietExitLogger demotes go-plugin's "plugin process exited" line from
// info to debug. go-plugin logs it for every plugin at every normal stop;
// in a stage the runner log is the job log, and a line per plugin per stage
// is noise. Failed exits stay at error level (go-plugin logs those with
// Error), and lines the plugin itself logs (through Named loggers) keep
// their level.
type quietExitLogger struct {
	hclog.Logger
}

func (l quietExitLogger) Info(msg string, args ...any) {
	if msg == "plugin process exited" {
		l.Logger.Debug(msg, args...)
		return
	}
	l.Logger.Info(msg, args...)
}
