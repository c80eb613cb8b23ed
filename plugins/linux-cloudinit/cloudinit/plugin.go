package cloudinit

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/GehirnInc/crypt/sha512_crypt"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil"
)

// Name is the plugin's name; its binary is
// gitlab-runner-kubevirt-plugin-linux-cloudinit.
const Name = "linux-cloudinit"

// DefaultVersion is the plugin's version unless the binary is linked with
// another one (see plugins/linux-cloudinit/main.go).
const DefaultVersion = "0.1.0"

// Capabilities the plugin declares in GetInfo.
const (
	// CapabilityNoCloud: the user-data is for cloud-init's NoCloud source.
	CapabilityNoCloud = "nocloud"
	// CapabilityHostKey: the per-job host key becomes the guest's host key.
	CapabilityHostKey = "host-key"
	// CapabilityPasswordHash: a password, when given, is stored only as a
	// SHA-512 crypt hash.
	CapabilityPasswordHash = "password-hash"
)

// Plugin renders cloud-init user-data. It has no state: every Render is
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
		Capabilities: []string{CapabilityNoCloud, CapabilityHostKey, CapabilityPasswordHash},
		OsFamily:     "linux",
		Shells:       []string{"bash", "sh"},
		Description:  "cloud-init (NoCloud) user-data for Linux guests: one user, the job's SSH key, the per-job host key",
	}), nil
}

// Health reports OK: rendering needs nothing outside the plugin.
func (p *Plugin) Health(context.Context) (*pluginv1.HealthResponse, error) {
	return osutil.Healthy("renders #cloud-config user-data; needs no helper programs"), nil
}

// Render validates req and renders the user-data and run recipe. Invalid
// input is an InvalidArgument error naming the field.
func (p *Plugin) Render(ctx context.Context, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	cfg, err := buildConfig(req)
	if err != nil {
		return nil, err
	}
	userData, err := cfg.marshal()
	if err != nil {
		return nil, fmt.Errorf("render user %s: %w", req.GetUsername(), err)
	}
	return &pluginv1.RenderResponse{
		UserData:   userData,
		Datasource: pluginv1.Datasource_DATASOURCE_NOCLOUD,
		Recipe:     Recipe(),
	}, nil
}

// buildConfig validates every request field and builds the document.
func buildConfig(req *pluginv1.RenderRequest) (*cloudConfig, error) {
	if err := osutil.CheckOptions(req.GetOptions(), OptionKeys()); err != nil {
		return nil, err
	}
	if err := checkUsername(req.GetUsername()); err != nil {
		return nil, err
	}
	authorized, _, err := osutil.AuthorizedKey(osutil.FieldAuthorizedKey, req.GetAuthorizedKey())
	if err != nil {
		return nil, err
	}
	hostKey, err := osutil.ParseHostKey(req.GetHostKey())
	if err != nil {
		return nil, err
	}
	if err := checkPassword(req.GetPassword()); err != nil {
		return nil, err
	}
	host, fqdn, err := hostnames(req.GetHostname())
	if err != nil {
		return nil, err
	}
	if err := osutil.Timezone(req.GetTimezone()); err != nil {
		return nil, err
	}
	if err := osutil.InstanceID(req.GetInstanceId()); err != nil {
		return nil, err
	}
	sudo, err := osutil.BoolOption(req.GetOptions(), OptionSudo, true)
	if err != nil {
		return nil, err
	}
	groups, err := groupsOption(req.GetOptions())
	if err != nil {
		return nil, err
	}

	u := user{
		Name:              req.GetUsername(),
		Groups:            groups,
		Shell:             LoginShell,
		LockPasswd:        true,
		SSHAuthorizedKeys: []string{authorized},
	}
	if sudo {
		u.Sudo = SudoAll
	}
	if pw := req.GetPassword(); pw != "" {
		hash, err := sha512_crypt.New().Generate([]byte(pw), nil)
		if err != nil {
			// The crypt library's errors are about the salt, never the key.
			return nil, fmt.Errorf("hash the password of user %s: %w", u.Name, err)
		}
		u.LockPasswd, u.HashedPasswd = false, hash
	}
	// "ssh-ed25519" -> "ed25519", cloud-init's name in ssh_keys.
	keyType := strings.TrimPrefix(hostKey.Type, "ssh-")
	cfg := &cloudConfig{
		Users:          []user{u},
		DisableRoot:    true,
		SSHPwauth:      !u.LockPasswd,
		SSHDeleteKeys:  true,
		SSHGenKeyTypes: []string{keyType},
		SSHKeys: map[string]string{
			keyType + "_private": string(hostKey.PrivatePEM),
			keyType + "_public":  hostKey.Public,
		},
		Hostname: host,
		FQDN:     fqdn,
		Timezone: req.GetTimezone(),
	}
	if host != "" {
		preserve := false
		cfg.PreserveHostname = &preserve
	}
	return cfg, nil
}
