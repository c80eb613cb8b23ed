package conformance

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// pluginName is what may follow pluginapi.BinaryPrefix in a binary name.
var pluginName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// Build compiles the plugin's main package pkg (as `go build` takes it,
// e.g. "." from the plugin's own test) into
// t.TempDir()/gitlab-runner-kubevirt-plugin-<name> and returns that path.
// It uses the go command on PATH, which `go test` puts first.
func Build(t *testing.T, pkg, name string) string {
	t.Helper()
	if !pluginName.MatchString(name) {
		t.Fatalf("conformance.Build: name %q: must match %s (it becomes %s<name>)", name, pluginName, pluginapi.BinaryPrefix)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("conformance.Build: the go command is not on PATH: %v", err)
	}
	out := filepath.Join(t.TempDir(), pluginapi.BinaryPrefix+name)
	cmd := exec.Command(gobin, "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -o %s %s: %v\n%s", out, pkg, err, b)
	}
	return out
}
