package kube

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// Status is what the executor reads from a VMI's status.
type Status struct {
	// Phase is status.phase ("" until KubeVirt sets one).
	Phase kubevirtv1.VirtualMachineInstancePhase
	// Node is status.nodeName ("" until scheduled).
	Node string
	// IP is status.interfaces[0].ipAddress ("" until known).
	IP string
}

// Ready reports whether the VMI runs and has an IP address.
func (s Status) Ready() bool { return s.Phase == kubevirtv1.Running && s.IP != "" }

// FailedError says that a VMI cannot run; Reason is KubeVirt's explanation.
type FailedError struct {
	Name   string
	Reason string
}

func (e *FailedError) Error() string { return fmt.Sprintf("vmi %s failed: %s", e.Name, e.Reason) }

// Assess reads a VMI's status. The error is a *FailedError when the VMI
// failed (phase Failed or Succeeded, or unschedulable).
func Assess(vmi *kubevirtv1.VirtualMachineInstance) (Status, error) {
	st := Status{Phase: vmi.Status.Phase, Node: vmi.Status.NodeName}
	if len(vmi.Status.Interfaces) > 0 {
		st.IP = vmi.Status.Interfaces[0].IP
	}
	for _, c := range vmi.Status.Conditions {
		if string(c.Type) == string(corev1.PodScheduled) && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return st, &FailedError{Name: vmi.Name, Reason: "unschedulable: " + orDefault(c.Message, "no node fits the VM")}
		}
	}
	switch st.Phase {
	case kubevirtv1.Failed:
		return st, &FailedError{Name: vmi.Name, Reason: "phase Failed: " + failureReason(vmi)}
	case kubevirtv1.Succeeded:
		return st, &FailedError{Name: vmi.Name, Reason: "the VM shut down (phase Succeeded) before it was ready"}
	}
	return st, nil
}

// failureReason gathers status.reason and the messages of unhealthy
// conditions.
func failureReason(vmi *kubevirtv1.VirtualMachineInstance) string {
	var parts []string
	if vmi.Status.Reason != "" {
		parts = append(parts, vmi.Status.Reason)
	}
	for _, c := range vmi.Status.Conditions {
		if c.Status == corev1.ConditionTrue || (c.Reason == "" && c.Message == "") {
			continue
		}
		s := string(c.Type)
		if c.Reason != "" {
			s += " " + c.Reason
		}
		if c.Message != "" {
			s += ": " + c.Message
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "KubeVirt gave no reason"
	}
	return strings.Join(parts, "; ")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
