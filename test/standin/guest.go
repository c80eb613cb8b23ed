package standin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/qemu"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

// Secret keys KubeVirt reads first-boot data from (it accepts both
// spellings).
var (
	userDataKeys = []string{"userdata", "userData"}
)

const (
	// sshdStartAttempts bounds the addresses tried when another process
	// takes the port between the trial bind and sshd's own bind.
	sshdStartAttempts = 5
	// secretWait is how long a missing first-boot Secret is waited for
	// before the VMI fails (KubeVirt keeps such a VMI pending).
	secretWait = 10 * time.Second
)

// guest is one VMI being driven, and its "VM": an address and an sshd.
type guest struct {
	name      string
	uid       types.UID
	behaviour Behaviour
	ctx       context.Context
	cancel    context.CancelFunc

	// Written by the guest's goroutine, read under Controller.mu.
	ip     netip.Addr
	server *sshd.Server
	vm     *qemu.VM // ModeQEMU's guest
	// user is the login of a booted guest, under Controller.accountMu.
	user string
}

func newGuest(vmi *kubevirtv1.VirtualMachineInstance, b Behaviour) *guest {
	ctx, cancel := context.WithCancel(context.Background())
	return &guest{name: vmi.Name, uid: vmi.UID, behaviour: b, ctx: ctx, cancel: cancel}
}

// errGone means the VMI was deleted or replaced by another of the same
// name while the stand-in drove it.
var errGone = errors.New("the vmi is gone")

// run drives g until its VMI is deleted or the stand-in stops, then tears
// the guest down.
func (c *Controller) run(g *guest) {
	defer c.wg.Done()
	defer c.teardown(g)
	if err := c.drive(g); err != nil && g.ctx.Err() == nil && !errors.Is(err, errGone) {
		c.opts.Logf("stand-in: vmi %s: %v", g.name, err)
		c.recordErr(fmt.Errorf("vmi %s: %w", g.name, err))
	}
	<-g.ctx.Done()
}

// drive walks the VMI through its phases according to its behaviour.
func (c *Controller) drive(g *guest) error {
	ctx, b := g.ctx, g.behaviour
	if err := b.validate(); err != nil {
		return c.fail(g, "stand-in: "+err.Error())
	}

	err := c.update(ctx, g, func(v *kubevirtv1.VirtualMachineInstance) {
		if !hasFinalizer(v) {
			v.Finalizers = append(v.Finalizers, Finalizer)
		}
		setPhase(v, kubevirtv1.Pending)
	})
	if err != nil {
		return err
	}
	c.emit(g, EventSeen, "behaviour %s", b)

	if b.UnschedulableMessage != "" {
		err := c.update(ctx, g, func(v *kubevirtv1.VirtualMachineInstance) {
			setPhase(v, kubevirtv1.Scheduling)
			setCondition(v, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled), corev1.ConditionFalse,
				corev1.PodReasonUnschedulable, b.UnschedulableMessage)
		})
		if err == nil {
			c.emit(g, EventUnschedulable, "%s", b.UnschedulableMessage)
			c.record(g, "virt-controller", corev1.EventTypeWarning, ReasonFailedScheduling, b.UnschedulableMessage)
		}
		return err
	}

	if err := c.update(ctx, g, func(v *kubevirtv1.VirtualMachineInstance) { setPhase(v, kubevirtv1.Scheduling) }); err != nil {
		return err
	}
	c.emit(g, EventScheduling, "")
	err = c.update(ctx, g, func(v *kubevirtv1.VirtualMachineInstance) {
		setPhase(v, kubevirtv1.Scheduled)
		v.Status.NodeName = c.opts.NodeName
		if v.Labels == nil {
			v.Labels = map[string]string{}
		}
		v.Labels[NodeNameLabel] = c.opts.NodeName
		setCondition(v, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled), corev1.ConditionTrue, "", "")
	})
	if err != nil {
		return err
	}
	c.emit(g, EventScheduled, "on node %s", c.opts.NodeName)
	c.record(g, "virt-controller", corev1.EventTypeNormal, ReasonSuccessfulCreate, "Created virtual machine pod virt-launcher-"+g.name)

	if b.FailReason != "" {
		return c.fail(g, b.FailReason)
	}
	if c.opts.Mode == ModeQEMU {
		return c.driveQEMU(g)
	}

	// The guest boots: cloud-init reads the first-boot data.
	gc, err := c.firstBoot(ctx, g)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return c.fail(g, "guest first boot failed: "+err.Error())
	}
	c.accountMu.Lock()
	g.user = gc.User
	c.accountMu.Unlock()
	if !sleep(ctx, b.RunningDelay) {
		return nil
	}

	if b.NoIP {
		err := c.update(ctx, g, func(v *kubevirtv1.VirtualMachineInstance) {
			setPhase(v, kubevirtv1.Running)
			v.Status.Interfaces = []kubevirtv1.VirtualMachineInstanceNetworkInterface{{Name: interfaceName(v)}}
			setCondition(v, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionTrue, "", "")
		})
		if err == nil {
			c.emit(g, EventRunning, "without an IP address")
			c.record(g, "virt-handler", corev1.EventTypeNormal, ReasonStarted, "VirtualMachineInstance started.")
		}
		return err
	}

	ip, err := c.pool.get()
	if err != nil {
		return c.fail(g, "stand-in: "+err.Error())
	}
	c.mu.Lock()
	g.ip = ip
	c.notifyLocked()
	c.mu.Unlock()

	if b.SSHDelay == 0 {
		if err := c.startSSHD(g, gc); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return c.fail(g, "guest sshd did not start: "+err.Error())
		}
	}
	err = c.update(ctx, g, func(v *kubevirtv1.VirtualMachineInstance) {
		setPhase(v, kubevirtv1.Running)
		ipStr := g.ip.String()
		v.Status.Interfaces = []kubevirtv1.VirtualMachineInstanceNetworkInterface{{
			Name:          interfaceName(v),
			IP:            ipStr,
			IPs:           []string{ipStr},
			MAC:           macFor(g.ip),
			InterfaceName: "eth0",
			InfoSource:    "domain, guest-agent",
		}}
		v.Status.GuestOSInfo = c.osInfo
		setCondition(v, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionTrue, "", "")
	})
	if err != nil {
		return err
	}
	c.emit(g, EventRunning, "with IP %s", g.ip)
	c.record(g, "virt-handler", corev1.EventTypeNormal, ReasonStarted, "VirtualMachineInstance started.")

	if b.SSHDelay > 0 {
		if !sleep(ctx, b.SSHDelay) {
			return nil
		}
		if err := c.startSSHD(g, gc); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A guest whose sshd never comes up stays Running; the
			// executor's wait for the transport times out.
			return fmt.Errorf("start sshd after %s: %w", b.SSHDelay, err)
		}
	}
	return nil
}

