package integration

import (
	"context"
	"testing"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
)

// TestWaitRunningSurvivesAPIServerRestart stops and restarts a private API
// server while prepare's wait is watching: the watch must re-list and see
// the VMI run, instead of failing.
func TestWaitRunningSurvivesAPIServerRestart(t *testing.T) {
	private := kubeenv.StartForTest(t, kubeenv.Options{})
	ctx := t.Context()
	ns, err := private.NewNamespace(ctx, "restart-")
	if err != nil {
		t.Fatal(err)
	}
	if err := private.ApplyRBAC(ctx, ns); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := private.ServiceAccountConfig(ctx, ns, serviceAccount)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := kube.NewForConfig(cfg, ns)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kube.NewForConfig(private.AdminConfig(), ns)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{ns: ns, runner: runner, admin: admin}
	j := job(t, ns, "8", "80", time.Now(), time.Hour)
	c.create(t, j)

	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	seen := make(chan struct{})
	type result struct {
		st  kube.Status
		err error
	}
	done := make(chan result, 1)
	go func() {
		var once bool
		st, err := runner.WaitRunning(waitCtx, j.Names.VMI, func(kube.Status) {
			if !once {
				once = true
				close(seen)
			}
		})
		done <- result{st, err}
	}()
	<-seen
	if err := private.StopAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := private.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	c.setStatus(t, j.Names.VMI, phase(kubevirtv1.Running, "node-r", "10.9.8.7"))
	r := <-done
	if r.err != nil {
		t.Fatalf("WaitRunning across a restart: %v", r.err)
	}
	if !r.st.Ready() || r.st.IP != "10.9.8.7" {
		t.Errorf("status = %+v", r.st)
	}
}
