package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
)

// Defaults and limits of GCOptions.
const (
	// DefaultGCPageSize is how many objects one List call returns.
	DefaultGCPageSize = 500
	// MaxGCPageSize bounds PageSize (the API server caps pages anyway).
	MaxGCPageSize = 10000
	// DefaultOrphanGrace protects a Secret whose VMI does not exist yet:
	// prepare creates the Secret a moment before the VMI.
	DefaultOrphanGrace = 10 * time.Minute
	// DefaultGCWorkers is how many deletions gc keeps in flight. The
	// API server handles them in parallel; more than a few dozen only
	// queue there.
	DefaultGCWorkers = 32
	// MaxGCWorkers bounds Workers.
	MaxGCWorkers = 256
	// DefaultGCQPS and DefaultGCBurst are gc's client-side rate limit
	// (the stages use DefaultQPS). 10,000 deletions in 15 s need about
	// 700 requests/s, so the limit sits above that and rarely engages:
	// what keeps gc polite is that at most Workers requests are in
	// flight, so a slow API server slows gc down (and API Priority and
	// Fairness queues it behind more important traffic).
	DefaultGCQPS   = 1000
	DefaultGCBurst = 2000
	// maxGCErrors is how many deletion errors GC returns in full; the
	// report still lists every failed item.
	maxGCErrors = 10
)

// Resources gc lists through the metadata client.
var (
	vmiResource    = kubevirtv1.SchemeGroupVersion.WithResource("virtualmachineinstances")
	secretResource = corev1.SchemeGroupVersion.WithResource("secrets")
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
	// PageSize is the List page size (default DefaultGCPageSize, at most
	// MaxGCPageSize).
	PageSize int64
	// OrphanGrace is how old a Secret without an ownerReference and
	// without its VMI must be before it counts as orphaned (default
	// DefaultOrphanGrace). A Secret whose ownerReference names a VMI that
	// no longer exists is orphaned at once.
	OrphanGrace time.Duration
	// Workers is how many jobs' objects are deleted (or, for orphans,
	// checked) at the same time (default DefaultGCWorkers, at most
	// MaxGCWorkers).
	Workers int
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
	ScannedVMIs    int `json:"scannedVMIs"`
	ScannedSecrets int `json:"scannedSecrets"`
	// Items are sorted by namespace, then name (a VMI comes right before
	// its Secret).
	Items []GCItem `json:"items"`
}

// ourSelector selects the objects this executor creates, and only those.
func ourSelector() string {
	managed, _ := labels.NewRequirement(naming.LabelManagedBy, selection.Equals, []string{naming.AppName})
	id, _ := labels.NewRequirement(naming.LabelID, selection.Exists, nil)
	return labels.NewSelector().Add(*managed, *id).String()
}

// gcSecret is what gc remembers of one of our Secrets between the list
// and the decision.
type gcSecret struct {
	name    string
	uid     types.UID
	owned   bool // has an ownerReference to its VMI
	created time.Time
}

// gcWork is one unit for the delete workers: an expired VMI with its
// Secrets, or (vmi nil) the Secrets of a VMI that was not listed.
type gcWork struct {
	key     types.NamespacedName // the job's VMI
	vmi     *metav1.PartialObjectMetadata
	reason  string
	secrets []gcSecret
}

