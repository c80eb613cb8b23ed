package e2e_test

import (
	"path/filepath"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// TestExampleJobs runs every job of examples/jobs (what `make demo` runs)
// and expects it to succeed.
func TestExampleJobs(t *testing.T) {
	files, err := filepath.Glob("../../examples/jobs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no job files in examples/jobs (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			job, err := runner.LoadJobFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res := runJob(t.Context(), t, newExecutor(t, runner.Hooks{}), job)
			if res.Status != runner.StatusSuccess {
				t.Errorf("status %s (%s), want success", res.Status, res.Reason)
			}
			assertClean(t)
		})
	}
}
