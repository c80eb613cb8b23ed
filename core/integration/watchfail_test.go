package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
)

// TestWatchFailure: a Running VMI whose guest dies (phase Failed, as the
// stand-in's QEMU mode reports a boot that never reaches SSH) or that is
// deleted ends WatchFailure with KubeVirt's reason; a healthy VMI keeps it
// waiting until its context ends. Prepare runs it beside the transport's
// wait.
func TestWatchFailure(t *testing.T) {
	tests := []struct {
		name  string
		jobID string
		act   func(c *cluster, name string)
		check func(t *testing.T, err error)
	}{
		{name: "failed", jobID: "801",
			act: func(c *cluster, name string) {
				c.setStatus(t, name, func(s *kubevirtv1.VirtualMachineInstanceStatus) {
					s.Phase, s.Reason = kubevirtv1.Failed, "guest did not reach SSH; console:\n[    1.7] Kernel panic - not syncing"
				})
			},
			check: func(t *testing.T, err error) {
				var fe *kube.FailedError
				if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "Kernel panic - not syncing") {
					t.Errorf("WatchFailure = %v, want a FailedError with the console reason", err)
				}
			}},
		{name: "deleted", jobID: "802",
			act: func(c *cluster, name string) {
				if err := c.admin.Virt.KubevirtV1().VirtualMachineInstances(c.ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
					t.Error(err)
				}
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, kube.ErrVMIDeleted) {
					t.Errorf("WatchFailure = %v, want ErrVMIDeleted", err)
				}
			}},
		{name: "healthy until the context ends", jobID: "803",
			act: func(*cluster, string) {},
			check: func(t *testing.T, err error) {
				if err != nil {
					t.Errorf("WatchFailure = %v, want nil when its context ends", err)
				}
			}},
	}
	c := newCluster(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := job(t, c.ns, "8", tt.jobID, time.Now(), time.Hour)
			vmi := c.create(t, j)
			c.setStatus(t, vmi.Name, phase(kubevirtv1.Running, "node-1", "127.0.0.9"))
			// Healthy: the watch runs until this context ends (a deadline
			// against hangs for the other cases).
			limit := time.Minute
			if tt.name == "healthy until the context ends" {
				limit = 2 * time.Second
			}
			ctx, cancel := context.WithTimeout(t.Context(), limit)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.runner.WatchFailure(ctx, vmi.Name) }()
			tt.act(c, vmi.Name)
			err := <-done
			if ctx.Err() != nil && tt.name != "healthy until the context ends" {
				t.Fatalf("WatchFailure did not notice within %s (returned %v)", limit, err)
			}
			tt.check(t, err)
		})
	}
}
