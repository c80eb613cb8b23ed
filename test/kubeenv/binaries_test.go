package kubeenv_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
)

// TestBuildScriptPins keeps hack/kube-binaries.sh and the Go constants in
// step: the cache directory is keyed by both versions.
func TestBuildScriptPins(t *testing.T) {
	root, err := kubeenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(root, kubeenv.BuildScript))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"K8S_VERSION":  kubeenv.KubernetesVersion,
		"ETCD_VERSION": kubeenv.EtcdVersion,
	} {
		m := regexp.MustCompile(`(?m)^` + name + `="([^"]+)"$`).FindSubmatch(script)
		if m == nil {
			t.Errorf("%s not pinned in %s", name, kubeenv.BuildScript)
			continue
		}
		if string(m[1]) != want {
			t.Errorf("%s=%s in %s, Go has %s", name, m[1], kubeenv.BuildScript, want)
		}
	}
}

// TestCRDsMatchGoMod fails when kubevirt.io/api was bumped without
// regenerating the CRDs.
func TestCRDsMatchGoMod(t *testing.T) {
	root, err := kubeenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*kubevirt\.io/api (v\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("kubevirt.io/api not in go.mod")
	}
	crds, err := kubeenv.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	if len(crds) != 2 {
		t.Errorf("%d embedded CRDs, want 2", len(crds))
	}
	for name, data := range crds {
		if !strings.Contains(string(data), "kubevirt.io/kubevirt@"+string(m[1])+";") {
			t.Errorf("%s was not generated from kubevirt %s: run go generate ./test/kubeenv", name, m[1])
		}
	}
}

// TestMissingBinariesFailLoudly: with NoBuild and nothing cached, Start must
// fail and name the command that builds the binaries.
func TestMissingBinariesFailLoudly(t *testing.T) {
	t.Setenv(kubeenv.BinariesDirEnv, "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	_, err := kubeenv.Start(t.Context(), kubeenv.Options{NoBuild: true})
	if err == nil {
		t.Fatal("Start succeeded without binaries")
	}
	if !strings.Contains(err.Error(), "bash ") || !strings.Contains(err.Error(), "kube-binaries.sh") {
		t.Errorf("error does not say how to build the binaries: %v", err)
	}

	_, err = kubeenv.Start(t.Context(), kubeenv.Options{BinariesDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "BinariesDir") {
		t.Errorf("want an Options.BinariesDir error, got %v", err)
	}
}
