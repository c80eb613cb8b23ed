package standin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/microvm"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/qemu"
)

// Mode is how the stand-in serves a VMI.
type Mode string

// The stand-in's modes.
const (
	// ModeSSHD (the default) starts a real OpenSSH sshd on the host for
	// each VMI: fast, no virtualisation; commands run on the host.
	ModeSSHD Mode = "sshd"
	// ModeQEMU boots each VMI's image under QEMU (package qemu) with
	// first-boot data built from the VMI's cloud-init volume, like
	// KubeVirt's virt-launcher: commands run inside a real guest.
	ModeQEMU Mode = "qemu"
)

// EventBooting is reported in ModeQEMU when QEMU started a VMI's guest,
// between EventScheduled and EventRunning.
const EventBooting EventType = "booting"

// Defaults of QEMUOptions.
const (
	// DefaultGuestBootTimeout bounds a guest's boot to its SSH banner;
	// under TCG a microvm guest takes 30-90 s.
	DefaultGuestBootTimeout = 5 * time.Minute
	// DefaultGuestCPUs and DefaultGuestMemory are KubeVirt's defaults for
	// a VMI that asks for nothing.
	DefaultGuestCPUs   = 1
	DefaultGuestMemory = 1 << 30
)

// QEMUOptions configure ModeQEMU.
type QEMUOptions struct {
	// Images maps containerDisk images to local guest images. Required.
	Images *ImageMap
	// CacheHome is microvm's cache root (see microvm.BuildOptions);
	// empty keeps the environment's.
	CacheHome string
	// BuildLog receives microvm's build progress when an image must be
	// built; nil discards it.
	BuildLog io.Writer
	// QEMU is qemu-system-x86_64 (a path or a name in PATH); empty means
	// qemu.DefaultQEMU.
	QEMU string
	// Accel is the accelerator; empty or qemu.AccelAuto detects it once,
	// at the first boot (qemu.DetectAccel, up to 10 s), for every guest.
	Accel qemu.Accel
	// BootTimeout bounds each guest's boot from QEMU's start to its SSH
	// banner; a guest that misses it fails with its console's tail in
	// status.reason. Default DefaultGuestBootTimeout.
	BootTimeout time.Duration
	// ConsoleDir, when set, keeps each guest's serial console as
	// <ConsoleDir>/<namespace>_<vmi>_<uid>.log; empty removes it with the
	// guest ([Controller.ConsoleTail] still works until the VMI is gone).
	ConsoleDir string
}

// qemuBackend is the controller's ModeQEMU state.
type qemuBackend struct {
	mu          sync.Mutex
	accel       qemu.Accel
	accelReason string
}

// validateMode checks Mode and, in ModeQEMU, QEMU; it fills in defaults.
func (opts *Options) validateMode() error {
	switch opts.Mode {
	case "":
		opts.Mode = ModeSSHD
	case ModeSSHD:
	case ModeQEMU:
		q := &opts.QEMU
		if q.Images == nil {
			return errors.New("option QEMU.Images: must be set in mode qemu (which local image serves which containerDisk)")
		}
		if err := q.Images.Validate(); err != nil {
			return fmt.Errorf("option QEMU.Images: %w", err)
		}
		switch q.Accel {
		case "", qemu.AccelAuto, qemu.AccelKVM, qemu.AccelTCG:
		default:
			return fmt.Errorf("option QEMU.Accel %q: must be %q, %q or %q", q.Accel, qemu.AccelAuto, qemu.AccelKVM, qemu.AccelTCG)
		}
		if q.BootTimeout == 0 {
			q.BootTimeout = DefaultGuestBootTimeout
		}
		if q.BootTimeout < 0 || q.BootTimeout > qemu.MaxBootTimeout {
			return fmt.Errorf("option QEMU.BootTimeout %s: must be in (0, %s]", q.BootTimeout, qemu.MaxBootTimeout)
		}
		if q.ConsoleDir != "" {
			if st, err := os.Stat(q.ConsoleDir); err != nil || !st.IsDir() {
				return fmt.Errorf("option QEMU.ConsoleDir %q: must be an existing directory (%v)", q.ConsoleDir, err)
			}
		}
		if q.CacheHome != "" && !filepath.IsAbs(q.CacheHome) {
			return fmt.Errorf("option QEMU.CacheHome %q: must be an absolute path", q.CacheHome)
		}
	default:
		return fmt.Errorf("option Mode %q: must be %q or %q", opts.Mode, ModeSSHD, ModeQEMU)
	}
	return nil
}

