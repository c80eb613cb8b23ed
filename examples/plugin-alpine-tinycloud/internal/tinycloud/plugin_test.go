package tinycloud_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"sigs.k8s.io/yaml"

	"example.com/gitlab-runner-kubevirt-plugin-alpine-tinycloud/internal/cloudconfigtest"
	"example.com/gitlab-runner-kubevirt-plugin-alpine-tinycloud/internal/tinycloud"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// key is a generated SSH key pair.
type key struct {
	privatePEM []byte
	public     string
}

func newKey(t *testing.T, kind string) key {
	t.Helper()
	var priv any
	var err error
	switch kind {
	case ssh.KeyAlgoED25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case ssh.KeyAlgoECDSA256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ssh.KeyAlgoRSA:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("newKey: kind %q: must be an ssh.KeyAlgo* constant", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return key{privatePEM: pem.EncodeToMemory(block), public: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))}
}

func validRequest(t *testing.T) *pluginv1.RenderRequest {
	t.Helper()
	client, host := newKey(t, ssh.KeyAlgoED25519), newKey(t, ssh.KeyAlgoED25519)
	return &pluginv1.RenderRequest{
		Username:      "runner",
		AuthorizedKey: client.public + " runner@ci",
		HostKey:       &pluginv1.HostKey{Type: ssh.KeyAlgoED25519, PrivateKey: host.privatePEM, PublicKey: host.public},
		Hostname:      "ci-job-42",
		InstanceId:    "iid-1",
	}
}

// userData is the part of the rendered document the tests look at.
type userData struct {
	Users []struct {
		Name              string   `json:"name"`
		Shell             string   `json:"shell"`
		LockPasswd        bool     `json:"lock_passwd"`
		SSHAuthorizedKeys []string `json:"ssh_authorized_keys"`
	} `json:"users"`
	WriteFiles []struct {
		Path        string `json:"path"`
		Permissions string `json:"permissions"`
		Encoding    string `json:"encoding"`
		Content     string `json:"content"`
	} `json:"write_files"`
	Packages []string `json:"packages"`
}

func render(t *testing.T, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, userData) {
	t.Helper()
	resp, err := plugintest.OS(t, tinycloud.New(nil)).Render(t.Context(), req)
	if err != nil {
		t.Fatalf("Render: %s", pluginapi.ErrorMessage(err))
	}
	var doc userData
	if err := yaml.Unmarshal(resp.GetUserData(), &doc); err != nil {
		t.Fatalf("user-data is not YAML: %v", err)
	}
	return resp, doc
}

func TestRenderUserAndHostKey(t *testing.T) {
	for _, kind := range []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoRSA} {
		t.Run(kind, func(t *testing.T) {
			req := validRequest(t)
			host := newKey(t, kind)
			req.HostKey = &pluginv1.HostKey{Type: kind, PrivateKey: host.privatePEM, PublicKey: host.public}
			resp, doc := render(t, req)
			cloudconfigtest.Check(t, resp.GetUserData())

			if len(doc.Users) != 1 {
				t.Fatalf("users has %d entries, want 1", len(doc.Users))
			}
			u := doc.Users[0]
			wantKey := strings.TrimSuffix(req.GetAuthorizedKey(), " runner@ci")
			if u.Name != "runner" || !u.LockPasswd || u.Shell != "/bin/sh" || len(u.SSHAuthorizedKeys) != 1 || u.SSHAuthorizedKeys[0] != wantKey {
				t.Errorf("user = %+v, want runner, /bin/sh, locked password, key %q", u, wantKey)
			}
			file := map[string]string{
				ssh.KeyAlgoED25519: "ssh_host_ed25519_key", ssh.KeyAlgoECDSA256: "ssh_host_ecdsa_key", ssh.KeyAlgoRSA: "ssh_host_rsa_key",
			}[kind]
			if len(doc.WriteFiles) != 2 {
				t.Fatalf("write_files has %d entries, want the host key and its public half", len(doc.WriteFiles))
			}
			priv, pub := doc.WriteFiles[0], doc.WriteFiles[1]
			if priv.Path != "/etc/ssh/"+file || priv.Permissions != "0600" || priv.Encoding != "b64" {
				t.Errorf("private host key file = %s %s %s, want /etc/ssh/%s 0600 b64", priv.Path, priv.Permissions, priv.Encoding, file)
			}
			if got, err := base64.StdEncoding.DecodeString(priv.Content); err != nil || string(got) != string(host.privatePEM) {
				t.Error("private host key file content does not decode to the request's private key")
			}
			if pub.Path != "/etc/ssh/"+file+".pub" || pub.Permissions != "0644" || pub.Content != host.public+"\n" {
				t.Errorf("public host key file = %s %s %q, want /etc/ssh/%s.pub 0644 %q", pub.Path, pub.Permissions, pub.Content, file, host.public+"\n")
			}
			if resp.GetDatasource() != pluginv1.Datasource_DATASOURCE_NOCLOUD || len(resp.GetNetworkData()) != 0 {
				t.Errorf("datasource %v with %d bytes of network data, want NoCloud and DHCP", resp.GetDatasource(), len(resp.GetNetworkData()))
			}
		})
	}
}

