package standin_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/microvm"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/qemu"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// guestImage is the containerDisk image the QEMU tests' VMIs ask for.
const guestImage = "registry.example.com/gitlab-runner-kubevirt/debian-bookworm:latest"

// guestBootLimit bounds a real boot under TCG (measured 30-90 s); a
// deadline against hangs, not a performance expectation.
const guestBootLimit = 5 * time.Minute

// qemuFixture is a namespace driven by a stand-in in QEMU mode; consoles
// are kept in consoleDir, a unique path that also names the QEMU process.
type qemuFixture struct {
	*fixture
	consoleDir string
	img        *microvm.Image
}

// newQEMUFixture builds (or finds cached) the debian-bookworm image, then
// starts a QEMU-mode stand-in whose guests must reach SSH within
// bootTimeout. Tests that boot nothing pass boots=false and skip the
// accelerator probe (up to 10 s).
func newQEMUFixture(t *testing.T, bootTimeout time.Duration, boots bool) *qemuFixture {
	t.Helper()
	img, err := microvm.Build(t.Context(), microvm.BuildOptions{Guest: "debian-bookworm"})
	if err != nil {
		t.Fatalf("build the guest image (install its packages with: bash microvm/install-deps.sh): %v", err)
	}
	accel := qemu.AccelTCG
	if boots {
		a, reason, err := qemu.DetectAccel(t.Context(), "", img.Kernel)
		if err != nil {
			t.Fatalf("QEMU (Debian package qemu-system-x86): %v", err)
		}
		t.Logf("accelerator %s: %s", a, reason)
		accel = a
	}
	ns, err := env.NewNamespace(t.Context(), "standin-qemu-")
	if err != nil {
		t.Fatal(err)
	}
	f := &qemuFixture{fixture: newClients(t, env, ns), consoleDir: t.TempDir(), img: img}
	f.ctl, err = standin.Start(t.Context(), standin.Options{
		Config: env.AdminConfig(), Namespace: ns, Logf: t.Logf,
		Mode: standin.ModeQEMU,
		QEMU: standin.QEMUOptions{
			Images: &standin.ImageMap{Images: []standin.ImageMapping{
				{Image: "registry.example.com/gitlab-runner-kubevirt/debian-bookworm:*", Guest: "debian-bookworm"},
			}},
			Accel: accel, BootTimeout: bootTimeout, ConsoleDir: f.consoleDir,
		},
		OnEvent: func(ev standin.Event) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.events = append(f.events, ev)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.ctl.Stop(); err != nil {
			t.Errorf("stop the stand-in: %v", err)
		}
		if pids := pidsWithCmdline(f.consoleDir); len(pids) > 0 {
			t.Errorf("QEMU processes %v outlived the stand-in", pids)
		}
	})
	return f
}

