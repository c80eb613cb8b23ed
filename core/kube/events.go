package kube

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
)

// Reasons of the Events the executor records on a job's VMI.
const (
	// ReasonCreated: the VMI and its Secret were created for a job.
	ReasonCreated = "Created"
	// ReasonReady: the VM is reachable and finished first boot.
	ReasonReady = "Ready"
	// ReasonPrepareFailed (Warning): prepare failed; the VM is removed.
	ReasonPrepareFailed = "PrepareFailed"
	// ReasonCleanupStarted: cleanup is deleting the VM.
	ReasonCleanupStarted = "CleanupStarted"
	// ReasonDeleted: cleanup deleted the VM and its Secret.
	ReasonDeleted = "Deleted"
	// ReasonCleanupFailed (Warning): cleanup could not delete the VM.
	ReasonCleanupFailed = "CleanupFailed"
)

const (
	// maxEventMessage is the longest message recorded; longer ones are cut
	// so `kubectl describe` and `kubectl events` stay readable (the API
	// server's own bound is larger).
	maxEventMessage = 1024
	// eventTimeout bounds one Event create: Events are best effort and
	// must not hold up a stage.
	eventTimeout = 5 * time.Second
)

// EventRecorder records core/v1 Events on job VMIs. Recording is best
// effort: a failure is logged at debug level and never returned, so it
// never fails a stage.
//
// It creates each Event with one synchronous API call instead of
// client-go's asynchronous broadcaster (tools/record): a stage is a
// short-lived process that would exit before a broadcaster flushed.
type EventRecorder struct {
	clients  *Clients
	log      hclog.Logger
	instance string
	now      func() time.Time
}

// Events returns a recorder writing Events into c's namespace. log
// receives recording failures at debug level (nil: discarded).
func (c *Clients) Events(log hclog.Logger) *EventRecorder {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = naming.AppName
	}
	return &EventRecorder{clients: c, log: log, instance: host, now: time.Now}
}

// Normal records an informational Event on vmi.
func (r *EventRecorder) Normal(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, reason, format string, args ...any) {
	r.record(ctx, vmi, corev1.EventTypeNormal, reason, fmt.Sprintf(format, args...))
}

// Warning records a Warning Event on vmi.
func (r *EventRecorder) Warning(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, reason, format string, args ...any) {
	r.record(ctx, vmi, corev1.EventTypeWarning, reason, fmt.Sprintf(format, args...))
}

// record creates the Event. It is a no-op for a nil recorder or VMI, so
// callers need no checks. ctx may already be done (a cancelled stage
// still records why): the call runs on a fresh context bounded by
// eventTimeout that keeps ctx's values.
func (r *EventRecorder) record(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, typ, reason, message string) {
	if r == nil || vmi == nil || vmi.Name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventTimeout)
	defer cancel()
	ev := r.event(vmi, typ, reason, message)
	if _, err := r.clients.Kube.CoreV1().Events(r.clients.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		r.log.Debug("could not record event", "vmi", vmi.Name, "reason", reason, "error", err)
	}
}

// event builds the core/v1 Event.
func (r *EventRecorder) event(vmi *kubevirtv1.VirtualMachineInstance, typ, reason, message string) *corev1.Event {
	now := metav1.NewTime(r.now())
	// Messages are built from names and error texts, never from
	// credentials; this is a last guard should an error ever quote a key.
	if strings.Contains(message, "PRIVATE KEY") {
		message = "(message withheld: it contained key material)"
	}
	if len(message) > maxEventMessage {
		message = message[:maxEventMessage-3] + "..."
	}
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			// Like client-go's recorder: <object>.<unique hex>.
			Name:      fmt.Sprintf("%s.%x", vmi.Name, now.UnixNano()),
			Namespace: r.clients.Namespace,
			Labels:    map[string]string{naming.LabelManagedBy: naming.AppName},
		},
		InvolvedObject: corev1.ObjectReference{
			APIVersion:      kubevirtv1.GroupVersion.String(),
			Kind:            "VirtualMachineInstance",
			Namespace:       r.clients.Namespace,
			Name:            vmi.Name,
			UID:             vmi.UID,
			ResourceVersion: vmi.ResourceVersion,
		},
		Reason:              reason,
		Message:             strings.TrimSpace(message),
		Type:                typ,
		Source:              corev1.EventSource{Component: naming.AppName, Host: r.instance},
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		ReportingController: naming.AppName,
		ReportingInstance:   r.instance,
	}
}
