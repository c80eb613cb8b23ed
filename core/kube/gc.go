package kube

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
)

// Defaults of GCOptions.
const (
	// DefaultGCPageSize is how many objects one List call returns.
	DefaultGCPageSize = 500
	// DefaultOrphanGrace protects a Secret whose VMI does not exist yet:
	// prepare creates the Secret a moment before the VMI.
	DefaultOrphanGrace = 10 * time.Minute
)

// GCOptions configure [Clients.GC].
type GCOptions struct {
	// AllNamespaces scans every namespace instead of Clients.Namespace
	// (needs cluster-wide list/delete rights).
	AllNamespaces bool
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
	// MaxAge, when positive, also deletes VMIs created longer ago than
	// this, whatever their expires label says.
	MaxAge time.Duration
	// Now is the current time (default time.Now()).
	Now time.Time
	// PageSize is the List page size (default DefaultGCPageSize).
	PageSize int64
	// OrphanGrace is how old a Secret without an ownerReference and
	// without its VMI must be before it counts as orphaned (default
	// DefaultOrphanGrace). A Secret whose ownerReference names a VMI that
	// no longer exists is orphaned at once.
	OrphanGrace time.Duration
}

// GCItem is one object gc deleted (or would delete).
type GCItem struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
	// Error is set when the deletion failed.
	Error string `json:"error,omitempty"`
}

// GCReport is the outcome of one gc run.
type GCReport struct {
	DryRun bool `json:"dryRun"`
	// Scanned counts the objects with our labels that were looked at.
	ScannedVMIs    int      `json:"scannedVMIs"`
	ScannedSecrets int      `json:"scannedSecrets"`
	Items          []GCItem `json:"items"`
}

// ourSelector selects the objects this executor creates, and only those.
func ourSelector() string {
	managed, _ := labels.NewRequirement(naming.LabelManagedBy, selection.Equals, []string{naming.AppName})
	id, _ := labels.NewRequirement(naming.LabelID, selection.Exists, nil)
	return labels.NewSelector().Add(*managed, *id).String()
}

// GC deletes expired VMIs (expires label in the past, or older than
// MaxAge) with their Secrets, and Secrets whose VMI no longer exists. It
// only ever looks at objects carrying our labels, lists in pages of
// PageSize so memory stays flat however many objects exist, and confirms
// each orphan with a GET before deleting it. Deletion failures are
// reported per item and joined into the returned error.
func (c *Clients) GC(ctx context.Context, opts GCOptions) (*GCReport, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultGCPageSize
	}
	if opts.OrphanGrace <= 0 {
		opts.OrphanGrace = DefaultOrphanGrace
	}
	ns := c.Namespace
	if opts.AllNamespaces {
		ns = metav1.NamespaceAll
	}
	rep := &GCReport{DryRun: opts.DryRun, Items: []GCItem{}}
	var errs []error
	record := func(item GCItem, err error) {
		if err != nil && !apierrors.IsNotFound(err) {
			item.Error = err.Error()
			errs = append(errs, fmt.Errorf("delete %s %s/%s: %w", item.Kind, item.Namespace, item.Name, err))
		}
		rep.Items = append(rep.Items, item)
	}

	// Pass 1: VMIs. Remember the names of those that stay.
	alive := map[types.NamespacedName]bool{}
	expired := map[types.NamespacedName]bool{} // VMIs deleted in pass 1
	vmis := c.Virt.KubevirtV1().VirtualMachineInstances(ns)
	list := metav1.ListOptions{LabelSelector: ourSelector(), Limit: opts.PageSize}
	for {
		page, err := vmis.List(ctx, list)
		if err != nil {
			return rep, fmt.Errorf("list vmis in %q: %w", ns, err)
		}
		for i := range page.Items {
			vmi := &page.Items[i]
			if !ours(vmi.Labels, vmi.Name) {
				continue
			}
			rep.ScannedVMIs++
			key := types.NamespacedName{Namespace: vmi.Namespace, Name: vmi.Name}
			reason := expiry(vmi, opts)
			if reason == "" {
				alive[key] = true
				continue
			}
			record(GCItem{Kind: "VirtualMachineInstance", Namespace: vmi.Namespace, Name: vmi.Name, Reason: reason},
				c.gcDeleteVMI(ctx, vmi, opts.DryRun))
			expired[key] = true
		}
		if list.Continue = page.Continue; list.Continue == "" {
			break
		}
	}

	// Pass 2: Secrets of the VMIs deleted above, and Secrets whose VMI is
	// gone.
	secrets := c.Kube.CoreV1().Secrets(ns)
	list = metav1.ListOptions{LabelSelector: ourSelector(), Limit: opts.PageSize}
	for {
		page, err := secrets.List(ctx, list)
		if err != nil {
			return rep, fmt.Errorf("list secrets in %q: %w", ns, err)
		}
		for i := range page.Items {
			s := &page.Items[i]
			vmiName := s.Labels[naming.LabelID]
			if !ours(s.Labels, vmiName) {
				continue
			}
			rep.ScannedSecrets++
			key := types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
			owner := types.NamespacedName{Namespace: s.Namespace, Name: vmiName}
			if alive[owner] {
				continue
			}
			reason := ""
			if expired[owner] {
				reason = "its VMI " + vmiName + " expired"
			} else if reason, err = c.orphanReason(ctx, s, vmiName, opts); err != nil {
				errs = append(errs, err)
				continue
			}
			if reason == "" {
				continue
			}
			record(GCItem{Kind: "Secret", Namespace: s.Namespace, Name: s.Name, Reason: reason},
				c.gcDeleteSecret(ctx, key, &s.UID, opts.DryRun))
		}
		if list.Continue = page.Continue; list.Continue == "" {
			break
		}
	}
	return rep, errors.Join(errs...)
}

