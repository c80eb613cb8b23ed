package cloudinit_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"sigs.k8s.io/yaml"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil/osutiltest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/linux-cloudinit/cloudinit"
)

// FuzzRender feeds arbitrary request fields to Render
// (osutiltest.FuzzRender). Each input is either refused with
// InvalidArgument naming a field, or renders a document that
// parses back to exactly one user whose name is the input username, with
// the input key as its only key and nothing but the known top-level keys.
// The seed corpus is in testdata/fuzz/FuzzRender.
func FuzzRender(f *testing.F) {
	// fields are the fields an InvalidArgument error may name; topLevel
	// the only top-level keys a rendered document may have.
	fields := []string{
		"username", "authorized_key", "hostname", "timezone", "password",
		"options", "options.sudo", "options.groups",
	}
	topLevel := []string{
		"disable_root", "fqdn", "hostname", "preserve_hostname", "ssh_deletekeys",
		"ssh_genkeytypes", "ssh_keys", "ssh_pwauth", "timezone", "users",
	}
	osutiltest.FuzzRender(f, cloudinit.New("").Render, fields, func(t *testing.T, req *pluginv1.RenderRequest, resp *pluginv1.RenderResponse) {
		username, authorizedKey, hostname := req.GetUsername(), req.GetAuthorizedKey(), req.GetHostname()
		timezone, password := req.GetTimezone(), req.GetPassword()
		body, ok := bytes.CutPrefix(resp.GetUserData(), []byte("#cloud-config\n"))
		if !ok {
			t.Fatal("user-data does not start with #cloud-config")
		}
		var doc map[string]any
		if err := yaml.Unmarshal(body, &doc); err != nil {
			t.Fatalf("user-data does not parse: %v", err)
		}
		for k := range doc {
			if !slices.Contains(topLevel, k) {
				t.Fatalf("unexpected top-level key %q", k)
			}
		}
		users, _ := doc["users"].([]any)
		if len(users) != 1 {
			t.Fatalf("users has %d entries, want 1", len(users))
		}
		u, _ := users[0].(map[string]any)
		if u["name"] != username {
			t.Fatalf("user name = %#v, want %q", u["name"], username)
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
		if err != nil {
			t.Fatalf("Render accepted authorized_key %q that does not parse: %v", authorizedKey, err)
		}
		keys, _ := u["ssh_authorized_keys"].([]any)
		if len(keys) != 1 || keys[0] != strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) {
			t.Fatalf("ssh_authorized_keys = %v, want the input key alone", keys)
		}
		if hostname != "" && doc["hostname"] != strings.Split(hostname, ".")[0] {
			t.Fatalf("hostname = %#v for input %q", doc["hostname"], hostname)
		}
		if timezone != "" && doc["timezone"] != timezone {
			t.Fatalf("timezone = %#v, want %q", doc["timezone"], timezone)
		}
		hash, _ := u["hashed_passwd"].(string)
		if (password != "") != strings.HasPrefix(hash, "$6$") {
			t.Fatalf("hashed_passwd = %q with password set %v", hash, password != "")
		}
		if password != "" && bytes.Contains(resp.GetUserData(), []byte(": "+password+"\n")) {
			t.Fatal("the plaintext password is a value in the user-data")
		}
	})
}
