package main

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/conformance"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/linux-cloudinit/cloudinit"
)

// TestConformance builds the plugin binary and runs the contract kit
// against it, the way the core launches it, with every rendered user-data
// checked by the real `cloud-init schema`.
func TestConformance(t *testing.T) {
	bin := conformance.Build(t, ".", cloudinit.Name)
	tests := []struct {
		name    string
		request func(*pluginv1.RenderRequest)
	}{
		{name: "key only"},
		{
			// A password is stored as a salted SHA-512 crypt hash, so two
			// renders differ in the salt only; the kit masks it and checks
			// the plaintext never reaches the log.
			name: "password and time zone",
			request: func(r *pluginv1.RenderRequest) {
				r.Password = "Conformance-" + rand.Text()
				r.Timezone = "Europe/Zurich"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conformance.TestOSPlugin(t, bin, conformance.OSOptions{
				Request: tt.request,
				Check:   checkSchema,
			})
		})
	}
}

// checkSchema validates the user-data with `cloud-init schema`, which exits
// non-zero on schema errors. Its report may quote entries, so the secrets
// of the request are redacted from it.
func checkSchema(t *testing.T, req *pluginv1.RenderRequest, resp *pluginv1.RenderResponse) {
	t.Helper()
	bin, err := exec.LookPath("cloud-init")
	if err != nil {
		t.Fatalf("cloud-init is not installed: install the Debian package cloud-init (`cloud-init schema` validates the rendered user-data): %v", err)
	}
	file := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(file, resp.GetUserData(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "schema", "--config-file", file).CombinedOutput()
	if err == nil {
		return
	}
	report := string(out)
	secrets := strings.Split(string(req.GetHostKey().GetPrivateKey()), "\n")
	secrets = append(secrets, req.GetPassword())
	for _, s := range secrets {
		if s = strings.TrimSpace(s); len(s) >= 8 {
			report = strings.ReplaceAll(report, s, "[REDACTED]")
		}
	}
	t.Errorf("cloud-init schema rejects the user-data: %v\n%s", err, report)
}
