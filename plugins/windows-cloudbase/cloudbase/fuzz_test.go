package cloudbase_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil/osutiltest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/windows-cloudbase/cloudbase"
)

// FuzzRender feeds arbitrary request fields to Render
// (osutiltest.FuzzRender). Each input is either refused with
// InvalidArgument naming a field, or renders a MIME document
// of a cloud-config part with exactly one user (the input name and
// password, the input key) and a PowerShell part whose $user literal reads
// back as the input name. The seed corpus is in testdata/fuzz/FuzzRender.
func FuzzRender(f *testing.F) {
	fields := []string{
		"username", "authorized_key", "password", "hostname", "timezone",
		"options", "options.shell", "options.groups",
	}
	osutiltest.FuzzRender(f, cloudbase.New("").Render, fields, func(t *testing.T, req *pluginv1.RenderRequest, resp *pluginv1.RenderResponse) {
		username, authorizedKey, hostname := req.GetUsername(), req.GetAuthorizedKey(), req.GetHostname()
		timezone, password := req.GetTimezone(), req.GetPassword()
		parts := splitMIME(t, resp.GetUserData())
		if len(parts) != 2 {
			t.Fatalf("%d MIME parts, want 2", len(parts))
		}
		body, ok := bytes.CutPrefix(parts[0], []byte("#cloud-config\n"))
		if !ok {
			t.Fatal("the cloud-config part does not start with #cloud-config")
		}
		var cc struct {
			SetHostname string `json:"set_hostname"`
			SetTimezone string `json:"set_timezone"`
			Users       []struct {
				Name              string   `json:"name"`
				Passwd            string   `json:"passwd"`
				Groups            []string `json:"groups"`
				SSHAuthorizedKeys []string `json:"ssh_authorized_keys"`
			} `json:"users"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cc); err != nil {
			t.Fatalf("the cloud-config part: %v", err)
		}
		if len(cc.Users) != 1 {
			t.Fatalf("%d users, want 1", len(cc.Users))
		}
		u := cc.Users[0]
		if u.Name != username || u.Passwd != password {
			t.Fatalf("user %q (password matches: %v), want %q", u.Name, u.Passwd == password, username)
		}
		if len(u.Groups) == 0 || u.Groups[0] != "Administrators" {
			t.Fatalf("groups %v do not start with Administrators", u.Groups)
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
		if err != nil {
			t.Fatalf("Render accepted authorized_key %q that does not parse: %v", authorizedKey, err)
		}
		key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
		if !slices.Equal(u.SSHAuthorizedKeys, []string{key}) {
			t.Fatalf("ssh_authorized_keys %v, want the input key alone", u.SSHAuthorizedKeys)
		}
		if cc.SetHostname != hostname || cc.SetTimezone != timezone {
			t.Fatalf("set_hostname %q, set_timezone %q; want %q, %q", cc.SetHostname, cc.SetTimezone, hostname, timezone)
		}
		values := scriptValues(t, string(parts[1]))
		if values["user"] != username || values["authorizedKey"] != key {
			t.Fatalf("the script's $user %q / $authorizedKey %q, want %q / %q", values["user"], values["authorizedKey"], username, key)
		}
		if len(values) != 5 {
			t.Fatalf("the script assigns %d literals, want 5", len(values))
		}
	})
}

// splitMIME returns the decoded bodies of the multipart user-data.
func splitMIME(t *testing.T, userData []byte) [][]byte {
	t.Helper()
	header, body, ok := bytes.Cut(userData, []byte("\n\n"))
	if !ok {
		t.Fatal("no blank line after the top-level headers")
	}
	ct, _ := strings.CutPrefix(strings.SplitN(string(header), "\n", 2)[0], "Content-Type: ")
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil || mediaType != "multipart/mixed" {
		t.Fatalf("top-level Content-Type %q: %v", ct, err)
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var parts [][]byte
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatalf("MIME: %v", err)
		}
		if p.Header.Get("Content-Transfer-Encoding") != "base64" {
			t.Fatalf("part %s is not base64-encoded", p.FileName())
		}
		raw, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		decoded, err := decodeBase64Lines(raw)
		if err != nil {
			t.Fatalf("part %s: %v", p.FileName(), err)
		}
		parts = append(parts, decoded)
	}
}

// decodeBase64Lines decodes MIME base64 (line breaks allowed).
func decodeBase64Lines(raw []byte) ([]byte, error) {
	clean := strings.NewReplacer("\r", "", "\n", "").Replace(string(raw))
	return base64.StdEncoding.DecodeString(clean)
}
