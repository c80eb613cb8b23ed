package pluginapi

import (
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// LogLevelEnv names the environment variable through which the core passes
// its log level to plugins ("trace", "debug", "info", "warn", "error").
const LogLevelEnv = "GITLAB_RUNNER_KUBEVIRT_PLUGIN_LOG_LEVEL"

// ServeOS serves impl as an OS plugin. Call it from main; it returns when the
// core ends the plugin.
func ServeOS(impl OSPlugin) {
	serve(OSPluginSet(impl), impl)
}

// ServeTransport serves impl as a transport plugin. Call it from main; it
// returns when the core ends the plugin.
func ServeTransport(impl TransportPlugin) {
	serve(TransportPluginSet(impl), impl)
}

// serve serves set plus the Session service (see [SessionState]): the
// plugin can detach from the core and be reattached by a later stage. impl
// may implement [SessionLiveness].
func serve(set plugin.PluginSet, impl any) {
	log := Logger()
	sess := newSessionServer(impl, log)
	set[SessionKey] = &sessionGRPCPlugin{srv: sess}
	// Direct output (directout.go): a transport writes Exec output into
	// the core's own descriptors; the side channel goes when Serve returns.
	if tp, ok := set[TransportKey].(*transportGRPCPlugin); ok {
		out := newDirectOutput(log)
		defer out.close()
		tp.out = out
	}
	go sess.watchParent()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake(),
		VersionedPlugins: map[int]plugin.PluginSet{APIVersion1: set},
		GRPCServer:       sess.grpcServer,
		Logger:           log,
	})
}

// Logger returns the logger a plugin should use: JSON lines on stderr, which
// the core parses and routes into its own log at the same level. Never log
// secrets (passwords, private keys): the core's log is the runner's log.
func Logger() hclog.Logger {
	level := hclog.LevelFromString(os.Getenv(LogLevelEnv))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Output:     os.Stderr,
		JSONFormat: true,
		Level:      level,
	})
}

// pluginSets is the client-side view: every kind this core understands, per
// API version. Dispensing a kind the plugin does not serve fails on first
// call with Unimplemented, so callers check PluginInfo.Kind first.
func pluginSets() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		APIVersion1: {
			InfoKey:      &infoGRPCPlugin{},
			OSKey:        &osGRPCPlugin{},
			TransportKey: &transportGRPCPlugin{},
			SessionKey:   &sessionGRPCPlugin{},
		},
	}
}
