package e2etest

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"kubevirt.io/client-go/kubevirt"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// pollInterval is how often the waits here look again.
const pollInterval = 20 * time.Millisecond

// Cluster is what [AssertNoJobObjects] looks at: admin clients, the
// namespace of the job objects and the stand-in that drives the VMIs.
type Cluster struct {
	// Kube and Virt are admin clients.
	Kube kubernetes.Interface
	Virt kubevirt.Interface
	// Namespace holds the job objects.
	Namespace string
	// Standin drives the VMIs.
	Standin *standin.Controller
}

// AssertNoJobObjects checks that a job left no VMI and no Secret in
// c.Namespace, that the stand-in went idle and that it holds no guest
// address. Deleted VMIs stay until the stand-in powered their guest off,
// so it waits for them until ctx ends; leftovers are reported and
// deleted so later tests start clean.
func AssertNoJobObjects(ctx context.Context, t testing.TB, c Cluster) {
	t.Helper()
	vmis := c.Virt.KubevirtV1().VirtualMachineInstances(c.Namespace)
	secrets := c.Kube.CoreV1().Secrets(c.Namespace)
	var names []string
	for {
		list, err := vmis.List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list vmis: %v", err)
		}
		names = names[:0]
		live := false
		for _, v := range list.Items {
			names = append(names, v.Name)
			live = live || v.DeletionTimestamp == nil
		}
		if len(names) == 0 || live || ctx.Err() != nil {
			break
		}
		time.Sleep(pollInterval)
	}
	if len(names) > 0 {
		t.Errorf("VMIs left in %s: %v", c.Namespace, names)
		for _, n := range names {
			_ = vmis.Delete(ctx, n, metav1.DeleteOptions{})
		}
	}
	list, err := secrets.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list secrets: %v", err)
	}
	for _, s := range list.Items {
		t.Errorf("Secret left in %s: %s", c.Namespace, s.Name)
		_ = secrets.Delete(ctx, s.Name, metav1.DeleteOptions{})
	}
	if err := c.Standin.WaitIdle(ctx); err != nil {
		t.Error(err)
	}
	if n := c.Standin.AddressesInUse(); n != 0 {
		t.Errorf("the stand-in still holds %d guest addresses", n)
	}
}

// WaitGone polls list until it returns nothing. When ctx ends first it
// reports "<what> left behind: <what list returned>" on t.
func WaitGone(ctx context.Context, t testing.TB, what string, list func() []string) {
	t.Helper()
	for {
		left := list()
		if len(left) == 0 {
			return
		}
		if ctx.Err() != nil {
			t.Errorf("%s left behind: %s", what, strings.Join(left, "; "))
			return
		}
		time.Sleep(pollInterval)
	}
}
