package standin

import (
	"fmt"
	"time"

	kubevirtv1 "kubevirt.io/api/core/v1"
)

// Behaviour says how the stand-in treats one VMI. The zero value is a
// healthy VM: scheduled, running with an address, sshd up at once.
type Behaviour struct {
	// FailReason, when set, makes the VMI fail after it was scheduled:
	// phase Failed with this text as status.reason.
	FailReason string
	// UnschedulableMessage, when set, leaves the VMI in phase Scheduling
	// with the condition PodScheduled=False, reason Unschedulable and this
	// message, as KubeVirt reports a virt-launcher Pod no node fits.
	UnschedulableMessage string
	// RunningDelay is how long the VMI stays Scheduled before it runs.
	RunningDelay time.Duration
	// SSHDelay is how long after Running (with its address) sshd starts,
	// like a guest that is still booting.
	SSHDelay time.Duration
	// NoIP makes the VMI run without an address in status.interfaces, and
	// without sshd.
	NoIP bool
}

// Normal is the healthy behaviour (the zero Behaviour).
func Normal() Behaviour { return Behaviour{} }

// Fail makes the VMI fail with reason after it was scheduled.
func Fail(reason string) Behaviour { return Behaviour{FailReason: reason} }

// Unschedulable keeps the VMI unschedulable with message, e.g.
// "0/3 nodes are available: 3 Insufficient memory."
func Unschedulable(message string) Behaviour { return Behaviour{UnschedulableMessage: message} }

// DelayRunning keeps the VMI in phase Scheduled for d before it runs.
func DelayRunning(d time.Duration) Behaviour { return Behaviour{RunningDelay: d} }

// DelaySSH reports the VMI Running at once but starts its sshd only after d.
func DelaySSH(d time.Duration) Behaviour { return Behaviour{SSHDelay: d} }

// NoIP runs the VMI without an address (and without sshd).
func NoIP() Behaviour { return Behaviour{NoIP: true} }

// BehaviourFunc chooses the behaviour of a VMI when the stand-in first sees
// it. It is called from the stand-in's event loop and must not block.
type BehaviourFunc func(vmi *kubevirtv1.VirtualMachineInstance) Behaviour

// validate checks b; every error names the field, the value and the rule.
func (b Behaviour) validate() error {
	switch {
	case b.RunningDelay < 0:
		return fmt.Errorf("behaviour RunningDelay %s: must not be negative", b.RunningDelay)
	case b.SSHDelay < 0:
		return fmt.Errorf("behaviour SSHDelay %s: must not be negative", b.SSHDelay)
	case b.FailReason != "" && b.UnschedulableMessage != "":
		return fmt.Errorf("behaviour FailReason %q and UnschedulableMessage %q: set at most one", b.FailReason, b.UnschedulableMessage)
	}
	return nil
}

// String describes b for logs.
func (b Behaviour) String() string {
	switch {
	case b.FailReason != "":
		return fmt.Sprintf("fail(%q)", b.FailReason)
	case b.UnschedulableMessage != "":
		return fmt.Sprintf("unschedulable(%q)", b.UnschedulableMessage)
	case b.NoIP:
		return "no-ip"
	}
	s := "normal"
	if b.RunningDelay > 0 {
		s += fmt.Sprintf(", running after %s", b.RunningDelay)
	}
	if b.SSHDelay > 0 {
		s += fmt.Sprintf(", sshd after %s", b.SSHDelay)
	}
	return s
}
