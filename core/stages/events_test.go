package stages_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube/kubetest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/stages"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
)

// TestCleanupRecordsEvents runs the cleanup stage as the runner's
// ServiceAccount on a real kube-apiserver and reads the Events it left on
// the VMI, in order.
func TestCleanupRecordsEvents(t *testing.T) {
	env := kubeenv.StartForTest(t, kubeenv.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := kubetest.NewCluster(t, env, "cleanup-events-")
	ns, runner, admin := c.Namespace, c.Runner, c.Admin
	tests := []struct {
		name       string
		jobID      string
		createVMI  bool
		wantEvents []string // reasons, oldest first
		wantLog    string
	}{
		{name: "VM exists", jobID: "345", createVMI: true, wantEvents: []string{kube.ReasonCleanupStarted, kube.ReasonDeleted}, wantLog: "Deleted VM"},
		{name: "nothing to delete records nothing", jobID: "346", wantLog: "Nothing to clean up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "runner-12-" + tt.jobID
			if tt.createVMI {
				vmi := &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Name: name}}
				if _, err := admin.Virt.KubevirtV1().VirtualMachineInstances(ns).Create(ctx, vmi, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			lookup := jobenv.FromMap(map[string]string{"CUSTOM_ENV_CI_RUNNER_ID": "12", "CUSTOM_ENV_CI_JOB_ID": tt.jobID})
			var out strings.Builder
			if err := stages.Cleanup(ctx, lookup, runner, stages.CleanupOptions{NamePrefix: "runner"}, &out); err != nil {
				t.Fatalf("Cleanup: %v (job log %q)", err, out.String())
			}
			if !strings.Contains(out.String(), tt.wantLog) {
				t.Errorf("job log %q lacks %q", out.String(), tt.wantLog)
			}
			evs, err := admin.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String()})
			if err != nil {
				t.Fatal(err)
			}
			var reasons []string
			for _, ev := range evs.Items {
				reasons = append(reasons, ev.Reason)
				if ev.Type != corev1.EventTypeNormal || !strings.Contains(ev.Message, "GitLab job "+tt.jobID) {
					t.Errorf("event %s: type %q message %q", ev.Reason, ev.Type, ev.Message)
				}
			}
			if strings.Join(reasons, ",") != strings.Join(tt.wantEvents, ",") {
				t.Errorf("events = %v, want %v", reasons, tt.wantEvents)
			}
		})
	}
}
