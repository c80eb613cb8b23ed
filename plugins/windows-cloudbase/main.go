// Command gitlab-runner-kubevirt-plugin-windows-cloudbase is the OS plugin
// for Windows guests with Cloudbase-Init (ConfigDrive) and OpenSSH. The core
// starts it; it is not run by hand. See README.md beside this file.
package main

import (
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/windows-cloudbase/cloudbase"
)

// version is the plugin's version. Release builds set it with
// -ldflags "-X main.version=1.2.3"; it is only ever written by the linker.
var version = cloudbase.DefaultVersion

func main() {
	pluginapi.ServeOS(cloudbase.New(version))
}
