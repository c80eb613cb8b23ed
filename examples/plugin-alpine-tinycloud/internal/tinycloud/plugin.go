// Package tinycloud renders first-boot data for Alpine Linux guests that
// run tiny-cloud (https://gitlab.alpinelinux.org/alpine/cloud/tiny-cloud),
// Alpine's small replacement for cloud-init.
//
// tiny-cloud reads a NoCloud seed (a volume labelled cidata or CIDATA, which
// is what KubeVirt's cloudInitNoCloud volume is) and understands a subset of
// #cloud-config: users (name, shell, lock_passwd, ssh_authorized_keys, ...),
// write_files, packages, runcmd and a few more. This package uses only
// that subset, so the same document is also valid cloud-config. The guest's
// hostname comes from the seed's meta-data (local-hostname), which KubeVirt
// writes from the VMI; tiny-cloud's #cloud-config has no hostname key.
package tinycloud

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// Name is the plugin's name; the binary is gitlab-runner-kubevirt-plugin-<Name>.
const Name = "alpine-tinycloud"

// Version is the plugin's semantic version.
const Version = "0.1.0"

// Plugin is the tiny-cloud OS plugin.
type Plugin struct {
	log hclog.Logger
}

// New returns the plugin; it logs to log (pluginapi.Logger in the binary).
func New(log hclog.Logger) *Plugin {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Plugin{log: log}
}

// GetInfo describes the plugin.
func (p *Plugin) GetInfo(context.Context) (*pluginv1.PluginInfo, error) {
	return &pluginv1.PluginInfo{
		Name:        Name,
		Kind:        pluginv1.Kind_KIND_OS,
		Version:     Version,
		ApiVersions: []uint32{pluginapi.APIVersion1},
		OsFamily:    "linux",
		Shells:      []string{shellSh, shellBash},
		Description: "Alpine Linux guests with tiny-cloud (NoCloud seed, #cloud-config subset)",
	}, nil
}

// Health reports OK: rendering needs nothing outside the plugin.
func (p *Plugin) Health(context.Context) (*pluginv1.HealthResponse, error) {
	return &pluginv1.HealthResponse{State: pluginv1.HealthResponse_STATE_OK, Description: "renders in-process"}, nil
}

// Render validates the request and renders the tiny-cloud user-data and
// the recipe for running job scripts.
func (p *Plugin) Render(_ context.Context, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	in, err := parseRequest(req)
	if err != nil {
		return nil, err
	}
	userData, err := renderUserData(in)
	if err != nil {
		return nil, err
	}
	// Names and sizes only: the user-data holds the host private key.
	p.log.Debug("rendered user-data", "user", in.username, "shell", in.shell, "packages", in.packages, "bytes", len(userData))
	return &pluginv1.RenderResponse{
		UserData:   userData,
		Datasource: pluginv1.Datasource_DATASOURCE_NOCLOUD,
		Recipe:     recipe(in.shell),
	}, nil
}

// recipe says how the core runs a job script on Alpine.
func recipe(shell string) *pluginv1.RunRecipe {
	return &pluginv1.RunRecipe{
		Shell:           shell,
		ScriptExtension: ".sh",
		TempDir:         "/tmp",
		Command:         shell + " {script}",
		// tiny-cloud marks the end of its final phase; wait for it.
		ReadinessCommand: `until [ "$(/sbin/tiny-cloud --bootstrap status)" = complete ]; do sleep 1; done`,
		PathSeparator:    "/",
	}
}
