package reliability_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// TestAPIServerDown kills kube-apiserver (SIGKILL, as a crash) during
// prepare (right after the job's Secret was created), during a script and
// during cleanup. The job is a system failure (or, when only cleanup is
// hit, keeps its status: cleanup never changes it), cleanup gives up
// within its --timeout, and after the API server is back, gc removes
// whatever the executor could not: 0 VMIs, 0 Secrets.
func TestAPIServerDown(t *testing.T) {
	tests := []struct {
		name       string
		when       string // "secret", "script" or "cleanup"
		wantStatus runner.Status
	}{
		{name: "prepare after the Secret exists", when: "secret", wantStatus: runner.StatusSystemFailure},
		{name: "run mid-script", when: "script", wantStatus: runner.StatusSystemFailure},
		{name: "cleanup", when: "cleanup", wantStatus: runner.StatusSuccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer assertClean(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
			defer cancel()
			id := nextJobID()
			vmi := e2e.VMIName(1, id)
			marker := fmt.Sprintf("API-DOWN-%d", id)
			job := runner.Job{ID: id, Script: []string{fmt.Sprintf(`echo "API-DOWN-""%d"`, id), "sleep 2"}, AfterScript: []string{"echo after"}, Artifacts: true}
			// The VMI runs late, so prepare still waits when the API
			// server dies.
			behave(t, vmi, standin.DelayRunning(2*time.Second))

			var once sync.Once
			killed := make(chan struct{})
			kill := func() {
				once.Do(func() {
					if err := bed.Env.KillAPIServer(); err != nil {
						t.Errorf("kill kube-apiserver: %v", err)
					}
					close(killed)
				})
			}
			t.Cleanup(func() {
				if !bed.Env.APIServerRunning() {
					if err := bed.Env.StartAPIServer(context.Background()); err != nil {
						t.Fatalf("restart kube-apiserver: %v", err)
					}
				}
			})
			hooks := runner.Hooks{}
			switch tt.when {
			case "secret":
				w, err := bed.Kube.CoreV1().Secrets(bed.Namespace).Watch(ctx, metav1.ListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer w.Stop()
				go func() {
					for ev := range w.ResultChan() {
						if ev.Type == watch.Added {
							kill()
							return
						}
					}
				}()
			case "script":
				hooks.Log = onMarker(marker, kill)
			case "cleanup":
				hooks.StageStarted = func(s runner.StageInfo) {
					if s.Stage == "cleanup" {
						kill()
					}
				}
			}
			cfg := bed.RunnerConfig("--timeout", "20s")
			cfg.Hooks = hooks
			cfg.PrepareRetries = 1
			cfg.CleanupArgs = append(cfg.CleanupArgs, "--timeout", "10s")
			res := runJob(ctx, t, e2etest.NewExecutor(t, cfg), job)
			select {
			case <-killed:
			default:
				t.Fatalf("the API server was never killed (stages %v)", res.StageNames())
			}
			wantStatus(t, res, tt.wantStatus)
			c, ok := res.Stage("cleanup")
			if !ok {
				t.Fatal("cleanup did not run")
			}
			if c.Killed {
				t.Error("cleanup had to be killed: it did not end within its --timeout")
			}
			t.Logf("measured: cleanup without an API server ended after %s with exit code %d", c.Duration.Round(time.Millisecond), c.ExitCode)

			if err := bed.Env.StartAPIServer(ctx); err != nil {
				t.Fatalf("restart kube-apiserver: %v", err)
			}
			vmis, secrets, err := objects(ctx, bed.Namespace)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("left after the outage: VMIs %v, Secrets %v", vmis, secrets)
			out := gc(t, bed.Kubeconfig, bed.Namespace)
			t.Logf("gc: %s", out)
		})
	}
}
