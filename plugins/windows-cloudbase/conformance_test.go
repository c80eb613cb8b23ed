package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/conformance"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/windows-cloudbase/cloudbase"
)

// TestConformance builds the plugin binary and runs the contract kit
// against it, the way the core launches it. The kit hands the plugin a
// password because it declares the "password" capability, and checks that
// it never reaches the plugin's log. Every rendered user-data is parsed the
// way Cloudbase-Init parses it: Python's email package for the MIME
// document, PyYAML's safe loader for the cloud-config part.
func TestConformance(t *testing.T) {
	bin := conformance.Build(t, ".", cloudbase.Name)
	tests := []struct {
		name    string
		request func(*pluginv1.RenderRequest)
	}{
		{name: "defaults"},
		{name: "time zone and powershell", request: func(r *pluginv1.RenderRequest) {
			r.Timezone = "Europe/Zurich"
			r.Options = map[string]string{"shell": "powershell"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conformance.TestOSPlugin(t, bin, conformance.OSOptions{
				// The kit hands the plugin a password of the length its
				// GetInfo declares (MaxPasswordLength), as the core does.
				Request: tt.request,
				Check:   checkAsCloudbaseInit,
			})
		})
	}
}

// parseUserData is run by python3: it splits the MIME document with the
// email package and loads a cloud-config part with yaml.safe_load, as
// Cloudbase-Init does, and prints what it found as JSON.
const parseUserData = `
import base64, email, json, sys, yaml
msg = email.message_from_bytes(sys.stdin.buffer.read())
out = {"multipart": msg.is_multipart(), "parts": []}
for part in msg.walk():
    if part.is_multipart():
        continue
    payload = part.get_payload(decode=True) or b""
    entry = {"type": part.get_content_type(), "filename": part.get_filename() or "",
             "first_line": payload.split(b"\n", 1)[0].decode("ascii", "replace")}
    if entry["type"] == "text/cloud-config":
        entry["config"] = yaml.safe_load(payload)
    out["parts"].append(entry)
json.dump(out, sys.stdout)
`

// parsed is parseUserData's output.
type parsed struct {
	Multipart bool `json:"multipart"`
	Parts     []struct {
		Type      string         `json:"type"`
		Filename  string         `json:"filename"`
		FirstLine string         `json:"first_line"`
		Config    map[string]any `json:"config"`
	} `json:"parts"`
}

// checkAsCloudbaseInit fails t unless the user-data is a MIME multipart
// document with a cloud-config part (the user, its password, the hostname,
// every value a string) and a #ps1_sysnative PowerShell part. It never
// prints the document or the password.
func checkAsCloudbaseInit(t *testing.T, req *pluginv1.RenderRequest, resp *pluginv1.RenderResponse) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is not installed: install the Debian packages python3 and python3-yaml: %v", err)
	}
	cmd := exec.Command(py, "-c", parseUserData)
	cmd.Stdin = bytes.NewReader(resp.GetUserData())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// A traceback names the failing line of the parser, not the data.
		t.Fatalf("Python's email/yaml parsing of the user-data failed (install python3-yaml if yaml is missing): %v\n%s", err, stderr.String())
	}
	var got parsed
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("parser output: %v", err)
	}
	if !got.Multipart || len(got.Parts) != 2 {
		t.Fatalf("user-data: multipart %v with %d parts, want a multipart document with 2 parts", got.Multipart, len(got.Parts))
	}
	config, script := got.Parts[0], got.Parts[1]
	if config.Type != cloudbase.ContentTypeCloudConfig || script.Type != cloudbase.ContentTypeShellScript {
		t.Fatalf("part types %q, %q; want %q then %q", config.Type, script.Type, cloudbase.ContentTypeCloudConfig, cloudbase.ContentTypeShellScript)
	}
	if script.FirstLine != "#ps1_sysnative" {
		t.Errorf("PowerShell part starts with %q, want #ps1_sysnative", script.FirstLine)
	}
	if config.FirstLine != "#cloud-config" {
		t.Errorf("cloud-config part starts with %q, want #cloud-config", config.FirstLine)
	}
	if h, _ := config.Config["set_hostname"].(string); h != req.GetHostname() {
		t.Errorf("set_hostname %q, want %q", h, req.GetHostname())
	}
	users, _ := config.Config["users"].([]any)
	if len(users) != 1 {
		t.Fatalf("cloud-config has %d users, want 1", len(users))
	}
	u, _ := users[0].(map[string]any)
	if name, _ := u["name"].(string); name != req.GetUsername() {
		t.Errorf("user name %q, want %q", name, req.GetUsername())
	}
	// YAML 1.1 reads unquoted yes/no/on/off/numbers as other types; the
	// password must come back as the very string the core generated.
	if pw, ok := u["passwd"].(string); !ok || pw != req.GetPassword() {
		t.Error("the user's passwd, as Cloudbase-Init's YAML loader reads it, is not the request's password")
	}
	keys, _ := u["ssh_authorized_keys"].([]any)
	var key string
	if len(keys) == 1 {
		key, _ = keys[0].(string)
	}
	if key == "" || !strings.HasPrefix(req.GetAuthorizedKey(), key) {
		t.Errorf("ssh_authorized_keys %v, want the request's key", keys)
	}
}
