package reliability_test

import (
	"context"
	"sync"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// TestSameJobIDNeverCollides runs two jobs with the same CI_JOB_ID at the
// same time: in two namespaces, and for two runners (different
// CI_RUNNER_ID) in one namespace. The short job's cleanup runs while the
// long one still works; the long one must still succeed (its VMI and
// Secret were not touched), and both leave nothing.
func TestSameJobIDNeverCollides(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	// A second namespace with the runner's RBAC, its own stand-in and its
	// own guest account (the stand-in resets an account when its last
	// guest powers off; sharing one would kill the other job).
	ns2, err := bed.Env.NewNamespace(ctx, "gitlab-runner-other-")
	if err != nil {
		t.Fatal(err)
	}
	if err := bed.Env.ApplyRBAC(ctx, ns2); err != nil {
		t.Fatal(err)
	}
	_, kubeconfig2, err := bed.Env.ServiceAccountConfig(ctx, ns2, e2e.ServiceAccount)
	if err != nil {
		t.Fatal(err)
	}
	acct2, err := standin.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = acct2.Remove(context.Background()) })
	si2, err := standin.Start(ctx, standin.Options{
		Config: bed.Env.AdminConfig(), Namespace: ns2, SSHPort: bed.SSHPort,
		NodeName: "standin-node-2", Accounts: []*standin.Account{acct2},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = si2.Stop() })

	other := bed.RunnerConfig()
	swap := func(args []string) []string {
		out := append([]string(nil), args...)
		for i := range out {
			switch {
			case out[i] == bed.Namespace:
				out[i] = ns2
			case out[i] == bed.Kubeconfig:
				out[i] = kubeconfig2
			case out[i] == bed.Account.Name:
				out[i] = acct2.Name
			}
		}
		return out
	}
	other.ConfigArgs, other.PrepareArgs, other.RunArgs, other.CleanupArgs = swap(other.ConfigArgs), swap(other.PrepareArgs), swap(other.RunArgs), swap(other.CleanupArgs)
	other.PrepareRetries = 1
	runner2 := bed.RunnerConfig()
	runner2.RunnerID = 2
	runner2.PrepareRetries = 1

	tests := []struct {
		name  string
		short runner.Config
	}{
		{name: "two namespaces", short: other},
		{name: "two runners in one namespace", short: runner2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer assertClean(t, bed.Namespace, ns2)
			id := nextJobID()
			long := runner.Job{ID: id, Script: []string{"sleep 4", "test -f ~/.long-marker || true", "echo long-done"}}
			short := runner.Job{ID: id, Script: []string{"echo short-done"}}
			longCfg := bed.RunnerConfig()
			longCfg.PrepareRetries = 1
			var wg sync.WaitGroup
			var longRes, shortRes *runner.Result
			wg.Add(2)
			go func() { defer wg.Done(); longRes, _ = e2etest.NewExecutor(t, longCfg).Run(ctx, long) }()
			go func() { defer wg.Done(); shortRes, _ = e2etest.NewExecutor(t, tt.short).Run(ctx, short) }()
			wg.Wait()
			if longRes == nil || shortRes == nil {
				t.Fatal("a job did not run")
			}
			for name, res := range map[string]*runner.Result{"long": longRes, "short": shortRes} {
				if res.Status != runner.StatusSuccess {
					t.Errorf("%s job: status %s (%s)\n%s", name, res.Status, res.Reason, res.JobLog())
				}
			}
		})
	}
}
