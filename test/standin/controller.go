package standin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubevirt"
	typedv1 "kubevirt.io/client-go/kubevirt/typed/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

// Defaults for zero-valued Options fields.
const (
	DefaultNodeName = "standin-node-1"
	DefaultSSHPort  = 22
	// Finalizer is the finalizer the stand-in puts on the VMIs it drives,
	// KubeVirt's own: a deleted VMI stays until its guest is gone.
	Finalizer = kubevirtv1.VirtualMachineInstanceFinalizer
	// NodeNameLabel is the label KubeVirt puts on a scheduled VMI.
	NodeNameLabel = kubevirtv1.NodeNameLabel

	defaultStartTimeout = 30 * time.Second
	teardownTimeout     = 30 * time.Second
)

// Options configure [Start].
type Options struct {
	// Config reaches the API server with rights to get, list, watch and
	// update VMIs and get Secrets in Namespace (e.g. kubeenv's admin).
	Config *rest.Config
	// Namespace is the namespace whose VMIs the stand-in drives.
	Namespace string
	// Behaviour chooses each new VMI's behaviour; nil means [Normal] for
	// every VMI.
	Behaviour BehaviourFunc
	// NodeName is reported as status.nodeName (default DefaultNodeName).
	NodeName string
	// SSHPort is the port sshd listens on at each VMI's address (default
	// DefaultSSHPort, 22; binding it needs root or CAP_NET_BIND_SERVICE).
	SSHPort int
	// SSHLogLevel is every sshd's LogLevel (default sshd.DefaultLogLevel).
	SSHLogLevel string
	// StartTimeout bounds the initial list of VMIs (default 30s).
	StartTimeout time.Duration
	// Logf receives the stand-in's log lines (default: discarded). It is
	// called from several goroutines.
	Logf func(format string, args ...any)
	// OnEvent, when set, is called for every step a VMI takes, from the
	// goroutine driving that VMI; it must return quickly.
	OnEvent func(Event)
	// Mode is ModeSSHD (default: a host sshd per VMI) or ModeQEMU (a real
	// guest per VMI, configured by QEMU; see qemu.go).
	Mode Mode
	// QEMU configures ModeQEMU.
	QEMU QEMUOptions
	// Accounts are throwaway guest accounts (see [CreateAccount]) the
	// stand-in may reset in ModeSSHD: when the last running guest logged
	// in as one of them powers off, [Account.Reset] kills all its
	// processes and empties its home and its files in /tmp, so the next
	// VMI starts as fresh as a new VM. Other logins are never reset.
	Accounts []*Account
}

// EventType names a step of a VMI's life in the stand-in.
type EventType string

// The steps reported to [Options.OnEvent], in the order they happen.
const (
	EventSeen          EventType = "seen"          // a new VMI appeared; phase Pending
	EventScheduling    EventType = "scheduling"    // phase Scheduling
	EventUnschedulable EventType = "unschedulable" // PodScheduled=False, Unschedulable
	EventScheduled     EventType = "scheduled"     // phase Scheduled, nodeName set
	EventFailed        EventType = "failed"        // phase Failed
	EventSSHReady      EventType = "sshd-ready"    // sshd listens on the VMI's address
	EventRunning       EventType = "running"       // phase Running
	EventStopped       EventType = "stopped"       // sshd stopped, address released, finalizer removed
)

// Event is one step of one VMI.
type Event struct {
	Time   time.Time
	VMI    string
	UID    types.UID
	Type   EventType
	Detail string
}

// Controller is a running stand-in. Its methods are safe for concurrent use.
type Controller struct {
	opts   Options
	vmis   typedv1.VirtualMachineInstanceInterface
	kube   kubernetes.Interface
	pool   *ipPool
	osInfo kubevirtv1.VirtualMachineInstanceGuestOSInfo

	cancelInformer context.CancelFunc
	informerDone   chan struct{}

	wg sync.WaitGroup // guest goroutines and finalizer removals
	// accountMu orders guests logging in as an account against that
	// account's reset; guests[*].user is written under it.
	accountMu sync.Mutex
	mu        sync.Mutex
	guests    map[types.UID]*guest
	byName    map[string]*guest
	// qemu is ModeQEMU's shared state (the detected accelerator).
	qemu qemuBackend
	// changed is closed and replaced whenever a guest's state changes.
	changed  chan struct{}
	stopping bool
	stopped  bool
	errs     []error
}