// driveQEMU boots a scheduled VMI under QEMU: it resolves the image, builds
// the seed from the VMI's cloud-init volume, starts QEMU with a forward
// from a loopback address of the pool to the guest's port 22, reports
// Running once QEMU runs (as KubeVirt does when the domain starts, before
// the guest OS is up), then waits for the guest's SSH banner. A guest that
// does not get there in time fails with its console's tail; a guest that
// stops later fails too.
func (c *Controller) driveQEMU(g *guest) error {
	ctx := g.ctx
	vmi, err := c.vmis.Get(ctx, g.name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get vmi: %w", err)
	}
	failed := func(what string, err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return c.fail(g, what+": "+err.Error())
	}
	img, err := c.guestImage(ctx, vmi)
	if err != nil {
		return failed("guest image", err)
	}
	seed, err := c.seed(ctx, vmi)
	if err != nil {
		return failed("guest first boot data", err)
	}
	cpus, memMiB, err := guestSize(vmi)
	if err != nil {
		return failed("guest size", err)
	}
	accel, err := c.accel(ctx, img)
	if err != nil {
		return failed("qemu", err)
	}

	ip, err := c.pool.get()
	if err != nil {
		return c.fail(g, "stand-in: "+err.Error())
	}
	c.mu.Lock()
	g.ip = ip
	c.notifyLocked()
	c.mu.Unlock()

	q := c.opts.QEMU
	consolePath := ""
	if q.ConsoleDir != "" {
		consolePath = filepath.Join(q.ConsoleDir, fmt.Sprintf("%s_%s_%s.log", c.opts.Namespace, g.name, g.uid))
	}
	vm, err := qemu.Start(ctx, qemu.Options{
		QEMU: q.QEMU, Kernel: img.Kernel, Initrd: img.Initrd, KernelCmdline: img.KernelCmdline,
		Disk: img.Disk, DiskFormat: img.DiskFormat, Seed: seed,
		CPUs: cpus, MemoryMiB: memMiB, Accel: accel,
		SSHAddr:     netip.AddrPortFrom(ip, uint16(c.opts.SSHPort)).String(),
		ConsolePath: consolePath, BootTimeout: q.BootTimeout,
	})
	if err != nil {
		return failed("start qemu", err)
	}
	c.mu.Lock()
	g.vm = vm
	c.notifyLocked()
	c.mu.Unlock()
	c.emit(g, EventBooting, "qemu pid %d: %s %s, %d vCPU, %d MiB, %s, console %s", vm.Pid(), img.Guest, img.KernelVersion, cpus, memMiB, accel, vm.ConsolePath())

	err = c.update(ctx, g, func(v *kubevirtv1.VirtualMachineInstance) {
		setPhase(v, kubevirtv1.Running)
		ipStr := ip.String()
		v.Status.Interfaces = []kubevirtv1.VirtualMachineInstanceNetworkInterface{{
			Name: interfaceName(v), IP: ipStr, IPs: []string{ipStr}, MAC: macFor(ip),
			InterfaceName: "eth0", InfoSource: "domain",
		}}
		setCondition(v, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionTrue, "", "")
	})
	if err != nil {
		return err
	}
	c.emit(g, EventRunning, "with IP %s (qemu runs; the guest boots)", ip)
	c.record(g, "virt-handler", corev1.EventTypeNormal, ReasonStarted, "VirtualMachineInstance started.")

	bctx, cancel := context.WithTimeout(ctx, q.BootTimeout)
	err = vm.WaitSSH(bctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		_ = vm.Stop()
		// err ends with the console's tail: the core puts the reason
		// into the job log.
		return c.fail(g, fmt.Sprintf("guest %s did not reach SSH on %s within %s: %v", img.Guest, vm.SSHAddr(), q.BootTimeout, err))
	}
	c.emit(g, EventSSHReady, "guest sshd answers on %s", vm.SSHAddr())

	// The guest runs until the VMI is deleted; one that stops by itself
	// fails the VMI, as a crashed virt-launcher domain would.
	exited := make(chan error, 1)
	go func() { exited <- vm.Wait() }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-exited:
		if ctx.Err() != nil {
			return nil
		}
		return c.fail(g, fmt.Sprintf("guest stopped (qemu exited: %v); console:\n%s", err, vm.ConsoleTail(qemu.ConsoleTailLines)))
	}
}

// stopVM stops g's QEMU, if any (teardown).
func (c *Controller) stopVM(g *guest) error {
	c.mu.Lock()
	vm := g.vm
	c.mu.Unlock()
	if vm == nil {
		return nil
	}
	if err := vm.Stop(); err != nil {
		return fmt.Errorf("stop qemu (pid %d): %w", vm.Pid(), err)
	}
	return nil
}

