package standin

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// Event reasons the stand-in records on VMIs, as KubeVirt's components do.
const (
	ReasonSuccessfulCreate = "SuccessfulCreate" // virt-controller created the launcher Pod
	ReasonFailedScheduling = "FailedScheduling" // the scheduler found no node
	ReasonStarted          = "Started"          // virt-handler started the domain
	ReasonFailed           = "Failed"           // the VMI failed
	ReasonStopped          = "Stopped"          // virt-handler stopped the domain
)

// record creates a Kubernetes Event about g's VMI, best effort: a failure
// is logged, never fatal.
func (c *Controller) record(g *guest, component, eventType, reason, message string) {
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: g.name + "."},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: kubevirtv1.GroupVersion.String(), Kind: "VirtualMachineInstance",
			Namespace: c.opts.Namespace, Name: g.name, UID: g.uid,
		},
		Reason:              reason,
		Message:             message,
		Type:                eventType,
		Source:              corev1.EventSource{Component: component, Host: c.opts.NodeName},
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		ReportingController: "kubevirt.io/" + component,
		ReportingInstance:   component + "-standin",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.kube.CoreV1().Events(c.opts.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		c.opts.Logf("stand-in: vmi %s: record event %s: %v", g.name, reason, err)
	}
}