// firstBoot reads and applies the VMI's first-boot data as cloud-init
// would: the user must exist, the keys must parse.
func (c *Controller) firstBoot(ctx context.Context, g *guest) (guestConfig, error) {
	vmi, err := c.vmis.Get(ctx, g.name, metav1.GetOptions{})
	if err != nil {
		return guestConfig{}, fmt.Errorf("get vmi: %w", err)
	}
	data, err := c.userData(ctx, vmi)
	if err != nil {
		return guestConfig{}, err
	}
	gc, err := parseUserData(data)
	if err != nil {
		return guestConfig{}, err
	}
	if _, err := user.Lookup(gc.User); err != nil {
		return guestConfig{}, fmt.Errorf("user-data: users[0].name %q: the stand-in runs sshd on this host, where no such account exists: "+
			"run prepare with --ssh-user set to an existing user (tests use the current user, root in CI)", gc.User)
	}
	return gc, nil
}

// userData finds the cloud-init volume and returns its user data, from
// the referenced Secret or inline.
func (c *Controller) userData(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) ([]byte, error) {
	for _, vol := range vmi.Spec.Volumes {
		var (
			ref              *corev1.LocalObjectReference
			inline, inline64 string
			kind             string
		)
		switch {
		case vol.CloudInitNoCloud != nil:
			s := vol.CloudInitNoCloud
			ref, inline, inline64, kind = s.UserDataSecretRef, s.UserData, s.UserDataBase64, "cloudInitNoCloud"
		case vol.CloudInitConfigDrive != nil:
			s := vol.CloudInitConfigDrive
			ref, inline, inline64, kind = s.UserDataSecretRef, s.UserData, s.UserDataBase64, "cloudInitConfigDrive"
		default:
			continue
		}
		switch {
		case ref != nil:
			return c.secretUserData(ctx, ref.Name, vol.Name, kind)
		case inline != "":
			return []byte(inline), nil
		case inline64 != "":
			return nil, fmt.Errorf("volume %s: %s.userDataBase64 is not supported by the stand-in", vol.Name, kind)
		default:
			return nil, fmt.Errorf("volume %s: %s has no user data", vol.Name, kind)
		}
	}
	return nil, errors.New("spec.volumes: no cloudInitNoCloud or cloudInitConfigDrive volume (a guest without first-boot data cannot be reached)")
}