// ConsoleTail returns the last n lines of the serial console of the VMI
// called name (ModeQEMU), while the stand-in drives it.
func (c *Controller) ConsoleTail(name string, n int) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.byName[name]
	if g == nil || g.vm == nil {
		return "", fmt.Errorf("stand-in: vmi %s/%s has no QEMU guest", c.opts.Namespace, name)
	}
	return g.vm.ConsoleTail(n), nil
}

// QEMUPid returns the QEMU process id of the VMI called name (ModeQEMU),
// while the stand-in drives it.
func (c *Controller) QEMUPid(name string) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.byName[name]
	if g == nil || g.vm == nil {
		return 0, false
	}
	return g.vm.Pid(), true
}

// Seed returns the first-boot data ModeQEMU gives the VMI called name:
// what its cloud-init volume references, with KubeVirt's meta-data. It
// works in either mode (tests check the seed of guests they cannot boot,
// such as Windows). The result holds the job's secrets.
func (c *Controller) Seed(ctx context.Context, name string) (*qemu.Seed, error) {
	vmi, err := c.vmis.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("seed of vmi %s/%s: %w", c.opts.Namespace, name, err)
	}
	seed, err := c.seed(ctx, vmi)
	if err != nil {
		return nil, fmt.Errorf("seed of vmi %s/%s: %w", c.opts.Namespace, name, err)
	}
	return seed, nil
}

// guestImage resolves the VMI's containerDisk image through the image map
// and loads (or builds) the local image.
func (c *Controller) guestImage(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) (*microvm.Image, error) {
	var image string
	for _, v := range vmi.Spec.Volumes {
		if v.ContainerDisk != nil {
			image = v.ContainerDisk.Image
			break
		}
	}
	if image == "" {
		return nil, errors.New("spec.volumes: no containerDisk volume (the stand-in boots containerDisk images only)")
	}
	m, err := c.opts.QEMU.Images.Resolve(image)
	if err != nil {
		return nil, err
	}
	if m.Dir != "" {
		img, err := microvm.LoadImage(m.Dir)
		if err != nil {
			return nil, fmt.Errorf("image %s -> dir %s: %w", image, m.Dir, err)
		}
		return img, nil
	}
	img, err := microvm.Build(ctx, microvm.BuildOptions{Guest: m.Guest, CacheHome: c.opts.QEMU.CacheHome, Log: c.opts.QEMU.BuildLog})
	if err != nil {
		return nil, fmt.Errorf("image %s -> guest %s: %w", image, m.Guest, err)
	}
	return img, nil
}

// accel returns the accelerator for every guest, detecting it once.
func (c *Controller) accel(ctx context.Context, img *microvm.Image) (qemu.Accel, error) {
	q := &c.qemu
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.accel != "" {
		return q.accel, nil
	}
	if a := c.opts.QEMU.Accel; a != "" && a != qemu.AccelAuto {
		q.accel, q.accelReason = a, "chosen in QEMUOptions.Accel"
		return a, nil
	}
	a, reason, err := qemu.DetectAccel(ctx, c.opts.QEMU.QEMU, img.Kernel)
	if err != nil {
		return "", err
	}
	q.accel, q.accelReason = a, reason
	c.opts.Logf("stand-in: qemu accelerator %s: %s", a, reason)
	return a, nil
}

// seed builds the guest's first-boot data from the VMI's cloud-init
// volume as virt-launcher does: user-data and network-data from the
// referenced Secret (or inline), meta-data with instance-id = the VMI's
// UID and local-hostname = its name.
func (c *Controller) seed(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) (*qemu.Seed, error) {
	for _, vol := range vmi.Spec.Volumes {
		var (
			ds                    qemu.Datasource
			userRef, netRef       *corev1.LocalObjectReference
			userInline, netInline string
			kind                  string
		)
		switch {
		case vol.CloudInitNoCloud != nil:
			s := vol.CloudInitNoCloud
			ds, kind = qemu.NoCloud, "cloudInitNoCloud"
			userRef, netRef, userInline, netInline = s.UserDataSecretRef, s.NetworkDataSecretRef, s.UserData, s.NetworkData
		case vol.CloudInitConfigDrive != nil:
			s := vol.CloudInitConfigDrive
			ds, kind = qemu.ConfigDrive, "cloudInitConfigDrive"
			userRef, netRef, userInline, netInline = s.UserDataSecretRef, s.NetworkDataSecretRef, s.UserData, s.NetworkData
		default:
			continue
		}
		seed := &qemu.Seed{Datasource: ds}
		switch {
		case userRef != nil:
			d, err := c.secretKey(ctx, userRef.Name, vol.Name, kind+".userDataSecretRef", userDataKeys)
			if err != nil {
				return nil, err
			}
			seed.UserData = d
		case userInline != "":
			seed.UserData = []byte(userInline)
		default:
			return nil, fmt.Errorf("volume %s: %s has no user data (only secret references and inline userData are supported)", vol.Name, kind)
		}
		switch {
		case netRef != nil:
			d, err := c.secretKey(ctx, netRef.Name, vol.Name, kind+".networkDataSecretRef", networkDataKeys)
			if err != nil {
				return nil, err
			}
			seed.NetworkData = d
		case netInline != "":
			seed.NetworkData = []byte(netInline)
		}
		md, err := qemu.MetaData{InstanceID: string(vmi.UID), Hostname: vmi.Name}.Render(ds)
		if err != nil {
			return nil, fmt.Errorf("volume %s: meta-data: %w", vol.Name, err)
		}
		seed.MetaData = md
		return seed, nil
	}
	return nil, errors.New("spec.volumes: no cloudInitNoCloud or cloudInitConfigDrive volume (a guest without first-boot data cannot be reached)")
}

