package pluginapi_test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// testPlugin is the binary built from testdata/testplugin for the Launch
// tests, and testPluginSHA256 its digest.
var (
	testPlugin       string
	testPluginSHA256 []byte
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pluginapi-test-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "pluginapi tests: %v\n", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	testPlugin = filepath.Join(dir, pluginapi.BinaryPrefix+"testplugin")
	if err := buildTestPlugin(testPlugin); err != nil {
		fmt.Fprintf(os.Stderr, "pluginapi tests: %v\n", err)
		return 1
	}
	data, err := os.ReadFile(testPlugin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pluginapi tests: %v\n", err)
		return 1
	}
	sum := sha256.Sum256(data)
	testPluginSHA256 = sum[:]
	return m.Run()
}

func buildTestPlugin(out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build testdata/testplugin: the go command is not on PATH: %w", err)
	}
	cmd := exec.Command(gobin, "build", "-o", out, "./testdata/testplugin")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./testdata/testplugin: %w\n%s", err, b)
	}
	return nil
}
