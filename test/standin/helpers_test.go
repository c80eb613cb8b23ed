package standin_test

import (
	"context"
	"fmt"
	"net"
	"os/user"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubevirt"
	"sigs.k8s.io/yaml"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// waitLimit bounds every wait for the stand-in to act. It is a deadline
// against hangs, not a performance expectation.
const waitLimit = 60 * time.Second

// fixture is one namespace with a stand-in driving it.
type fixture struct {
	env  *kubeenv.Env
	ns   string
	ctl  *standin.Controller
	kube kubernetes.Interface
	virt kubevirt.Interface

	mu     sync.Mutex
	events []standin.Event
}

// newFixture starts a stand-in on a fresh namespace of e; behaviour picks
// the behaviour per VMI (nil: normal).
func newFixture(t *testing.T, e *kubeenv.Env, behaviour standin.BehaviourFunc) *fixture {
	t.Helper()
	return newFixtureWith(t, e, standin.Options{Behaviour: behaviour})
}

// newFixtureWith is newFixture with more options; the fixture fills in
// Config, Namespace, Logf and OnEvent.
func newFixtureWith(t *testing.T, e *kubeenv.Env, opts standin.Options) *fixture {
	t.Helper()
	ns, err := e.NewNamespace(t.Context(), "standin-")
	if err != nil {
		t.Fatal(err)
	}
	f := newClients(t, e, ns)
	opts.Config, opts.Namespace = e.AdminConfig(), ns
	// Stop (in t.Cleanup) returns only after the last log line, so t.Logf
	// is never called after the test ended.
	opts.Logf = t.Logf
	opts.OnEvent = func(ev standin.Event) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.events = append(f.events, ev)
	}
	f.ctl, err = standin.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.ctl.Stop(); err != nil {
			t.Errorf("stop the stand-in: %v", err)
		}
	})
	return f
}

// newClients returns a fixture without a stand-in: admin clients for ns.
func newClients(t *testing.T, e *kubeenv.Env, ns string) *fixture {
	t.Helper()
	f := &fixture{env: e, ns: ns}
	var err error
	if f.kube, err = kubernetes.NewForConfig(e.AdminConfig()); err != nil {
		t.Fatal(err)
	}
	if f.virt, err = kubevirt.NewForConfig(e.AdminConfig()); err != nil {
		t.Fatal(err)
	}
	return f
}

// eventTypes returns the event types seen for vmi, in order.
func (f *fixture) eventTypes(vmi string) []standin.EventType {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []standin.EventType
	for _, ev := range f.events {
		if ev.VMI == vmi {
			out = append(out, ev.Type)
		}
	}
	return out
}

// waitEvents waits until the stand-in reported exactly want for vmi.
func (f *fixture) waitEvents(t *testing.T, vmi string, want []standin.EventType) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		got := f.eventTypes(vmi)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("stand-in events %v, want %v", got, want)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// job is what prepare creates for one job: credentials, a Secret with the
// user-data, and a VMI that references it.
type job struct {
	name   string
	client sshd.KeyPair
	host   sshd.KeyPair
	user   string
}

// currentUser is the login the stand-in's sshd accepts in tests.
func currentUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// newJob makes fresh credentials for a job called name.
func newJob(t *testing.T, name string) *job {
	t.Helper()
	j := &job{name: name, user: currentUser(t)}
	var err error
	if j.client, err = sshd.NewKeyPair(); err != nil {
		t.Fatal(err)
	}
	if j.host, err = sshd.NewKeyPair(); err != nil {
		t.Fatal(err)
	}
	return j
}

// userData renders the job's cloud-config as data.
func (j *job) userData(t *testing.T, withHostKey bool) []byte {
	t.Helper()
	doc := map[string]any{
		"users": []any{map[string]any{
			"name":                j.user,
			"ssh_authorized_keys": []string{j.client.AuthorizedKey},
			"lock_passwd":         true,
		}},
		"ssh_pwauth":      false,
		"ssh_genkeytypes": []string{"ed25519"},
	}
	if withHostKey {
		doc["ssh_keys"] = map[string]any{"ed25519_private": string(j.host.PrivateKeyPEM), "ed25519_public": j.host.AuthorizedKey}
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte("#cloud-config\n"), b...)
}