func TestRenderOptions(t *testing.T) {
	tests := []struct {
		name         string
		options      map[string]string
		wantShell    string
		wantLogin    string
		wantPackages []string
	}{
		{name: "defaults", wantShell: "sh", wantLogin: "/bin/sh"},
		{name: "bash adds its package", options: map[string]string{"shell": "bash"}, wantShell: "bash", wantLogin: "/bin/bash", wantPackages: []string{"bash"}},
		{name: "packages sorted and deduplicated", options: map[string]string{"packages": "git, curl,git"}, wantShell: "sh", wantLogin: "/bin/sh", wantPackages: []string{"curl", "git"}},
		{name: "bash and packages", options: map[string]string{"shell": "bash", "packages": "git-lfs,py3-pip"}, wantShell: "bash", wantLogin: "/bin/bash", wantPackages: []string{"bash", "git-lfs", "py3-pip"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest(t)
			req.Options = tt.options
			resp, doc := render(t, req)
			cloudconfigtest.Check(t, resp.GetUserData())
			r := resp.GetRecipe()
			if r.GetShell() != tt.wantShell || r.GetCommand() != tt.wantShell+" {script}" {
				t.Errorf("recipe shell %q command %q, want %q and %q", r.GetShell(), r.GetCommand(), tt.wantShell, tt.wantShell+" {script}")
			}
			if doc.Users[0].Shell != tt.wantLogin {
				t.Errorf("login shell %q, want %q", doc.Users[0].Shell, tt.wantLogin)
			}
			if strings.Join(doc.Packages, ",") != strings.Join(tt.wantPackages, ",") {
				t.Errorf("packages %v, want %v", doc.Packages, tt.wantPackages)
			}
		})
	}
}

func TestRenderRefuses(t *testing.T) {
	ecdsaKey, otherKey := newKey(t, ssh.KeyAlgoECDSA256), newKey(t, ssh.KeyAlgoED25519)
	var names []string
	for i := range 51 {
		names = append(names, fmt.Sprintf("pkg%d", i))
	}
	many := strings.Join(names, ",")
	tests := []struct {
		name  string
		edit  func(*pluginv1.RenderRequest)
		field string
	}{
		{name: "root", edit: func(r *pluginv1.RenderRequest) { r.Username = "root" }, field: "username"},
		{name: "upper-case username", edit: func(r *pluginv1.RenderRequest) { r.Username = "Runner" }, field: "username"},
		{name: "long username", edit: func(r *pluginv1.RenderRequest) { r.Username = strings.Repeat("a", 33) }, field: "username"},
		{name: "hostname label too long", edit: func(r *pluginv1.RenderRequest) { r.Hostname = strings.Repeat("a", 64) }, field: "hostname"},
		{name: "hostname with underscore", edit: func(r *pluginv1.RenderRequest) { r.Hostname = "ci_job" }, field: "hostname"},
		{name: "timezone", edit: func(r *pluginv1.RenderRequest) { r.Timezone = "Europe/Zurich" }, field: "timezone"},
		{name: "password", edit: func(r *pluginv1.RenderRequest) { r.Password = "Sup3r-Secret-Pw" }, field: "password"},
		{name: "authorized key with options", edit: func(r *pluginv1.RenderRequest) { r.AuthorizedKey = `command="reboot" ` + r.AuthorizedKey }, field: "authorized_key"},
		{name: "authorized key garbage", edit: func(r *pluginv1.RenderRequest) { r.AuthorizedKey = "not a key" }, field: "authorized_key"},
		{name: "host key type unknown", edit: func(r *pluginv1.RenderRequest) { r.HostKey.Type = "ssh-dss" }, field: "host_key.type"},
		{name: "host key type mismatch", edit: func(r *pluginv1.RenderRequest) {
			r.HostKey.Type = ssh.KeyAlgoECDSA256
		}, field: "host_key.public_key"},
		{name: "host private key of another key", edit: func(r *pluginv1.RenderRequest) { r.HostKey.PrivateKey = otherKey.privatePEM }, field: "host_key.private_key"},
		{name: "host private key garbage", edit: func(r *pluginv1.RenderRequest) { r.HostKey.PrivateKey = []byte("-----BEGIN NOTHING-----") }, field: "host_key.private_key"},
		{name: "host key pair of another type", edit: func(r *pluginv1.RenderRequest) {
			r.HostKey = &pluginv1.HostKey{Type: ssh.KeyAlgoED25519, PrivateKey: ecdsaKey.privatePEM, PublicKey: ecdsaKey.public}
		}, field: "host_key.public_key"},
		{name: "shell", edit: func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"shell": "zsh"} }, field: "options[shell]"},
		{name: "package with shell syntax", edit: func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"packages": "git;reboot"} }, field: "options[packages]"},
		{name: "empty package", edit: func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"packages": "git,,curl"} }, field: "options[packages]"},
		{name: "too many packages", edit: func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"packages": many} }, field: "options[packages]"},
		{name: "unknown option", edit: func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"ntp": "true"} }, field: "options"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest(t)
			tt.edit(req)
			_, err := plugintest.OS(t, tinycloud.New(nil)).Render(t.Context(), req)
			if !pluginapi.IsInvalidInput(err) {
				t.Fatalf("Render = %v, want InvalidArgument", err)
			}
			msg := pluginapi.ErrorMessage(err)
			if !strings.HasPrefix(msg, tt.field+" ") {
				t.Errorf("error %q does not start with the field %s", msg, tt.field)
			}
			for _, secret := range []string{req.GetPassword(), string(req.GetHostKey().GetPrivateKey())} {
				if secret != "" && strings.Contains(msg, strings.TrimSpace(secret)) {
					t.Errorf("error %q quotes a secret", msg)
				}
			}
		})
	}
}