// validate checks opts and fills in defaults; errors name the option, the
// value and the rule.
func (opts *Options) validate() error {
	if opts.Config == nil {
		return errors.New("option Config: must be set (a rest.Config that may update VMIs and read Secrets)")
	}
	if errs := validation.IsDNS1123Label(opts.Namespace); len(errs) > 0 {
		return fmt.Errorf("option Namespace %q: must be a namespace name (%s)", opts.Namespace, errs[0])
	}
	if opts.NodeName == "" {
		opts.NodeName = DefaultNodeName
	}
	if errs := validation.IsDNS1123Subdomain(opts.NodeName); len(errs) > 0 {
		return fmt.Errorf("option NodeName %q: must be a node name (%s)", opts.NodeName, errs[0])
	}
	if opts.SSHPort == 0 {
		opts.SSHPort = DefaultSSHPort
	}
	if opts.SSHPort < 1 || opts.SSHPort > 65535 {
		return fmt.Errorf("option SSHPort %d: must be a TCP port in 1..65535", opts.SSHPort)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = defaultStartTimeout
	}
	if opts.StartTimeout < 0 {
		return fmt.Errorf("option StartTimeout %s: must not be negative", opts.StartTimeout)
	}
	if opts.Behaviour == nil {
		opts.Behaviour = func(*kubevirtv1.VirtualMachineInstance) Behaviour { return Normal() }
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return opts.validateMode()
}

// Start lists the namespace's VMIs, then watches them and drives every new
// one until [Controller.Stop]. VMIs that already have a phase when the
// stand-in first sees them are left alone (something else drives them),
// except that a leftover finalizer of an earlier stand-in is removed from a
// VMI being deleted. ctx bounds the start only.
func Start(ctx context.Context, opts Options) (*Controller, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("start stand-in: %w", err)
	}
	cfg := rest.CopyConfig(opts.Config)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "vmi-standin"
	}
	virt, err := kubevirt.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("start stand-in: kubevirt client for %s: %w", cfg.Host, err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("start stand-in: kubernetes client for %s: %w", cfg.Host, err)
	}
	c := &Controller{
		opts:         opts,
		vmis:         virt.KubevirtV1().VirtualMachineInstances(opts.Namespace),
		kube:         kube,
		pool:         newIPPool(opts.SSHPort),
		osInfo:       hostOSInfo(),
		guests:       map[types.UID]*guest{},
		byName:       map[string]*guest{},
		changed:      make(chan struct{}),
		informerDone: make(chan struct{}),
	}

	logger := funcr.New(func(prefix, args string) { opts.Logf("stand-in informer: %s %s", prefix, args) }, funcr.Options{})
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		Logger: &logger,
		ListerWatcher: &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return c.vmis.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return c.vmis.Watch(ctx, o)
			},
		},
		ObjectType: &kubevirtv1.VirtualMachineInstance{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.observe(obj) },
			UpdateFunc: func(_, obj any) { c.observe(obj) },
			DeleteFunc: func(obj any) { c.forget(obj) },
		},
	})
	ictx, cancel := context.WithCancel(logr.NewContext(context.Background(), logger))
	c.cancelInformer = cancel
	go func() {
		defer close(c.informerDone)
		informer.RunWithContext(ictx)
	}()

	sctx, scancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer scancel()
	if !cache.WaitForCacheSync(sctx.Done(), informer.HasSynced) {
		err := fmt.Errorf("start stand-in: list VMIs in namespace %s: not synced within %s: %w", opts.Namespace, opts.StartTimeout, context.Cause(sctx))
		return nil, errors.Join(err, c.Stop())
	}
	opts.Logf("stand-in: watching VMIs in namespace %s (node %s, sshd port %d)", opts.Namespace, opts.NodeName, opts.SSHPort)
	return c, nil
}