// create creates the Secret with userData and a VMI referencing it.
func (f *fixture) create(t *testing.T, j *job, userData []byte) {
	t.Helper()
	f.createLabelled(t, j, userData, nil)
}

// createLabelled is create with labels on the VMI (tests pick behaviours
// by label).
func (f *fixture) createLabelled(t *testing.T, j *job, userData []byte, labels map[string]string) {
	t.Helper()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: j.name + "-credentials"},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"userdata": userData},
	}
	if _, err := f.kube.CoreV1().Secrets(f.ns).Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ref := &corev1.LocalObjectReference{Name: secret.Name}
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: j.name, Labels: labels},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{
			Domain: kubevirtv1.DomainSpec{
				Devices: kubevirtv1.Devices{
					Disks: []kubevirtv1.Disk{
						{Name: "containerdisk", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}},
						{Name: "cloudinitdisk", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}},
					},
					Interfaces: []kubevirtv1.Interface{{Name: "default", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}}}},
				},
			},
			Networks: []kubevirtv1.Network{{Name: "default", NetworkSource: kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{}}}},
			Volumes: []kubevirtv1.Volume{
				{Name: "containerdisk", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "registry.example.com/ci/debian:12"}}},
				{Name: "cloudinitdisk", VolumeSource: kubevirtv1.VolumeSource{CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{UserDataSecretRef: ref}}},
			},
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
	if _, err := f.virt.KubevirtV1().VirtualMachineInstances(f.ns).Create(t.Context(), vmi, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitVMI polls VMI name until cond holds and returns it.
func (f *fixture) waitVMI(t *testing.T, name string, what string, cond func(*kubevirtv1.VirtualMachineInstance) bool) *kubevirtv1.VirtualMachineInstance {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	var last *kubevirtv1.VirtualMachineInstance
	for {
		v, err := f.virt.KubevirtV1().VirtualMachineInstances(f.ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			last = v
			if cond(v) {
				return v
			}
		}
		select {
		case <-ctx.Done():
			status := "<none>"
			if last != nil {
				status = fmt.Sprintf("phase %q reason %q conditions %+v interfaces %+v", last.Status.Phase, last.Status.Reason, last.Status.Conditions, last.Status.Interfaces)
			}
			t.Fatalf("vmi %s/%s: %s did not happen within %s; last status: %s (last error %v)", f.ns, name, what, waitLimit, status, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitGone waits until VMI name no longer exists.
func (f *fixture) waitGone(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	for {
		_, err := f.virt.KubevirtV1().VirtualMachineInstances(f.ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("vmi %s/%s still exists after %s (last error %v)", f.ns, name, waitLimit, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dial logs in to addr as j's user with j's client key, accepting only
// hostKey.
func dial(addr, username string, client sshd.KeyPair, hostKey string) (*ssh.Client, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostKey))
	if err != nil {
		return nil, fmt.Errorf("parse host key: %w", err)
	}
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User:            username,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(client.Signer)},
		HostKeyCallback: ssh.FixedHostKey(pub),
		Timeout:         10 * time.Second,
	})
}

// output runs cmd over c and returns its trimmed stdout.
func output(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Output(cmd)
	if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	return strings.TrimSpace(string(out))
}

// pidsWithCmdline returns the pids whose command line contains needle.
func pidsWithCmdline(needle string) []int { return e2etest.PidsWithCmdline(needle) }

// waitNoProcess waits until no process has needle in its command line.
func waitNoProcess(t *testing.T, needle string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		pids := e2etest.PidsWithCmdline(needle)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v running %q are still alive after %s", pids, needle, waitLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listening reports whether something accepts TCP connections on addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