// GC deletes expired VMIs (expires label in the past, or older than
// MaxAge) together with their Secrets, and Secrets whose VMI no longer
// exists. It only ever looks at objects carrying our labels.
//
// It first lists our Secrets, then our VMIs, as metadata only and in
// pages of PageSize, so memory grows with the number of jobs (a few
// hundred bytes each), never with their specs. Deletions run on Workers
// goroutines through the client's rate limit: each expired VMI is deleted
// (UID precondition, background propagation) and then its Secrets (UID
// precondition), so gc never depends on the cluster's garbage collector
// and an interrupted run leaves whole jobs behind, which the next run
// deletes. A Secret whose VMI was not listed is confirmed orphaned with a
// GET of the VMI before it goes (the VMI may have been created after the
// list). NotFound counts as deleted. Deletion failures are reported per
// item and the first few joined into the returned error; Forbidden or
// Unauthorized stops the run, since every further request would fail
// the same way.
func (c *Clients) GC(ctx context.Context, opts GCOptions) (*GCReport, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	ns := c.Namespace
	if opts.AllNamespaces {
		ns = metav1.NamespaceAll
	}
	rep := &GCReport{DryRun: opts.DryRun, Items: []GCItem{}}

	// 1. Our Secrets, by the VMI they belong to.
	bySecretOwner := map[types.NamespacedName][]gcSecret{}
	err := c.listMeta(ctx, secretResource, ns, opts.PageSize, func(m *metav1.PartialObjectMetadata) {
		vmiName := m.Labels[naming.LabelID]
		if !ours(m.Labels, vmiName) {
			return
		}
		rep.ScannedSecrets++
		s := gcSecret{name: m.Name, uid: m.UID, created: m.CreationTimestamp.Time}
		for _, ref := range m.OwnerReferences {
			if ref.Kind == "VirtualMachineInstance" && ref.Name == vmiName {
				s.owned = true
			}
		}
		key := types.NamespacedName{Namespace: m.Namespace, Name: vmiName}
		bySecretOwner[key] = append(bySecretOwner[key], s)
	})
	if err != nil {
		return rep, err
	}

	// 2. Our VMIs: the expired ones go to the workers with their Secrets,
	// the others keep theirs. Deleting starts with the first page.
	p := c.startGCPool(ctx, opts)
	err = c.listMeta(p.ctx, vmiResource, ns, opts.PageSize, func(m *metav1.PartialObjectMetadata) {
		if !ours(m.Labels, m.Name) {
			return
		}
		rep.ScannedVMIs++
		key := types.NamespacedName{Namespace: m.Namespace, Name: m.Name}
		secrets := bySecretOwner[key]
		delete(bySecretOwner, key)
		if reason := expiry(m, opts); reason != "" {
			p.submit(gcWork{key: key, vmi: m, reason: reason, secrets: secrets})
		}
	})
	// 3. Secrets whose VMI was not listed: maybe orphans.
	if err == nil {
		for key, secrets := range bySecretOwner {
			p.submit(gcWork{key: key, secrets: secrets})
		}
	}
	items, errs := p.wait()
	if errors.Is(err, context.Canceled) && ctx.Err() == nil {
		err = nil // the pool stopped the list; its errors say why
	}
	slices.SortStableFunc(items, func(a, b GCItem) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	rep.Items = append(rep.Items, items...)
	if err == nil {
		err = ctx.Err() // interrupted: whatever is left waits for the next run
	}
	return rep, errors.Join(append([]error{err}, errs...)...)
}

// setDefaults fills in zero options and checks the others.
func (o *GCOptions) setDefaults() error {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	switch {
	case o.PageSize == 0:
		o.PageSize = DefaultGCPageSize
	case o.PageSize < 0 || o.PageSize > MaxGCPageSize:
		return fmt.Errorf("gc page size %d: must be between 1 and %d", o.PageSize, MaxGCPageSize)
	}
	if o.OrphanGrace <= 0 {
		o.OrphanGrace = DefaultOrphanGrace
	}
	switch {
	case o.Workers == 0:
		o.Workers = DefaultGCWorkers
	case o.Workers < 0 || o.Workers > MaxGCWorkers:
		return fmt.Errorf("gc workers %d: must be between 1 and %d", o.Workers, MaxGCWorkers)
	}
	if o.MaxAge < 0 {
		return fmt.Errorf("gc max age %s: must not be negative", o.MaxAge)
	}
	return nil
}

// listMeta lists the objects of res in ns carrying our labels, as
// metadata only, page by page, and calls each for every one.
func (c *Clients) listMeta(ctx context.Context, res schema.GroupVersionResource, ns string, pageSize int64, each func(*metav1.PartialObjectMetadata)) error {
	list := metav1.ListOptions{LabelSelector: ourSelector(), Limit: pageSize}
	for {
		page, err := c.Meta.Resource(res).Namespace(ns).List(ctx, list)
		if err != nil {
			return fmt.Errorf("list %s in %q: %w", res.Resource, ns, err)
		}
		for i := range page.Items {
			each(&page.Items[i])
		}
		if list.Continue = page.Continue; list.Continue == "" {
			return nil
		}
	}
}

// expiry says why a VMI is due for deletion, or "" if it is not.
func expiry(vmi *metav1.PartialObjectMetadata, opts GCOptions) string {
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

// gcPool runs gcWork on opts.Workers goroutines and collects the outcome.
type gcPool struct {
	c      *Clients
	opts   GCOptions
	ctx    context.Context
	cancel context.CancelFunc
	work   chan gcWork
	wg     sync.WaitGroup

	mu     sync.Mutex
	items  []GCItem
	errs   []error
	failed int
}

func (c *Clients) startGCPool(ctx context.Context, opts GCOptions) *gcPool {
	p := &gcPool{c: c, opts: opts, work: make(chan gcWork, opts.Workers)}
	p.ctx, p.cancel = context.WithCancel(ctx)
	for range opts.Workers {
		p.wg.Go(func() {
			for w := range p.work {
				if p.ctx.Err() == nil {
					p.do(w)
				}
			}
		})
	}
	return p
}

// submit queues w unless the pool was stopped.
func (p *gcPool) submit(w gcWork) {
	select {
	case p.work <- w:
	case <-p.ctx.Done():
	}
}

// wait lets the workers finish and returns what they did.
func (p *gcPool) wait() ([]GCItem, []error) {
	close(p.work)
	p.wg.Wait()
	p.cancel()
	errs := p.errs
	if p.failed > len(errs) {
		errs = append(errs, fmt.Errorf("and %d more failed deletions (see the report)", p.failed-len(errs)))
	}
	return p.items, errs
}

// do handles one job's objects.
func (p *gcPool) do(w gcWork) {
	if w.vmi != nil {
		err := p.c.gcDeleteVMI(p.ctx, w.vmi, p.opts.DryRun)
		if !p.record(GCItem{Kind: "VirtualMachineInstance", Namespace: w.key.Namespace, Name: w.key.Name, Reason: w.reason}, err) {
			return // its Secrets stay until the VMI is gone
		}
	}
	for _, s := range w.secrets {
		reason := "its VMI " + w.key.Name + " expired"
		if w.vmi == nil {
			var err error
			if reason, err = p.c.orphanReason(p.ctx, w.key, s, p.opts); err != nil {
				p.fail(err)
				continue
			}
			if reason == "" {
				continue
			}
		}
		err := p.c.gcDeleteSecret(p.ctx, types.NamespacedName{Namespace: w.key.Namespace, Name: s.name}, s.uid, p.opts.DryRun)
		p.record(GCItem{Kind: "Secret", Namespace: w.key.Namespace, Name: s.name, Reason: reason}, err)
	}
}

// record adds a deleted (or failed) object to the report and says whether
// it is gone (NotFound counts as gone).
func (p *gcPool) record(item GCItem, err error) bool {
	if err != nil && apierrors.IsNotFound(err) {
		err = nil
	}
	if err != nil {
		item.Error = err.Error()
	}
	p.mu.Lock()
	p.items = append(p.items, item)
	p.mu.Unlock()
	if err != nil {
		p.fail(fmt.Errorf("delete %s %s/%s: %w", item.Kind, item.Namespace, item.Name, err))
	}
	return err == nil
}

// fail remembers err; Forbidden and Unauthorized stop the pool.
func (p *gcPool) fail(err error) {
	if p.ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return // interrupted: GC returns the context's error once
	}
	p.mu.Lock()
	p.failed++
	if len(p.errs) < maxGCErrors {
		p.errs = append(p.errs, err)
	}
	p.mu.Unlock()
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		p.cancel()
	}
}

