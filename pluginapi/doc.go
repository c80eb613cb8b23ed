// Package pluginapi is the public contract between gitlab-runner-kubevirt and
// its plugins.
//
// A plugin is a separate binary named gitlab-runner-kubevirt-plugin-<name>
// that the core launches with hashicorp/go-plugin over gRPC (AutoMTLS). Every
// plugin serves the Info service (GetInfo, Health) and exactly one of:
//
//   - OS: renders first-boot data (cloud-init, Cloudbase-Init, ...) for a
//     guest family and says how scripts run on it;
//   - Transport: reaches a booted guest and runs commands on it (SSH, ...).
//
// A plugin author implements [OSPlugin] or [TransportPlugin] and calls
// [ServeOS] or [ServeTransport] from main; the wire format lives in
// pluginapi/proto/v1. The core (and the conformance kit in
// pluginapi/conformance) launches plugins with [Launch].
//
// Plugins must not write to stdout: go-plugin uses it for the handshake. Log
// through the [hclog.Logger] given by [Logger]; it writes to stderr, where the
// core picks the lines up and routes them into its own log.
package pluginapi