// expiry says why a VMI is due for deletion, or "" if it is not.
func expiry(vmi *kubevirtv1.VirtualMachineInstance, opts GCOptions) string {
	if v, ok := vmi.Labels[naming.LabelExpires]; ok {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && opts.Now.Unix() > secs {
			return "expired at " + time.Unix(secs, 0).UTC().Format(time.RFC3339)
		}
	}
	if opts.MaxAge > 0 && opts.Now.Sub(vmi.CreationTimestamp.Time) > opts.MaxAge {
		return fmt.Sprintf("older than --max-age %s (created %s)", opts.MaxAge, vmi.CreationTimestamp.UTC().Format(time.RFC3339))
	}
	return ""
}

// orphanReason decides whether Secret s, whose VMI was not among the live
// ones listed, is orphaned; a GET of the VMI confirms it (it may have been
// created after the list).
func (c *Clients) orphanReason(ctx context.Context, s *corev1.Secret, vmiName string, opts GCOptions) (string, error) {
	var owned bool
	for _, ref := range s.OwnerReferences {
		if ref.Kind == "VirtualMachineInstance" && ref.Name == vmiName {
			owned = true
		}
	}
	if !owned && opts.Now.Sub(s.CreationTimestamp.Time) < opts.OrphanGrace {
		return "", nil // prepare may be about to create the VMI
	}
	_, err := c.Virt.KubevirtV1().VirtualMachineInstances(s.Namespace).Get(ctx, vmiName, metav1.GetOptions{})
	switch {
	case err == nil:
		return "", nil
	case !apierrors.IsNotFound(err):
		return "", fmt.Errorf("check vmi %s/%s of secret %s: %w", s.Namespace, vmiName, s.Name, err)
	case owned:
		return "its VMI " + vmiName + " no longer exists", nil
	default:
		return fmt.Sprintf("its VMI %s was never created (secret older than %s)", vmiName, opts.OrphanGrace), nil
	}
}

func (c *Clients) gcDeleteVMI(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, dryRun bool) error {
	if dryRun {
		return nil
	}
	return c.Virt.KubevirtV1().VirtualMachineInstances(vmi.Namespace).Delete(ctx, vmi.Name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &vmi.UID},
		PropagationPolicy: ptrTo(metav1.DeletePropagationBackground),
	})
}

func (c *Clients) gcDeleteSecret(ctx context.Context, key types.NamespacedName, uid *types.UID, dryRun bool) error {
	if dryRun {
		return nil
	}
	return c.Kube.CoreV1().Secrets(key.Namespace).Delete(ctx, key.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: uid},
	})
}