// createGuest creates a Secret with userData and a VMI for image that
// references it from a cloudInitNoCloud volume and asks for 2 vCPUs and
// 1 GiB.
func (f *qemuFixture) createGuest(t *testing.T, name, image string, userData []byte) {
	t.Helper()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-credentials"},
		Data:       map[string][]byte{"userdata": userData},
	}
	if _, err := f.kube.CoreV1().Secrets(f.ns).Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{
			Domain: kubevirtv1.DomainSpec{
				Resources: kubevirtv1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")}},
				Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{
					{Name: "containerdisk", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}},
					{Name: "cloudinitdisk", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}},
				}},
			},
			Volumes: []kubevirtv1.Volume{
				{Name: "containerdisk", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: image}}},
				{Name: "cloudinitdisk", VolumeSource: kubevirtv1.VolumeSource{CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{
					UserDataSecretRef: &corev1.LocalObjectReference{Name: secret.Name}}}},
			},
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
	if _, err := f.virt.KubevirtV1().VirtualMachineInstances(f.ns).Create(t.Context(), vmi, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls VMI name until cond holds, for up to limit.
func (f *qemuFixture) waitFor(t *testing.T, name, what string, limit time.Duration, cond func(*kubevirtv1.VirtualMachineInstance) bool) *kubevirtv1.VirtualMachineInstance {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	for {
		v, err := f.virt.KubevirtV1().VirtualMachineInstances(f.ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && cond(v) {
			return v
		}
		select {
		case <-ctx.Done():
			tail, _ := f.ctl.ConsoleTail(name, 40)
			t.Fatalf("vmi %s: %s did not happen within %s (last %+v, %v); console:\n%s", name, what, limit, v, err, tail)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (f *qemuFixture) delete(t *testing.T, name string) {
	t.Helper()
	if err := f.virt.KubevirtV1().VirtualMachineInstances(f.ns).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitGone(t, name)
}

// kernelLogLine is a console line of the kernel (printk with timestamps).
var kernelLogLine = regexp.MustCompile(`(?m)^\[\s*\d+\.\d+\] `)

// TestQEMUModeBootsGuest boots the real guest image for a VMI: phases like
// KubeVirt (Running with an address while the guest still boots), SSH with
// the pinned host key from the user-data, meta-data with the VMI's name as
// host name and its UID as instance-id, and no QEMU after the VMI is gone.
func TestQEMUModeBootsGuest(t *testing.T) {
	f := newQEMUFixture(t, guestBootLimit, true)
	j := newJob(t, "guest-1")
	j.user = "runner" // cloud-init creates it inside the guest
	f.createGuest(t, j.name, guestImage, j.userData(t, true))

	vmi := f.waitFor(t, j.name, "Running with an address", time.Minute, func(v *kubevirtv1.VirtualMachineInstance) bool {
		return v.Status.Phase == kubevirtv1.Running && len(v.Status.Interfaces) == 1 && v.Status.Interfaces[0].IP != ""
	})
	if vmi.Status.NodeName != standin.DefaultNodeName || !strings.HasPrefix(vmi.Status.Interfaces[0].IP, "127.") {
		t.Errorf("nodeName %q ip %q", vmi.Status.NodeName, vmi.Status.Interfaces[0].IP)
	}
	pid, ok := f.ctl.QEMUPid(j.name)
	if !ok {
		t.Fatal("no QEMU process for the running VMI")
	}
	deadline := time.Now().Add(guestBootLimit)
	for !slicesContains(f.eventTypes(j.name), standin.EventSSHReady) && !slicesContains(f.eventTypes(j.name), standin.EventFailed) {
		if time.Now().After(deadline) {
			t.Fatalf("guest sshd not up after %s", guestBootLimit)
		}
		time.Sleep(200 * time.Millisecond)
	}
	want := []standin.EventType{standin.EventSeen, standin.EventScheduling, standin.EventScheduled, standin.EventBooting, standin.EventRunning, standin.EventSSHReady}
	if got := f.eventTypes(j.name); !slicesEqual(got, want) {
		tail, _ := f.ctl.ConsoleTail(j.name, 40)
		t.Fatalf("events %v, want %v; console:\n%s", got, want, tail)
	}

	addr := vmi.Status.Interfaces[0].IP + ":22"
	c, err := dial(addr, j.user, j.client, j.host.AuthorizedKey)
	if err != nil {
		t.Fatalf("ssh %s with the pinned host key: %v", addr, err)
	}
	defer c.Close()
	if got := output(t, c, "hostname"); got != j.name {
		t.Errorf("guest hostname %q, want the VMI name %q", got, j.name)
	}
	// Wait for cloud-init, then read the instance-id it used.
	if got := output(t, c, "cloud-init status --wait >/dev/null; cloud-init query instance_id 2>/dev/null || cat /var/lib/cloud/data/instance-id"); got != string(vmi.UID) {
		t.Errorf("guest instance-id %q, want the VMI UID %s", got, vmi.UID)
	}
	if got := output(t, c, "uname -r"); got != f.img.KernelVersion {
		t.Errorf("uname -r = %q, want the image's kernel %q: commands must run inside the guest", got, f.img.KernelVersion)
	}
	c.Close()

	f.delete(t, j.name)
	if _, err := os.Stat("/proc/" + itoa(pid)); err == nil {
		t.Errorf("QEMU pid %d still runs after the VMI was deleted", pid)
	}
	console, err := os.ReadFile(consoleFile(t, f.consoleDir))
	if err != nil || !kernelLogLine.Match(console) {
		t.Errorf("console log kept in %s: %v (%d bytes, kernel lines: %v)", f.consoleDir, err, len(console), kernelLogLine.Match(console))
	}
}

// TestQEMUModeBootDeadlineFailsWithConsole gives the guest far too little
// time: the VMI fails with a reason carrying the console's tail, and QEMU
// is stopped. It costs seconds, not a boot.
func TestQEMUModeBootDeadlineFailsWithConsole(t *testing.T) {
	f := newQEMUFixture(t, 8*time.Second, true)
	j := newJob(t, "slow-guest")
	j.user = "runner"
	f.createGuest(t, j.name, guestImage, j.userData(t, true))
	vmi := f.waitFor(t, j.name, "phase Failed", time.Minute, func(v *kubevirtv1.VirtualMachineInstance) bool {
		return v.Status.Phase == kubevirtv1.Failed
	})
	r := vmi.Status.Reason
	for _, want := range []string{"guest debian-bookworm did not reach SSH", "within 8s", "last 40 lines:"} {
		if !strings.Contains(r, want) {
			t.Errorf("reason lacks %q:\n%s", want, r)
		}
	}
	if !kernelLogLine.MatchString(r) {
		t.Errorf("reason has no kernel console line:\n%s", r)
	}
	waitNoProcess(t, f.consoleDir)
	f.delete(t, j.name)
}

// TestQEMUModeUnmappedImageFails: an image the map does not know fails the
// VMI with a reason naming the image, without starting QEMU.
func TestQEMUModeUnmappedImageFails(t *testing.T) {
	f := newQEMUFixture(t, guestBootLimit, false)
	j := newJob(t, "unknown-image")
	j.user = "runner"
	f.createGuest(t, j.name, "quay.io/containerdisks/fedora:40", j.userData(t, true))
	vmi := f.waitFor(t, j.name, "phase Failed", time.Minute, func(v *kubevirtv1.VirtualMachineInstance) bool {
		return v.Status.Phase == kubevirtv1.Failed
	})
	if want := `guest image: containerDisk image "quay.io/containerdisks/fedora:40": matches no pattern`; !strings.Contains(vmi.Status.Reason, want) {
		t.Errorf("reason %q lacks %q", vmi.Status.Reason, want)
	}
	if _, ok := f.ctl.QEMUPid(j.name); ok {
		t.Error("QEMU was started for an unmapped image")
	}
	f.delete(t, j.name)
}

func slicesContains(s []standin.EventType, v standin.EventType) bool { return slices.Contains(s, v) }
func slicesEqual(a, b []standin.EventType) bool                      { return slices.Equal(a, b) }
func itoa(n int) string                                              { return strconv.Itoa(n) }

// consoleFile returns the one console log in dir.
func consoleFile(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(m) != 1 {
		t.Fatalf("console logs in %s: %v, %v", dir, m, err)
	}
	return m[0]
}
