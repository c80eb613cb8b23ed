package cloudbase_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil/osutiltest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/windows-cloudbase/cloudbase"
)

// testPassword meets Cloudbase-Init's 20-character limit and Windows'
// complexity rule.
const testPassword = "Zq8-rT_w.Kp+2=@LmN4x"

// validRequest is a request every test starts from, like the core's.
func validRequest(t testing.TB) *pluginv1.RenderRequest {
	t.Helper()
	return &pluginv1.RenderRequest{
		Username:      "runner",
		AuthorizedKey: osutiltest.NewKeyPair(t).Public,
		HostKey:       osutiltest.NewKeyPair(t).HostKey(),
		Password:      testPassword,
		Hostname:      "ci-job-42",
		InstanceId:    "runner-12-3456-x7k2p9qz",
	}
}

func render(t testing.TB, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	t.Helper()
	return cloudbase.New("").Render(t.Context(), req)
}

// readPart is one MIME part as Cloudbase-Init sees it (read_userdata.py).
type readPart struct {
	ContentType string         `json:"content_type"`
	Filename    *string        `json:"filename"`
	Payload     *string        `json:"payload"`
	CloudConfig map[string]any `json:"cloud_config"`
}

// readUserData reads user-data with Python's email package and PyYAML, the
// parsers Cloudbase-Init uses, following its UserDataPlugin's steps.
func readUserData(t *testing.T, userData []byte) []readPart {
	t.Helper()
	python := osutiltest.RequireTool(t, "python3", "python3")
	if out, err := exec.Command(python, "-c", "import yaml").CombinedOutput(); err != nil {
		t.Fatalf("python3 cannot import yaml: install the Debian package python3-yaml (it reads the cloud-config like Cloudbase-Init): %v\n%s", err, out)
	}
	cmd := exec.Command(python, filepath.Join("testdata", "read_userdata.py"))
	cmd.Stdin = bytes.NewReader(userData)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("read_userdata.py: %v\n%s", err, stderr.String())
	}
	var parts []readPart
	if err := json.Unmarshal(out, &parts); err != nil {
		t.Fatalf("read_userdata.py output: %v", err)
	}
	return parts
}

// isPSQuote reports the characters PowerShell's tokenizer takes for a
// single quote.
func isPSQuote(r rune) bool {
	return r == '\'' || (r >= '\u2018' && r <= '\u201b')
}

// unquotePS reads a PowerShell single-quoted literal the way PowerShell's
// tokenizer does: inside, a quote character followed by another stands
// for the second; a lone one ends the literal. It returns the value and
// what follows the literal.
func unquotePS(s string) (value, rest string, err error) {
	r, size := utf8.DecodeRuneInString(s)
	if !isPSQuote(r) {
		return "", s, fmt.Errorf("%q does not start with a single quote", s)
	}
	s = s[size:]
	var b strings.Builder
	for s != "" {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		if !isPSQuote(r) {
			b.WriteRune(r)
			continue
		}
		next, nsize := utf8.DecodeRuneInString(s)
		if s != "" && isPSQuote(next) {
			b.WriteRune(next)
			s = s[nsize:]
			continue
		}
		return b.String(), s, nil
	}
	return "", "", fmt.Errorf("unterminated literal")
}

// assignment matches "$name = <rest>" lines of the PowerShell part.
var assignment = regexp.MustCompile(`^\$([A-Za-z]+) = (.*)$`)

// scriptValues returns the literal assignments at the top of the
// PowerShell part.
func scriptValues(t *testing.T, script string) map[string]string {
	t.Helper()
	values := map[string]string{}
	for _, line := range strings.Split(script, "\n") {
		m := assignment.FindStringSubmatch(line)
		if m == nil || !isPSQuote([]rune(m[2])[0]) {
			continue
		}
		v, rest, err := unquotePS(m[2])
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if rest != "" {
			t.Fatalf("line %q: %q follows the literal: a value escaped its quotes", line, rest)
		}
		values[m[1]] = v
	}
	return values
}

// canonicalKey is a public key as "<type> <base64>".
func canonicalKey(t *testing.T, line string) string {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatalf("test key %q: %v", line, err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// checkScript asserts the PowerShell part installs exactly the request's
// keys for the request's user.
func checkScript(t *testing.T, req *pluginv1.RenderRequest, script string) {
	t.Helper()
	if !strings.HasPrefix(script, "#ps1_sysnative\n") {
		t.Errorf("the script does not start with #ps1_sysnative: %q", firstLine(script))
	}
	for i := 0; i < len(script); i++ {
		if c := script[i]; c >= 0x80 || (c < 0x20 && c != '\n') {
			t.Fatalf("the script has byte %#x at %d: it must be ASCII (Windows PowerShell 5.1 reads a BOM-less script in the ANSI code page)", c, i)
		}
	}
	values := scriptValues(t, script)
	if v := values["ErrorActionPreference"]; v != "Stop" {
		t.Errorf("$ErrorActionPreference = %q, want Stop: a failing step must end the script", v)
	}
	delete(values, "ErrorActionPreference")
	want := map[string]string{
		"user":          req.GetUsername(),
		"hostKeyPublic": canonicalKey(t, req.GetHostKey().GetPublicKey()),
		"authorizedKey": canonicalKey(t, req.GetAuthorizedKey()),
	}
	for k, v := range want {
		if values[k] != v {
			t.Errorf("$%s = %q, want %q", k, values[k], v)
		}
	}
	pemBytes, err := base64.StdEncoding.DecodeString(values["hostKeyPrivate"])
	if err != nil {
		t.Fatalf("$hostKeyPrivate is not base64: %v", err)
	}
	signer, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatalf("$hostKeyPrivate is not a private key: %v", err)
	}
	if got := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))); got != want["hostKeyPublic"] {
		t.Errorf("$hostKeyPrivate is the key of %s, want %s", got, want["hostKeyPublic"])
	}
	if len(values) != 4 {
		t.Errorf("the script assigns %d literals (%v), want user, hostKeyPrivate, hostKeyPublic, authorizedKey", len(values), keys(values))
	}
	for _, s := range []string{
		"Add-LocalGroupMember -SID 'S-1-5-32-544' -Member $user",
		"/inheritance:r /grant '*S-1-5-18:F' /grant '*S-1-5-32-544:F'",
		"/setowner '*S-1-5-32-544'",
		"'ssh_host_ed25519_key'",
		"'administrators_authorized_keys'",
		"HostKey __PROGRAMDATA__/ssh/ssh_host_ed25519_key",
		"Restart-Service -Name sshd",
	} {
		if !strings.Contains(script, s) {
			t.Errorf("the script lacks %q", s)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