// orphanReason decides whether Secret s of job VMI key, which was not
// among the VMIs listed, is orphaned; a GET of the VMI confirms it (it may
// have been created after the list).
func (c *Clients) orphanReason(ctx context.Context, key types.NamespacedName, s gcSecret, opts GCOptions) (string, error) {
	if !s.owned && opts.Now.Sub(s.created) < opts.OrphanGrace {
		return "", nil // prepare may be about to create the VMI
	}
	_, err := c.Meta.Resource(vmiResource).Namespace(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
	switch {
	case err == nil:
		return "", nil
	case !apierrors.IsNotFound(err):
		return "", fmt.Errorf("check vmi %s of secret %s: %w", key, s.name, err)
	case s.owned:
		return "its VMI " + key.Name + " no longer exists", nil
	default:
		return fmt.Sprintf("its VMI %s was never created (secret older than %s)", key.Name, opts.OrphanGrace), nil
	}
}

func (c *Clients) gcDeleteVMI(ctx context.Context, vmi *metav1.PartialObjectMetadata, dryRun bool) error {
	if dryRun {
		return nil
	}
	return c.Virt.KubevirtV1().VirtualMachineInstances(vmi.Namespace).Delete(ctx, vmi.Name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &vmi.UID},
		PropagationPolicy: ptrTo(metav1.DeletePropagationBackground),
	})
}

func (c *Clients) gcDeleteSecret(ctx context.Context, key types.NamespacedName, uid types.UID, dryRun bool) error {
	if dryRun {
		return nil
	}
	return c.Kube.CoreV1().Secrets(key.Namespace).Delete(ctx, key.Name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &uid},
		PropagationPolicy: ptrTo(metav1.DeletePropagationBackground),
	})
}
