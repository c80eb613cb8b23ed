package kube

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// TestEventVMI checks the watch-event step WaitRunning and WatchFailure
// share: which events carry a VMI, and the exact ErrVMIDeleted message
// each caller gives for a deletion.
func TestEventVMI(t *testing.T) {
	c := &Clients{Namespace: "ci"}
	vmi := &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Name: "runner-1-2"}}
	tests := []struct {
		name    string
		ev      watch.Event
		awaited string
		wantVMI bool
		wantErr string // "" for none
	}{
		{name: "added", ev: watch.Event{Type: watch.Added, Object: vmi}, awaited: "it to run", wantVMI: true},
		{name: "modified", ev: watch.Event{Type: watch.Modified, Object: vmi}, awaited: "its guest", wantVMI: true},
		{name: "modified other object", ev: watch.Event{Type: watch.Modified, Object: &corev1.Pod{}}, awaited: "it to run"},
		{name: "bookmark", ev: watch.Event{Type: watch.Bookmark, Object: vmi}, awaited: "it to run"},
		{name: "error event", ev: watch.Event{Type: watch.Error, Object: &metav1.Status{}}, awaited: "it to run"},
		{name: "deleted while waiting to run", ev: watch.Event{Type: watch.Deleted, Object: vmi}, awaited: "it to run",
			wantErr: "vmi ci/runner-1-2: the vmi was deleted while waiting for it to run"},
		{name: "deleted while waiting for the guest", ev: watch.Event{Type: watch.Deleted, Object: vmi}, awaited: "its guest",
			wantErr: "vmi ci/runner-1-2: the vmi was deleted while waiting for its guest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.eventVMI(tt.ev, "runner-1-2", tt.awaited)
			if (got != nil) != tt.wantVMI || (got != nil && got != vmi) {
				t.Errorf("eventVMI VMI = %v, want VMI %v", got, tt.wantVMI)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("eventVMI error = %v, want none", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrVMIDeleted)):
				t.Errorf("eventVMI error = %v, want %q wrapping ErrVMIDeleted", err, tt.wantErr)
			}
		})
	}
}
