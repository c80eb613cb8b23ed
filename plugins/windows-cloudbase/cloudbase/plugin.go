package cloudbase

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil"
)

// Name is the plugin's name; its binary is
// gitlab-runner-kubevirt-plugin-windows-cloudbase.
const Name = "windows-cloudbase"

// DefaultVersion is the plugin's version unless the binary is linked with
// another one (see plugins/windows-cloudbase/main.go).
const DefaultVersion = "0.1.0"

// Capabilities the plugin declares in GetInfo.
const (
	// CapabilityPassword asks the core for a plaintext password:
	// Cloudbase-Init sets the user's password from it.
	CapabilityPassword = "password"
	// CapabilityConfigDrive: the user-data is for a ConfigDrive.
	CapabilityConfigDrive = "config-drive"
	// CapabilityHostKey: the per-job host key becomes sshd's host key.
	CapabilityHostKey = "host-key"
)

// Plugin renders Cloudbase-Init user-data. It has no state: every Render is
// independent, so one value serves concurrent calls.
type Plugin struct {
	version string
}

// New returns the plugin reporting version (DefaultVersion when empty).
func New(version string) *Plugin {
	return &Plugin{version: cmp.Or(version, DefaultVersion)}
}

// GetInfo describes the plugin (kind OS, API version 1: see
// [osutil.OSInfo]).
func (p *Plugin) GetInfo(context.Context) (*pluginv1.PluginInfo, error) {
	return osutil.OSInfo(&pluginv1.PluginInfo{
		Name:         Name,
		Version:      p.version,
		Capabilities: []string{CapabilityPassword, CapabilityConfigDrive, CapabilityHostKey},
		OsFamily:     "windows",
		Shells:       []string{ShellPwsh, ShellPowerShell},
		Description:  "Cloudbase-Init (ConfigDrive) user-data for Windows guests with OpenSSH: an administrator, its key and password, the per-job host key",
		// The core generates passwords that Cloudbase-Init accepts.
		MaxPasswordLength: MaxPassword,
		// Computer names are NetBIOS names: the core shortens its hostname.
		MaxHostnameLength: MaxHostname,
	}), nil
}

// Health reports OK: rendering needs nothing outside the plugin.
func (p *Plugin) Health(context.Context) (*pluginv1.HealthResponse, error) {
	return osutil.Healthy("renders Cloudbase-Init multipart user-data; needs no helper programs"), nil
}

// Render validates req and renders the user-data and run recipe. Invalid
// input is an InvalidArgument error naming the field.
func (p *Plugin) Render(ctx context.Context, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	in, err := validate(req)
	if err != nil {
		return nil, err
	}
	groups := []string{AdministratorsGroup}
	for _, g := range in.groups {
		if !strings.EqualFold(g, AdministratorsGroup) {
			groups = append(groups, g)
		}
	}
	cfg := &cloudConfig{
		SetTimezone: req.GetTimezone(),
		SetHostname: req.GetHostname(),
		Users: []user{{
			Name:              req.GetUsername(),
			Groups:            groups,
			Passwd:            req.GetPassword(),
			SSHAuthorizedKeys: []string{in.authorizedKey},
		}},
	}
	config, err := cfg.marshal()
	if err != nil {
		return nil, fmt.Errorf("render user %s: %w", req.GetUsername(), err)
	}
	script, err := sshScript(req.GetUsername(), in.hostKey, in.authorizedKey)
	if err != nil {
		// Every value was validated; a refusal here is a plugin bug.
		return nil, fmt.Errorf("render the ssh script of user %s: %w", req.GetUsername(), err)
	}
	userData, err := multipartUserData([]part{
		{contentType: ContentTypeCloudConfig, charset: "us-ascii", filename: CloudConfigName, body: config},
		{contentType: ContentTypeShellScript, charset: "us-ascii", filename: SSHScriptName, body: []byte(script)},
	})
	if err != nil {
		return nil, fmt.Errorf("render user %s: %w", req.GetUsername(), err)
	}
	return &pluginv1.RenderResponse{
		UserData:   userData,
		Datasource: pluginv1.Datasource_DATASOURCE_CONFIG_DRIVE,
		Recipe:     Recipe(in.shell),
	}, nil
}

// input is a validated request.
type input struct {
	authorizedKey string
	hostKey       osutil.HostKey
	shell         string
	groups        []string
}

// validate checks every request field and option.
func validate(req *pluginv1.RenderRequest) (input, error) {
	var in input
	if err := osutil.CheckOptions(req.GetOptions(), OptionKeys()); err != nil {
		return in, err
	}
	if err := checkName("username", req.GetUsername(), MaxUsername); err != nil {
		return in, err
	}
	var err error
	if in.authorizedKey, _, err = osutil.AuthorizedKey(osutil.FieldAuthorizedKey, req.GetAuthorizedKey()); err != nil {
		return in, err
	}
	if in.hostKey, err = osutil.ParseHostKey(req.GetHostKey()); err != nil {
		return in, err
	}
	if err := checkPassword(req.GetPassword(), req.GetUsername()); err != nil {
		return in, err
	}
	if err := checkHostname(req.GetHostname()); err != nil {
		return in, err
	}
	if err := osutil.Timezone(req.GetTimezone()); err != nil {
		return in, err
	}
	if err := osutil.InstanceID(req.GetInstanceId()); err != nil {
		return in, err
	}
	if in.shell, err = shellOption(req.GetOptions()); err != nil {
		return in, err
	}
	if in.groups, err = groupsOption(req.GetOptions()); err != nil {
		return in, err
	}
	return in, nil
}
