package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// ErrVMIDeleted is returned by WaitRunning when the VMI is deleted while
// the executor waits for it.
var ErrVMIDeleted = errors.New("the vmi was deleted")

// WaitRunning watches VMI name until it runs with an IP address, fails, is
// deleted, or ctx ends. progress (may be nil) is called with every status
// that differs from the previous one, in order.
//
// It lists and then watches one object (field selector metadata.name) with
// client-go's informer machinery (watchtools.UntilWithSync): an expired
// watch ("resource version too old") or a dropped connection re-lists with
// backoff instead of failing, so an API server restart is survived.
//
// A list or watch the API server keeps forbidding (forbiddenGrace) ends
// the wait with an ErrForbidden error naming the verb: the informer would
// otherwise retry until the deadline.
func (c *Clients) WaitRunning(ctx context.Context, name string, progress func(Status)) (Status, error) {
	var last Status
	var seen bool
	err := c.until(ctx, name, nil,
		func(ev watch.Event) (bool, error) {
			vmi, err := c.eventVMI(ev, name, "it to run")
			if vmi == nil {
				return false, err
			}
			st, failed := Assess(vmi)
			if !seen || st != last {
				seen, last = true, st
				if progress != nil {
					progress(st)
				}
			}
			if failed != nil {
				return false, failed
			}
			return st.Ready(), nil
		})
	if err != nil {
		var fe *FailedError
		if errors.As(err, &fe) || errors.Is(err, ErrVMIDeleted) {
			return last, err
		}
		if errors.Is(err, ErrForbidden) {
			return last, err
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return last, fmt.Errorf("wait for vmi %s/%s to run (last phase %q): %w", c.Namespace, name, last.Phase, ctxErr)
		}
		return last, fmt.Errorf("wait for vmi %s/%s to run: %w", c.Namespace, name, err)
	}
	return last, nil
}

// WaitGone waits until VMI name does not exist (or ctx ends).
func (c *Clients) WaitGone(ctx context.Context, name string) error {
	err := c.until(ctx, name,
		func(store cache.Store) (bool, error) { return len(store.List()) == 0, nil },
		func(ev watch.Event) (bool, error) { return ev.Type == watch.Deleted, nil })
	if errors.Is(err, ErrForbidden) {
		return err
	}
	if err != nil {
		return fmt.Errorf("wait for vmi %s/%s to be deleted: %w", c.Namespace, name, err)
	}
	return nil
}

// eventVMI returns the VMI an Added or Modified watch event on VMI name
// carries, and nil for any other event. A Deleted event returns an error
// wrapping ErrVMIDeleted that names what the caller was waiting for
// (awaited, as in "while waiting for <awaited>").
func (c *Clients) eventVMI(ev watch.Event, name, awaited string) (*kubevirtv1.VirtualMachineInstance, error) {
	switch ev.Type {
	case watch.Deleted:
		return nil, c.deletedError(name, awaited)
	case watch.Added, watch.Modified:
		vmi, _ := ev.Object.(*kubevirtv1.VirtualMachineInstance)
		return vmi, nil
	default:
		return nil, nil
	}
}

// deletedError is the ErrVMIDeleted error for VMI name, deleted while the
// caller waited for awaited.
func (c *Clients) deletedError(name, awaited string) error {
	return fmt.Errorf("vmi %s/%s: %w while waiting for %s", c.Namespace, name, ErrVMIDeleted, awaited)
}

// until runs watchtools.UntilWithSync on the single VMI called name. It
// ends with an ErrForbidden error when the API server keeps refusing the
// list or the watch (the informer would retry until ctx ends).
func (c *Clients) until(ctx context.Context, name string, precondition watchtools.PreconditionFunc, cond watchtools.ConditionFunc) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	_, err := watchtools.UntilWithSync(ctx, c.listWatch(name, stop), &kubevirtv1.VirtualMachineInstance{}, precondition, cond)
	if cause := context.Cause(ctx); errors.Is(cause, ErrForbidden) {
		return cause
	}
	return err
}

// ErrForbidden means the API server kept refusing a verb the executor
// needs: the runner's Role lacks it (see deploy/rbac.yaml).
var ErrForbidden = errors.New("forbidden by the API server")

// forbiddenGrace is how long list/watch may keep answering Forbidden before
// the wait gives up. A restarting kube-apiserver refuses requests for a
// moment until its RBAC caches have synced; a missing verb stays refused.
const forbiddenGrace = 15 * time.Second

// listWatch lists and watches the single VMI called name. A refusal is
// final (denied gets an ErrForbidden error naming the verb) when the watch
// is forbidden although the list was allowed (RBAC is evaluated, the Role
// lacks watch), or when the API server has answered Forbidden for
// forbiddenGrace without a success in between.
func (c *Clients) listWatch(name string, denied context.CancelCauseFunc) cache.ListerWatcher {
	vmis := c.Virt.KubevirtV1().VirtualMachineInstances(c.Namespace)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	var mu sync.Mutex
	var refusedSince time.Time
	var listed bool
	check := func(verb string, err error) error {
		mu.Lock()
		defer mu.Unlock()
		if !apierrors.IsForbidden(err) {
			if err == nil {
				refusedSince = time.Time{}
				listed = listed || verb == "list"
			}
			return err
		}
		if refusedSince.IsZero() {
			refusedSince = time.Now()
		}
		if (verb == "watch" && listed) || time.Since(refusedSince) >= forbiddenGrace {
			denied(fmt.Errorf("%w: %s virtualmachineinstances in namespace %s: grant the runner's ServiceAccount %q on virtualmachineinstances (deploy/rbac.yaml): %v",
				ErrForbidden, verb, c.Namespace, verb, err))
		}
		return err
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			obj, err := vmis.List(ctx, o)
			return obj, check("list", err)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			w, err := vmis.Watch(ctx, o)
			return w, check("watch", err)
		},
	}
}

func jsonMarshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode patch: %w", err)
	}
	return b, nil
}
