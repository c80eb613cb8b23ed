package kube_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube/kubetest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
)

// TestEventsOnRealAPIServer records Events as the runner's ServiceAccount
// (deploy/rbac.yaml) on a real kube-apiserver and reads them back as
// kubectl would; it also checks that a refused Event is only logged.
func TestEventsOnRealAPIServer(t *testing.T) {
	env := kubeenv.StartForTest(t, kubeenv.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := kubetest.NewCluster(t, env, "events-")
	ns, runner, admin := c.Namespace, c.Runner, c.Admin
	vmi := &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Name: "runner-1-2", UID: "0b5c7a1e-0000-4000-8000-000000000001"}}

	tests := []struct {
		name     string
		record   func(r *kube.EventRecorder, ctx context.Context)
		typ      string
		reason   string
		message  string
		finished bool // ctx already cancelled when recording
	}{
		{name: "normal", typ: corev1.EventTypeNormal, reason: kube.ReasonCreated, message: "VM created for GitLab job 2 (group/project)",
			record: func(r *kube.EventRecorder, ctx context.Context) {
				r.Normal(ctx, vmi, kube.ReasonCreated, "VM created for GitLab job %s (%s)", "2", "group/project")
			}},
		{name: "warning", typ: corev1.EventTypeWarning, reason: kube.ReasonPrepareFailed, message: "prepare failed: unschedulable",
			record: func(r *kube.EventRecorder, ctx context.Context) {
				r.Warning(ctx, vmi, kube.ReasonPrepareFailed, "prepare failed: %s", "unschedulable")
			}},
		{name: "recorded after the stage's context ended", typ: corev1.EventTypeWarning, reason: kube.ReasonCleanupFailed, message: "cancelled",
			finished: true,
			record: func(r *kube.EventRecorder, ctx context.Context) {
				r.Warning(ctx, vmi, kube.ReasonCleanupFailed, "cancelled")
			}},
		{name: "key material is never recorded", typ: corev1.EventTypeWarning, reason: kube.ReasonCleanupStarted,
			message: "(message withheld: it contained key material)",
			record: func(r *kube.EventRecorder, ctx context.Context) {
				r.Warning(ctx, vmi, kube.ReasonCleanupStarted, "bad: %s", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n")
			}},
		{name: "long message is cut", typ: corev1.EventTypeNormal, reason: kube.ReasonReady, message: strings.Repeat("x", 1021) + "...",
			record: func(r *kube.EventRecorder, ctx context.Context) {
				r.Normal(ctx, vmi, kube.ReasonReady, "%s", strings.Repeat("x", 5000))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rctx, rcancel := context.WithCancel(ctx)
			if tt.finished {
				rcancel()
			}
			defer rcancel()
			var log strings.Builder
			tt.record(runner.Events(hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Debug})), rctx)
			if log.Len() > 0 {
				t.Errorf("recording logged: %s", log.String())
			}
			evs, err := admin.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
				"involvedObject.name": vmi.Name, "involvedObject.kind": "VirtualMachineInstance", "reason": tt.reason,
			}.String()})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs.Items) != 1 {
				t.Fatalf("%d events with reason %s, want 1", len(evs.Items), tt.reason)
			}
			ev := evs.Items[0]
			if ev.Type != tt.typ || ev.Message != tt.message || ev.InvolvedObject.UID != vmi.UID ||
				ev.InvolvedObject.APIVersion != "kubevirt.io/v1" || ev.Source.Component != "gitlab-runner-kubevirt" {
				t.Errorf("event = type %q reason %q message %.80q object %+v source %+v", ev.Type, ev.Reason, ev.Message, ev.InvolvedObject, ev.Source)
			}
		})
	}

	t.Run("refused event is logged at debug and not returned", func(t *testing.T) {
		other, err := kube.NewForConfig(c.RunnerConfig, "kube-system") // the Role does not reach it
		if err != nil {
			t.Fatal(err)
		}
		var log strings.Builder
		other.Events(hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Debug})).Normal(ctx, vmi, kube.ReasonReady, "ready")
		if !strings.Contains(log.String(), "could not record event") || !strings.Contains(log.String(), "forbidden") {
			t.Errorf("debug log = %q, want the refusal", log.String())
		}
		log.Reset()
		other.Events(hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Info})).Normal(ctx, vmi, kube.ReasonReady, "ready")
		if log.Len() > 0 {
			t.Errorf("refusal logged above debug: %q", log.String())
		}
	})
}
