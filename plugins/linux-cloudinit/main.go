// Command gitlab-runner-kubevirt-plugin-linux-cloudinit is the OS plugin for
// Linux guests with cloud-init (NoCloud). The core starts it; it is not run
// by hand. See README.md beside this file.
package main

import (
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/linux-cloudinit/cloudinit"
)

// version is the plugin's version. Release builds set it with
// -ldflags "-X main.version=1.2.3"; it is only ever written by the linker.
var version = cloudinit.DefaultVersion

func main() {
	pluginapi.ServeOS(cloudinit.New(version))
}
