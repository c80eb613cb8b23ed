package e2etest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// canaryName is the Secret [WatchCreations] creates to prove its watches
// see creations.
const canaryName = "watch-canary"

// Creations records every VMI and Secret created in a namespace while it
// watches, as "VirtualMachineInstance/<name>" or "Secret/<name>": an
// object created and deleted again would be missed by a list at the end.
type Creations struct {
	mu      sync.Mutex
	created []string
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

// WatchCreations starts watching VMIs and Secrets in c.Namespace until
// ctx ends or [Creations.Stop]. It proves the watches work before it
// returns: it creates a canary Secret, waits (at most limit, a deadline
// against hangs) for the watch to report it, deletes it and forgets it.
// Any failure fails t.
func WatchCreations(ctx context.Context, t testing.TB, c Cluster, limit time.Duration) *Creations {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	w := &Creations{cancel: cancel}
	vmis, err := c.Virt.KubevirtV1().VirtualMachineInstances(c.Namespace).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		t.Fatalf("watch VMIs in %s: %v", c.Namespace, err)
	}
	w.watch(ctx, "VirtualMachineInstance", vmis)
	secrets, err := c.Kube.CoreV1().Secrets(c.Namespace).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		w.Stop()
		t.Fatalf("watch Secrets in %s: %v", c.Namespace, err)
	}
	w.watch(ctx, "Secret", secrets)

	canary := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: canaryName}}
	if _, err := c.Kube.CoreV1().Secrets(c.Namespace).Create(ctx, canary, metav1.CreateOptions{}); err != nil {
		w.Stop()
		t.Fatalf("create the canary Secret: %v", err)
	}
	for deadline := time.Now().Add(limit); !slices.Contains(w.Created(), "Secret/"+canaryName); {
		if ctx.Err() != nil || time.Now().After(deadline) {
			w.Stop()
			t.Fatal("the Secret watch did not report the canary Secret")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Kube.CoreV1().Secrets(c.Namespace).Delete(ctx, canaryName, metav1.DeleteOptions{}); err != nil {
		w.Stop()
		t.Fatalf("delete the canary Secret: %v", err)
	}
	w.mu.Lock()
	w.created = nil
	w.mu.Unlock()
	return w
}

func (w *Creations) watch(ctx context.Context, kind string, wi watch.Interface) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer wi.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-wi.ResultChan():
				if !ok {
					return
				}
				if ev.Type != watch.Added {
					continue
				}
				name := "(no metadata)"
				if m, ok := ev.Object.(metav1.Object); ok {
					name = m.GetName()
				}
				w.mu.Lock()
				w.created = append(w.created, kind+"/"+name)
				w.mu.Unlock()
			}
		}
	}()
}

// Created returns what was created so far.
func (w *Creations) Created() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.created)
}

// Stop ends the watches, waits for them and returns what was created.
func (w *Creations) Stop() []string {
	w.cancel()
	w.wg.Wait()
	return w.Created()
}
