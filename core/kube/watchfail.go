package kube

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// WatchFailure watches VMI name until it fails (a *FailedError: phase
// Failed or Succeeded), is deleted or does not exist (ErrVMIDeleted), or
// ctx ends (nil).
// Prepare runs it beside the transport's wait: KubeVirt reports Running
// when the domain starts, before the guest OS is up, so a guest that dies
// while booting must still end the wait with KubeVirt's reason.
func (c *Clients) WatchFailure(ctx context.Context, name string) error {
	gone := func(store cache.Store) (bool, error) {
		if len(store.List()) == 0 {
			return false, c.deletedError(name, "its guest")
		}
		return false, nil
	}
	err := c.until(ctx, name, gone,
		func(ev watch.Event) (bool, error) {
			vmi, err := c.eventVMI(ev, name, "its guest")
			if vmi == nil {
				return false, err
			}
			_, failed := Assess(vmi)
			return false, failed
		})
	var fe *FailedError
	if errors.As(err, &fe) || errors.Is(err, ErrVMIDeleted) || errors.Is(err, ErrForbidden) {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("watch vmi %s/%s: %w", c.Namespace, name, err)
	}
	return nil
}