// observe handles an added or updated VMI.
func (c *Controller) observe(obj any) {
	vmi, ok := obj.(*kubevirtv1.VirtualMachineInstance)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return
	}
	g := c.guests[vmi.UID]
	if vmi.DeletionTimestamp != nil {
		switch {
		case g != nil:
			g.cancel()
		case hasFinalizer(vmi):
			// A leftover of an earlier stand-in: nobody else removes it.
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
				defer cancel()
				if err := c.removeFinalizer(ctx, vmi.Name, vmi.UID); err != nil {
					c.opts.Logf("stand-in: vmi %s: remove leftover finalizer: %v", vmi.Name, err)
				}
			}()
		}
		return
	}
	if g != nil {
		return
	}
	if vmi.Status.Phase != "" {
		return // not new: something else drives it
	}
	b := c.opts.Behaviour(vmi.DeepCopy())
	g = newGuest(vmi, b)
	c.guests[vmi.UID] = g
	c.byName[vmi.Name] = g
	c.wg.Add(1)
	go c.run(g)
}

// forget handles a deleted VMI.
func (c *Controller) forget(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	vmi, ok := obj.(*kubevirtv1.VirtualMachineInstance)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.guests[vmi.UID]; g != nil {
		g.cancel()
	}
}

// notifyLocked wakes everyone waiting for a change. c.mu must be held.
func (c *Controller) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// SSHD returns the sshd of the VMI called name, once it listens.
func (c *Controller) SSHD(name string) (*sshd.Server, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sshdLocked(name)
}

func (c *Controller) sshdLocked(name string) (*sshd.Server, error) {
	g := c.byName[name]
	if g == nil {
		return nil, fmt.Errorf("stand-in: no VMI %s/%s is being driven", c.opts.Namespace, name)
	}
	if g.server == nil {
		return nil, fmt.Errorf("stand-in: vmi %s/%s has no sshd (yet)", c.opts.Namespace, name)
	}
	return g.server, nil
}

// WaitSSHD waits until the VMI called name has an sshd and returns it.
func (c *Controller) WaitSSHD(ctx context.Context, name string) (*sshd.Server, error) {
	for {
		c.mu.Lock()
		s, err := c.sshdLocked(name)
		changed := c.changed
		c.mu.Unlock()
		if err == nil {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the sshd of vmi %s: %w (last: %v)", name, ctx.Err(), err)
		case <-changed:
		}
	}
}

// IP returns the loopback address given to the VMI called name.
func (c *Controller) IP(name string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.byName[name]
	if g == nil || !g.ip.IsValid() {
		return "", false
	}
	return g.ip.String(), true
}

// Active returns the names of the VMIs the stand-in currently drives
// (including those being torn down), sorted.
func (c *Controller) Active() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// WaitIdle waits until the stand-in drives no VMI: every deleted VMI's
// sshd is stopped and its finalizer removed.
func (c *Controller) WaitIdle(ctx context.Context) error {
	for {
		c.mu.Lock()
		n := len(c.guests)
		changed := c.changed
		c.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the stand-in to be idle: %w (still driving %v)", ctx.Err(), c.Active())
		case <-changed:
		}
	}
}

// AddressesInUse returns how many loopback addresses are reserved.
func (c *Controller) AddressesInUse() int { return c.pool.used() }

// Stop stops watching, stops every sshd (and the processes of its
// sessions), releases the addresses and removes the stand-in's finalizer
// from the VMIs it drove, so they can still be deleted. The VMIs
// themselves stay. Stop is idempotent; it returns what went wrong during
// the stand-in's life (failed teardowns).
func (c *Controller) Stop() error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopping, c.stopped = true, true
	for _, g := range c.guests {
		g.cancel()
	}
	c.mu.Unlock()

	c.cancelInformer()
	<-c.informerDone
	c.wg.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	return errors.Join(c.errs...)
}

func (c *Controller) recordErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, err)
}

func (c *Controller) emit(g *guest, t EventType, format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	c.opts.Logf("stand-in: vmi %s: %s %s", g.name, t, detail)
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(Event{Time: time.Now(), VMI: g.name, UID: g.uid, Type: t, Detail: detail})
	}
}
