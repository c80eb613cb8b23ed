package pluginapi

import "github.com/hashicorp/go-plugin"

// OSPluginSet returns the go-plugin plugin set that [ServeOS] serves for
// impl: the Info service and the OS service, under [InfoKey] and [OSKey].
//
// Plugin binaries call ServeOS instead. The set exists for harnesses that
// serve an implementation in-process over real gRPC, such as
// pluginapi/plugintest; its client side (Dispense) returns the same
// gRPC-backed [InfoPlugin] and [OSPlugin] that [Launch] gives the core.
func OSPluginSet(impl OSPlugin) plugin.PluginSet {
	return plugin.PluginSet{
		InfoKey: &infoGRPCPlugin{impl: impl},
		OSKey:   &osGRPCPlugin{impl: impl},
	}
}

// TransportPluginSet returns the go-plugin plugin set that [ServeTransport]
// serves for impl: the Info service and the Transport service, under
// [InfoKey] and [TransportKey]. See [OSPluginSet] for its use.
func TransportPluginSet(impl TransportPlugin) plugin.PluginSet {
	return plugin.PluginSet{
		InfoKey:      &infoGRPCPlugin{impl: impl},
		TransportKey: &transportGRPCPlugin{impl: impl},
	}
}
