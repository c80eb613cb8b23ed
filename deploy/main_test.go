// Package deploy_test proves the manifests in deploy/ against the real
// thing: server-side apply and dry-run Pods on a real kube-apiserver (from
// test/kubeenv, with RBAC and Pod Security admission), the real
// gitlab-runner-kubevirt binary (built with go build) for every flag the
// manifests pass it and for the install command, and a real gc run under
// the ServiceAccount of rbac.yaml.
package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
)

// fixture is what TestMain prepares for every test: the control plane,
// the repository root and the built binaries.
type fixture struct {
	env  *kubeenv.Env
	root string
	// core is the gitlab-runner-kubevirt binary built from ./cmd.
	core string
	// plugins are plugin binaries built from every ./plugins main package,
	// named gitlab-runner-kubevirt-plugin-<name>, in one directory.
	plugins []string
}

// fx is set once by TestMain before any test runs and only read after.
var fx fixture

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := kubeenv.RepoRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy tests: %v\n", err)
		return 1
	}
	bin, err := os.MkdirTemp("", "deploy-test-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy tests: %v\n", err)
		return 1
	}
	defer os.RemoveAll(bin)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	core, plugins, err := buildBinaries(ctx, root, bin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy tests: %v\n", err)
		return 1
	}
	return kubeenv.RunMain(m, kubeenv.Options{}, func(e *kubeenv.Env) {
		fx = fixture{env: e, root: root, core: core, plugins: plugins}
	})
}

// buildBinaries builds the core and every plugin main package into dir.
func buildBinaries(ctx context.Context, root, dir string) (string, []string, error) {
	core := filepath.Join(dir, "gitlab-runner-kubevirt")
	if _, err := goCmd(ctx, root, "build", "-o", core, "./cmd/gitlab-runner-kubevirt"); err != nil {
		return "", nil, err
	}
	out, err := goCmd(ctx, root, "list", "-e", "-f", `{{if eq .Name "main"}}{{.ImportPath}}{{end}}`, "./plugins/...")
	if err != nil {
		return "", nil, err
	}
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return "", nil, err
	}
	var plugins []string
	for _, pkg := range strings.Fields(string(out)) {
		p := filepath.Join(pluginDir, "gitlab-runner-kubevirt-plugin-"+filepath.Base(pkg))
		if _, err := goCmd(ctx, root, "build", "-o", p, pkg); err != nil {
			return "", nil, err
		}
		plugins = append(plugins, p)
	}
	if len(plugins) == 0 {
		return "", nil, fmt.Errorf("no plugin main package under %s/plugins", root)
	}
	return core, plugins, nil
}

// goCmd runs the go command in dir and returns its standard output.
func goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// runResult is the outcome of one run of the core binary.
type runResult struct {
	code           int
	stdout, stderr string
}

// runCore runs the core binary at path with args and env (added to a
// minimal PATH/HOME environment), bounded by a minute.
func runCore(t *testing.T, path string, env []string, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := runResult{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %s %q: %v", path, args, err)
		}
		res.code = ee.ExitCode()
	}
	return res
}

// readDeploy reads a file under deploy/.
func readDeploy(t *testing.T, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fx.root, "deploy", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return data
}
