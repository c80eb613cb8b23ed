// Command gitlab-runner-kubevirt-plugin-linux-standin is a test fixture: the
// real linux-cloudinit OS plugin with one change, its readiness command.
//
// The VMI stand-in (test/standin) serves each "guest" with an sshd on the
// test host, so commands run on the host, where cloud-init never ran and
// `cloud-init status --wait` waits forever. This plugin keeps everything
// the real plugin renders (the user-data the stand-in applies, the run
// command) and replaces only the readiness command with one that holds on
// the host. It is built by the integration tests with go build and started
// through the plugin host like any plugin.
package main

import (
	"context"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/linux-cloudinit/cloudinit"
)

// name is this plugin's name; it matches the binary's file name.
const name = "linux-standin"

// readiness proves the command ran as the job's user in a login shell.
const readiness = `test -n "$HOME" && echo "first boot done for $(id -un)"`

type plugin struct{ *cloudinit.Plugin }

func (p plugin) GetInfo(ctx context.Context) (*pluginv1.PluginInfo, error) {
	info, err := p.Plugin.GetInfo(ctx)
	if err != nil {
		return nil, err
	}
	info.Name = name
	info.Description = "linux-cloudinit with a readiness command for the VMI stand-in (tests only)"
	return info, nil
}

func (p plugin) Render(ctx context.Context, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	resp, err := p.Plugin.Render(ctx, req)
	if err != nil {
		return nil, err
	}
	resp.Recipe.ReadinessCommand = readiness
	return resp, nil
}

func main() {
	pluginapi.ServeOS(plugin{cloudinit.New("0.0.0-test")})
}
