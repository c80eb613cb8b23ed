// Command gitlab-runner-kubevirt-plugin-alpine-tinycloud is an example
// third-party OS plugin for gitlab-runner-kubevirt: it renders first-boot
// data for Alpine Linux guests that run tiny-cloud instead of cloud-init.
// It is built only against the public plugin contract (pluginapi).
//
// Install the binary into the runner's plugin directory and pin it with
// `gitlab-runner-kubevirt plugins lock`; see README.md.
package main

import (
	"example.com/gitlab-runner-kubevirt-plugin-alpine-tinycloud/internal/tinycloud"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

func main() {
	// ServeOS speaks go-plugin's handshake on stdout; nothing else may
	// write there. Log through pluginapi.Logger (stderr).
	pluginapi.ServeOS(tinycloud.New(pluginapi.Logger()))
}