// secretUserData reads the user data key of Secret name, waiting a little
// for a Secret that does not exist yet.
func (c *Controller) secretUserData(ctx context.Context, name, volume, kind string) ([]byte, error) {
	deadline := time.Now().Add(secretWait)
	for {
		s, err := c.kube.CoreV1().Secrets(c.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, k := range userDataKeys {
				if v, ok := s.Data[k]; ok && len(v) > 0 {
					return v, nil
				}
			}
			return nil, fmt.Errorf("volume %s: %s.userDataSecretRef %s: the Secret has no key %s", volume, kind, name, strings.Join(userDataKeys, " or "))
		}
		if !apierrors.IsNotFound(err) && !retriable(err) {
			return nil, fmt.Errorf("volume %s: %s.userDataSecretRef %s: %w", volume, kind, name, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("volume %s: %s.userDataSecretRef %s: %w", volume, kind, name, err)
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

// startSSHD starts the guest's sshd on its address, moving to another
// address if the port is taken there.
func (c *Controller) startSSHD(g *guest, gc guestConfig) error {
	var lastErr error
	for attempt := 0; attempt < sshdStartAttempts; attempt++ {
		srv, err := sshd.Start(g.ctx, sshd.Options{
			ListenAddr:     netip.AddrPortFrom(g.ip, uint16(c.opts.SSHPort)).String(),
			HostKey:        gc.HostKey,
			AuthorizedKeys: gc.AuthorizedKeys,
			User:           gc.User,
			LogLevel:       c.opts.SSHLogLevel,
		})
		if err == nil {
			c.mu.Lock()
			g.server = srv
			c.notifyLocked()
			c.mu.Unlock()
			hostKey := "the host key from ssh_keys.ed25519_private"
			if gc.HostKey == nil {
				hostKey = "a random host key (user-data has no ssh_keys.ed25519_private)"
			} else if gc.HostPublicKey != "" && gc.HostPublicKey != srv.HostPublicKey() {
				hostKey += " (ssh_keys.ed25519_public does not match it; sshd serves the private key's)"
			}
			c.emit(g, EventSSHReady, "sshd on %s for user %s with %s", srv.Addr(), gc.User, hostKey)
			return nil
		}
		lastErr = err
		if g.ctx.Err() != nil || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		// Someone else took the port on this address: keep it reserved
		// (it is not free) and take another.
		ip, perr := c.pool.get()
		if perr != nil {
			return errors.Join(err, perr)
		}
		c.mu.Lock()
		g.ip = ip
		c.notifyLocked()
		c.mu.Unlock()
	}
	return lastErr
}

// fail marks the VMI Failed with reason.
func (c *Controller) fail(g *guest, reason string) error {
	err := c.update(g.ctx, g, func(v *kubevirtv1.VirtualMachineInstance) {
		if !hasFinalizer(v) {
			v.Finalizers = append(v.Finalizers, Finalizer)
		}
		setPhase(v, kubevirtv1.Failed)
		v.Status.Reason = reason
	})
	if err != nil {
		return err
	}
	c.emit(g, EventFailed, "%s", reason)
	c.record(g, "virt-handler", corev1.EventTypeWarning, ReasonFailed, reason)
	return nil
}

// teardown powers the guest off: sshd and its sessions die, the address
// is released, and last the finalizer is removed, so once the deleted VMI
// is gone its guest is gone too.
func (c *Controller) teardown(g *guest) {
	c.mu.Lock()
	srv, ip := g.server, g.ip
	c.mu.Unlock()
	var errs []error
	if srv != nil {
		if err := srv.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop sshd: %w", err))
		}
		// What a session left running in the background is no longer
		// sshd's descendant; a powered-off VM takes it down too.
		addr := ip.String() + " " + strconv.Itoa(c.opts.SSHPort)
		if err := killMatching(func(pid int) bool { return sshSessionOf(pid, addr) }); err != nil {
			errs = append(errs, fmt.Errorf("kill the guest's sessions: %w", err))
		}
	}
	if err := c.stopVM(g); err != nil {
		errs = append(errs, err)
	}
	if ip.IsValid() {
		c.pool.release(ip)
	}
	if err := c.resetAccount(g); err != nil {
		errs = append(errs, err)
	}
	c.mu.Lock()
	g.server, g.ip = nil, netip.Addr{}
	if c.byName[g.name] == g {
		delete(c.byName, g.name)
	}
	c.notifyLocked()
	c.mu.Unlock()
	c.emit(g, EventStopped, "sshd stopped, address released")
	if srv != nil {
		c.record(g, "virt-handler", corev1.EventTypeNormal, ReasonStopped, "The VirtualMachineInstance was shut down.")
	}

	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()
	if err := c.removeFinalizer(ctx, g.name, g.uid); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		c.opts.Logf("stand-in: vmi %s: teardown: %v", g.name, err)
		c.recordErr(fmt.Errorf("vmi %s: teardown: %w", g.name, err))
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.guests, g.uid)
	c.notifyLocked()
}

// resetAccount resets g's login account if it is one of Options.Accounts
// and no other guest logged in as it is still running.
func (c *Controller) resetAccount(g *guest) error {
	c.accountMu.Lock()
	defer c.accountMu.Unlock()
	user := g.user
	g.user = ""
	if user == "" {
		return nil
	}
	var acct *Account
	for _, a := range c.opts.Accounts {
		if a != nil && a.Name == user {
			acct = a
		}
	}
	if acct == nil {
		return nil
	}
	c.mu.Lock()
	for _, other := range c.guests {
		if other != g && other.user == user {
			c.mu.Unlock()
			return nil
		}
	}
	c.mu.Unlock()
	return acct.Reset()
}

// removeFinalizer removes the stand-in's finalizer from VMI name if it is
// still the object with uid.
func (c *Controller) removeFinalizer(ctx context.Context, name string, uid types.UID) error {
	g := &guest{name: name, uid: uid}
	err := c.update(ctx, g, func(v *kubevirtv1.VirtualMachineInstance) {
		v.Finalizers = slices.DeleteFunc(v.Finalizers, func(f string) bool { return f == Finalizer })
	})
	if errors.Is(err, errGone) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove finalizer %s: %w", Finalizer, err)
	}
	return nil
}

// update reads the VMI, applies mutate and writes the whole object back
// (the VMI CRD has no status subresource). Conflicts and transient API
// errors (an API server restart) are retried until ctx ends; a VMI that is
// gone or was replaced by a new one of the same name is errGone.
func (c *Controller) update(ctx context.Context, g *guest, mutate func(*kubevirtv1.VirtualMachineInstance)) error {
	backoff := 50 * time.Millisecond
	for {
		v, err := c.vmis.Get(ctx, g.name, metav1.GetOptions{})
		if err == nil {
			if v.UID != g.uid {
				return errGone
			}
			before := v.DeepCopy()
			mutate(v)
			if equalObjects(before, v) {
				return nil
			}
			_, err = c.vmis.Update(ctx, v, metav1.UpdateOptions{})
			if err == nil {
				return nil
			}
		}
		switch {
		case apierrors.IsNotFound(err):
			return errGone
		case ctx.Err() != nil:
			return ctx.Err()
		case apierrors.IsConflict(err):
			continue
		case !retriable(err):
			return fmt.Errorf("update vmi %s/%s: %w", c.opts.Namespace, g.name, err)
		}
		if !sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// retriable reports whether err is worth retrying: the API server is
// (re)starting, overloaded, or the connection broke.
func retriable(err error) bool {
	if apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) {
		return true
	}
	var status apierrors.APIStatus
	// Anything that is not an API status is a transport error.
	return !errors.As(err, &status)
}

func hasFinalizer(v *kubevirtv1.VirtualMachineInstance) bool {
	return slices.Contains(v.Finalizers, Finalizer)
}

// setPhase sets status.phase and records the transition time.
func setPhase(v *kubevirtv1.VirtualMachineInstance, p kubevirtv1.VirtualMachineInstancePhase) {
	if v.Status.Phase == p {
		return
	}
	v.Status.Phase = p
	v.Status.PhaseTransitionTimestamps = append(v.Status.PhaseTransitionTimestamps,
		kubevirtv1.VirtualMachineInstancePhaseTransitionTimestamp{Phase: p, PhaseTransitionTimestamp: metav1.Now()})
}

// setCondition sets (or replaces) the condition of type t.
func setCondition(v *kubevirtv1.VirtualMachineInstance, t kubevirtv1.VirtualMachineInstanceConditionType, s corev1.ConditionStatus, reason, message string) {
	cond := kubevirtv1.VirtualMachineInstanceCondition{
		Type: t, Status: s, Reason: reason, Message: message, LastTransitionTime: metav1.Now(),
	}
	for i := range v.Status.Conditions {
		if v.Status.Conditions[i].Type == t {
			v.Status.Conditions[i] = cond
			return
		}
	}
	v.Status.Conditions = append(v.Status.Conditions, cond)
}

// interfaceName is the name of the VMI's first interface (KubeVirt reports
// the spec's name), "default" if the spec has none.
func interfaceName(v *kubevirtv1.VirtualMachineInstance) string {
	if ifs := v.Spec.Domain.Devices.Interfaces; len(ifs) > 0 && ifs[0].Name != "" {
		return ifs[0].Name
	}
	return "default"
}

// macFor derives a stable, locally administered MAC from ip.
func macFor(ip netip.Addr) string {
	b := ip.As4()
	return fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// equalObjects reports whether an update would change nothing.
func equalObjects(a, b *kubevirtv1.VirtualMachineInstance) bool {
	return equality.Semantic.DeepEqual(a, b)
}
