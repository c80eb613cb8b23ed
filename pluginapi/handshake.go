package pluginapi

import (
	"github.com/hashicorp/go-plugin"
)

// APIVersion1 is the first version of the plugin contract
// (pluginapi/proto/v1). go-plugin negotiates the highest version that both
// the core and the plugin serve.
const APIVersion1 = 1

// BinaryPrefix is the file name prefix of every plugin binary; the rest of
// the name is the plugin's name.
const BinaryPrefix = "gitlab-runner-kubevirt-plugin-"

// Keys of the plugin set a plugin serves. Every plugin serves InfoKey plus
// OSKey or TransportKey.
const (
	InfoKey      = "info"
	OSKey        = "os"
	TransportKey = "transport"
)

// Handshake returns the handshake shared by the core and every plugin. The
// magic cookie only keeps a plugin binary from being run by hand by mistake:
// it is not a security measure (checksums and AutoMTLS are).
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		// ProtocolVersion is the fallback for go-plugin's legacy
		// negotiation; VersionedPlugins is what selects the API version.
		ProtocolVersion:  APIVersion1,
		MagicCookieKey:   "GITLAB_RUNNER_KUBEVIRT_PLUGIN",
		MagicCookieValue: "3f1c9d2e-kubevirt-executor-plugin",
	}
}
