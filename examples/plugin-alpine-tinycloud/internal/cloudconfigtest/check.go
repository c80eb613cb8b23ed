// Package cloudconfigtest checks rendered user-data the way an Alpine guest
// will read it: as the subset of #cloud-config that tiny-cloud implements
// (its cloud-config(5) manual), and with the real `cloud-init schema`
// validator, since that subset is also plain cloud-config.
package cloudconfigtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// Keys tiny-cloud's #cloud-config handler implements.
var (
	topLevelKeys = []string{"user", "users", "ssh_authorized_keys", "groups", "bootcmd", "write_files",
		"ntp", "package_update", "package_upgrade", "packages", "runcmd"}
	userKeys = []string{"name", "gecos", "homedir", "shell", "primary_group", "system", "no_create_home",
		"lock_passwd", "groups", "doas", "ssh_authorized_keys"}
	writeFileKeys = []string{"path", "content", "permissions", "owner", "encoding", "append"}
	encodings     = []string{"text/plain", "base64", "b64", "gzip", "gz", "gz+base64", "gzip+base64", "gz+b64", "gzip+b64"}
)

// Check fails t unless userData is a #cloud-config document that uses only
// keys tiny-cloud implements and that `cloud-init schema` accepts. It never
// prints the document: it holds a private key.
func Check(t testing.TB, userData []byte) {
	t.Helper()
	body, ok := bytes.CutPrefix(userData, []byte("#cloud-config\n"))
	if !ok {
		t.Fatal("user-data does not start with the line #cloud-config, which tiny-cloud needs to pick its cloud-config handler")
	}
	var doc map[string]any
	if err := yaml.Unmarshal(body, &doc); err != nil {
		t.Fatalf("user-data is not YAML: %v", err)
	}
	checkKeys(t, "top level", doc, topLevelKeys)
	for _, u := range list(t, doc["users"], "users") {
		checkKeys(t, "users entry", mapping(t, u, "users entry"), userKeys)
	}
	var contents []string
	for _, f := range list(t, doc["write_files"], "write_files") {
		m := mapping(t, f, "write_files entry")
		if c, ok := m["content"].(string); ok && c != "" {
			contents = append(contents, c)
		}
		checkKeys(t, "write_files entry", m, writeFileKeys)
		if enc, ok := m["encoding"].(string); ok && !slices.Contains(encodings, enc) {
			t.Errorf("write_files encoding %q: tiny-cloud knows %v", enc, encodings)
		}
	}
	schema(t, userData, contents)
}

func checkKeys(t testing.TB, where string, m map[string]any, known []string) {
	t.Helper()
	for k := range m {
		if !slices.Contains(known, k) {
			t.Errorf("%s key %q: tiny-cloud ignores it (it knows %v)", where, k, known)
		}
	}
}

func list(t testing.TB, v any, what string) []any {
	t.Helper()
	if v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		t.Fatalf("%s is a %T, want a list", what, v)
	}
	return l
}

func mapping(t testing.TB, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is a %T, want a mapping", what, v)
	}
	return m
}

// schema runs the real cloud-init validator on the document. Its report
// quotes offending entries, so file contents (a private key) are redacted.
func schema(t testing.TB, userData []byte, redact []string) {
	t.Helper()
	bin, err := exec.LookPath("cloud-init")
	if err != nil {
		t.Fatalf("cloud-init is not installed: install the Debian package cloud-init (its `cloud-init schema` validates the rendered user-data): %v", err)
	}
	file := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(file, userData, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "schema", "--config-file", file).CombinedOutput(); err != nil {
		report := string(out)
		for _, c := range redact {
			report = strings.ReplaceAll(report, c, "[file content redacted]")
		}
		t.Errorf("cloud-init schema rejects the user-data: %v\n%s", err, report)
	}
}
