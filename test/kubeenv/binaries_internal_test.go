package kubeenv

import (
	"io"
	"testing"
)

// TestRunBuildScript runs hack/kube-binaries.sh for real. TestMain has
// already built or found the cached binaries, so the script takes its
// cache-hit path and must print the same directory FindBinaries uses.
func TestRunBuildScript(t *testing.T) {
	t.Setenv(BinariesDirEnv, "")
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := DefaultBinariesDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := binariesIn(want); err != nil {
		t.Skipf("binaries not in the default cache (KUBE_BINARIES_DIR in use?): %v", err)
	}
	got, err := runBuildScript(t.Context(), root, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("script printed %q, want %q", got, want)
	}
}
