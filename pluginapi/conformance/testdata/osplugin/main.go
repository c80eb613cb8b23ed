// Command osplugin is a small, correct OS plugin that the conformance
// kit's own tests run the kit against. CONFORMANCE_FIXTURE_MODE breaks one
// rule at a time, so the tests can check that the kit notices:
//
//	accept-newline     does not validate the username
//	no-placeholder     the recipe command lacks {script}
//	nondeterministic   adds a random nonce to user-data
//	wrong-name         GetInfo names another plugin
//	log-secret         logs the host private key at debug level
//	unhealthy          Health reports STATE_FAILING
//	plain-error        refuses bad hostnames with a plain error
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"
	"sigs.k8s.io/yaml"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

var (
	usernameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	timezoneRE = regexp.MustCompile(`^[A-Za-z_+-]+(/[A-Za-z0-9_+-]+)*$`)
)

func main() {
	pluginapi.ServeOS(&plugin{mode: os.Getenv("CONFORMANCE_FIXTURE_MODE"), log: pluginapi.Logger()})
}

type plugin struct {
	mode string
	log  hclog.Logger
}

func (p *plugin) GetInfo(context.Context) (*pluginv1.PluginInfo, error) {
	name := "osfixture"
	if p.mode == "wrong-name" {
		name = "something-else"
	}
	return &pluginv1.PluginInfo{
		Name: name, Kind: pluginv1.Kind_KIND_OS, Version: "0.1.0",
		ApiVersions: []uint32{pluginapi.APIVersion1}, OsFamily: "linux", Shells: []string{"bash"},
		Description: "conformance kit fixture",
	}, nil
}

func (p *plugin) Health(context.Context) (*pluginv1.HealthResponse, error) {
	if p.mode == "unhealthy" {
		return &pluginv1.HealthResponse{State: pluginv1.HealthResponse_STATE_FAILING, Description: "broken on purpose"}, nil
	}
	return &pluginv1.HealthResponse{State: pluginv1.HealthResponse_STATE_OK}, nil
}

func (p *plugin) validate(req *pluginv1.RenderRequest) error {
	if p.mode != "accept-newline" && !usernameRE.MatchString(req.GetUsername()) {
		return pluginapi.InvalidInput("username", req.GetUsername(), "must match %s", usernameRE)
	}
	if !hostnameRE.MatchString(req.GetHostname()) {
		if p.mode == "plain-error" {
			return errors.New("bad hostname")
		}
		return pluginapi.InvalidInput("hostname", req.GetHostname(), "must match %s", hostnameRE)
	}
	if err := singleKey("authorized_key", req.GetAuthorizedKey()); err != nil {
		return err
	}
	if err := singleKey("host_key.public_key", req.GetHostKey().GetPublicKey()); err != nil {
		return err
	}
	if _, err := ssh.ParseRawPrivateKey(req.GetHostKey().GetPrivateKey()); err != nil {
		return pluginapi.InvalidInput("host_key.private_key", fmt.Sprintf("(%d bytes)", len(req.GetHostKey().GetPrivateKey())), "must be an unencrypted OpenSSH private key")
	}
	if tz := req.GetTimezone(); tz != "" && !timezoneRE.MatchString(tz) {
		return pluginapi.InvalidInput("timezone", tz, "must be an IANA time zone name")
	}
	for k := range req.GetOptions() {
		return pluginapi.InvalidInput("options", k, "unknown option: this plugin has none")
	}
	return nil
}

func singleKey(field, key string) error {
	_, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil || strings.ContainsAny(key, "\r\n") || len(rest) > 0 {
		return pluginapi.InvalidInput(field, key, "must be one public key in authorized_keys format")
	}
	return nil
}

func (p *plugin) Render(_ context.Context, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	if p.mode == "log-secret" {
		p.log.Debug("rendering", "host_key", string(req.GetHostKey().GetPrivateKey()))
	}
	if err := p.validate(req); err != nil {
		return nil, err
	}
	doc := map[string]any{
		"hostname": req.GetHostname(),
		"users": []any{map[string]any{
			"name":                req.GetUsername(),
			"ssh_authorized_keys": []string{req.GetAuthorizedKey()},
			"lock_passwd":         true,
		}},
		"ssh_keys": map[string]string{
			"ed25519_private": string(req.GetHostKey().GetPrivateKey()),
			"ed25519_public":  req.GetHostKey().GetPublicKey(),
		},
	}
	if p.mode == "nondeterministic" {
		doc["nonce"] = rand.Text()
	}
	body, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("marshal user-data: %w", err)
	}
	command := "bash {script}"
	if p.mode == "no-placeholder" {
		command = "bash script.sh"
	}
	return &pluginv1.RenderResponse{
		UserData:   append([]byte("#cloud-config\n"), body...),
		Datasource: pluginv1.Datasource_DATASOURCE_NOCLOUD,
		Recipe: &pluginv1.RunRecipe{
			Shell: "bash", ScriptExtension: ".sh", TempDir: "/tmp", Command: command,
			ReadinessCommand: "cloud-init status --wait", PathSeparator: "/",
		},
	}, nil
}