// networkDataKeys are the Secret keys KubeVirt reads network data from.
var networkDataKeys = []string{"networkdata", "networkData"}

// secretKey reads the first non-empty of keys from Secret name, waiting a
// little for a Secret that does not exist yet (as secretUserData does).
func (c *Controller) secretKey(ctx context.Context, name, volume, field string, keys []string) ([]byte, error) {
	deadline := time.Now().Add(secretWait)
	for {
		s, err := c.kube.CoreV1().Secrets(c.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, k := range keys {
				if v, ok := s.Data[k]; ok && len(v) > 0 {
					return v, nil
				}
			}
			return nil, fmt.Errorf("volume %s: %s %s: the Secret has no non-empty key %v", volume, field, name, keys)
		}
		if ctx.Err() != nil || time.Now().After(deadline) || !(retriable(err) || apierrors.IsNotFound(err)) {
			return nil, fmt.Errorf("volume %s: %s %s: %w", volume, field, name, err)
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

// guestSize derives vCPUs and memory like KubeVirt: vCPUs from
// spec.domain.cpu (sockets x cores x threads), else from the CPU limit or
// request rounded up, else 1; memory from spec.domain.memory.guest, else
// the memory request, else the limit, else 1 GiB.
func guestSize(vmi *kubevirtv1.VirtualMachineInstance) (cpus, memMiB int, err error) {
	d := vmi.Spec.Domain
	res := d.Resources
	cpus = DefaultGuestCPUs
	if t := d.CPU; t != nil && (t.Sockets|t.Cores|t.Threads) != 0 {
		n := uint64(1)
		for _, v := range []uint32{t.Sockets, t.Cores, t.Threads} {
			n *= uint64(max(v, 1))
		}
		if n > qemu.MaxCPUs {
			return 0, 0, fmt.Errorf("spec.domain.cpu %dx%dx%d: %d vCPUs, the stand-in boots at most %d", t.Sockets, t.Cores, t.Threads, n, qemu.MaxCPUs)
		}
		cpus = int(n)
	} else {
		for _, rl := range []corev1.ResourceList{res.Limits, res.Requests} {
			if q, ok := rl[corev1.ResourceCPU]; ok {
				n := int64(math.Ceil(float64(q.MilliValue()) / 1000))
				if n < 1 || n > qemu.MaxCPUs {
					return 0, 0, fmt.Errorf("resources cpu %s: must give 1..%d vCPUs", q.String(), qemu.MaxCPUs)
				}
				cpus = int(n)
				break
			}
		}
	}
	mem := int64(DefaultGuestMemory)
	switch {
	case d.Memory != nil && d.Memory.Guest != nil:
		mem = d.Memory.Guest.Value()
	default:
		for _, rl := range []corev1.ResourceList{res.Requests, res.Limits} {
			if q, ok := rl[corev1.ResourceMemory]; ok {
				mem = q.Value()
				break
			}
		}
	}
	memMiB64 := (mem + (1<<20 - 1)) >> 20
	if memMiB64 < qemu.MinMemoryMiB || memMiB64 > qemu.MaxMemoryMiB {
		return 0, 0, fmt.Errorf("guest memory %s MiB: must be in %d..%d MiB", strconv.FormatInt(memMiB64, 10), qemu.MinMemoryMiB, qemu.MaxMemoryMiB)
	}
	return cpus, int(memMiB64), nil
}
