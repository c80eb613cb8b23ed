package standin_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// condition returns the VMI's condition of type t, if any.
func condition(v *kubevirtv1.VirtualMachineInstance, t string) (kubevirtv1.VirtualMachineInstanceCondition, bool) {
	for _, c := range v.Status.Conditions {
		if string(c.Type) == t {
			return c, true
		}
	}
	return kubevirtv1.VirtualMachineInstanceCondition{}, false
}

func running(v *kubevirtv1.VirtualMachineInstance) bool { return v.Status.Phase == kubevirtv1.Running }

// TestBehaviours drives one VMI per behaviour and checks the status
// KubeVirt would report, and the guest's sshd.
func TestBehaviours(t *testing.T) {
	behaviours := map[string]standin.Behaviour{
		"fail":          standin.Fail("virt-launcher crashed: out of hugepages"),
		"unschedulable": standin.Unschedulable("0/3 nodes are available: 3 Insufficient memory."),
		"noip":          standin.NoIP(),
		"late":          standin.DelayRunning(300 * time.Millisecond),
		"slowssh":       standin.DelaySSH(300 * time.Millisecond),
		"invalid":       {RunningDelay: -time.Second},
	}
	f := newFixture(t, env, func(v *kubevirtv1.VirtualMachineInstance) standin.Behaviour {
		return behaviours[v.Labels["behaviour"]] // "" and unknown: normal
	})
	me := currentUser(t)

	tests := []struct {
		name      string
		behaviour string
		// userData overrides the rendered user-data.
		userData func(j *job) []byte
		// until says when the VMI has settled.
		until func(*kubevirtv1.VirtualMachineInstance) bool
		check func(t *testing.T, j *job, v *kubevirtv1.VirtualMachineInstance)
		// events are the stand-in steps expected, in order.
		events []standin.EventType
	}{
		{
			name:  "normal: Running with a loopback address, serving the injected host key",
			until: running,
			check: func(t *testing.T, j *job, v *kubevirtv1.VirtualMachineInstance) {
				if v.Status.NodeName != standin.DefaultNodeName || v.Labels[standin.NodeNameLabel] != standin.DefaultNodeName {
					t.Errorf("nodeName %q label %q, want %s", v.Status.NodeName, v.Labels[standin.NodeNameLabel], standin.DefaultNodeName)
				}
				if len(v.Status.Interfaces) != 1 || v.Status.Interfaces[0].Name != "default" {
					t.Fatalf("interfaces %+v, want one called default", v.Status.Interfaces)
				}
				ip := net.ParseIP(v.Status.Interfaces[0].IP)
				if ip == nil || !ip.IsLoopback() || ip.Equal(net.IPv4(127, 0, 0, 1)) {
					t.Fatalf("ipAddress %q is not a dedicated loopback address", v.Status.Interfaces[0].IP)
				}
				for _, ct := range []string{string(corev1.PodScheduled), string(kubevirtv1.VirtualMachineInstanceReady)} {
					if c, ok := condition(v, ct); !ok || c.Status != corev1.ConditionTrue {
						t.Errorf("condition %s = %+v, want True", ct, c)
					}
				}
				if !slices.Contains(v.Finalizers, standin.Finalizer) {
					t.Errorf("finalizers %v lack %s", v.Finalizers, standin.Finalizer)
				}
				if v.Status.GuestOSInfo.KernelRelease == "" {
					t.Errorf("guestOSInfo %+v has no kernel release", v.Status.GuestOSInfo)
				}
				addr := net.JoinHostPort(v.Status.Interfaces[0].IP, "22")
				c, err := dial(addr, j.user, j.client, j.host.AuthorizedKey)
				if err != nil {
					t.Fatalf("log in to %s with the job's key, pinning the injected host key: %v", addr, err)
				}
				defer c.Close()
				if got := output(t, c, "id -un"); got != me {
					t.Errorf("logged in as %q, want %q", got, me)
				}
				// Another host key must not be accepted: the guest serves
				// exactly the injected one.
				other := newJob(t, "other")
				if c2, err := dial(addr, j.user, j.client, other.host.AuthorizedKey); err == nil {
					c2.Close()
					t.Error("a client pinning another host key logged in")
				}
				// Another client key must not log in.
				if c3, err := dial(addr, j.user, other.client, j.host.AuthorizedKey); err == nil {
					c3.Close()
					t.Error("a client with a key not in ssh_authorized_keys logged in")
				}
				srv, err := f.ctl.SSHD(j.name)
				if err != nil {
					t.Fatal(err)
				}
				if srv.Addr() != addr || srv.HostPublicKey() != j.host.AuthorizedKey {
					t.Errorf("SSHD() = %s serving %s, want %s serving the injected key", srv.Addr(), srv.HostPublicKey(), addr)
				}
				if ip, ok := f.ctl.IP(j.name); !ok || ip != v.Status.Interfaces[0].IP {
					t.Errorf("IP() = %q, %t", ip, ok)
				}
				evs, err := f.kube.CoreV1().Events(f.ns).List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + j.name})
				if err != nil {
					t.Fatal(err)
				}
				var reasons []string
				for _, e := range evs.Items {
					reasons = append(reasons, e.Reason)
					if e.InvolvedObject.UID != v.UID || e.InvolvedObject.Kind != "VirtualMachineInstance" {
						t.Errorf("event %s is about %+v, want the VMI", e.Name, e.InvolvedObject)
					}
				}
				slices.Sort(reasons)
				if !slices.Equal(reasons, []string{standin.ReasonStarted, standin.ReasonSuccessfulCreate}) {
					t.Errorf("events %v, want %s and %s", reasons, standin.ReasonSuccessfulCreate, standin.ReasonStarted)
				}
			},
			events: []standin.EventType{standin.EventSeen, standin.EventScheduling, standin.EventScheduled, standin.EventSSHReady, standin.EventRunning},
		},
		{
			name:      "fail: phase Failed with the reason",
			behaviour: "fail",
			until:     func(v *kubevirtv1.VirtualMachineInstance) bool { return v.Status.Phase == kubevirtv1.Failed },
			check: func(t *testing.T, j *job, v *kubevirtv1.VirtualMachineInstance) {
				if v.Status.Reason != "virt-launcher crashed: out of hugepages" {
					t.Errorf("reason %q", v.Status.Reason)
				}
				if v.Status.NodeName == "" {
					t.Error("a VMI that failed after scheduling has no nodeName")
				}
				if _, err := f.ctl.SSHD(j.name); err == nil {
					t.Error("a failed VMI has an sshd")
				}
			},
			events: []standin.EventType{standin.EventSeen, standin.EventScheduling, standin.EventScheduled, standin.EventFailed},
		},
		{
			name:      "unschedulable: PodScheduled False, reason Unschedulable, with the message",
			behaviour: "unschedulable",
			until: func(v *kubevirtv1.VirtualMachineInstance) bool {
				c, ok := condition(v, string(corev1.PodScheduled))
				return ok && c.Status == corev1.ConditionFalse
			},
			check: func(t *testing.T, j *job, v *kubevirtv1.VirtualMachineInstance) {
				c, _ := condition(v, string(corev1.PodScheduled))
				if c.Reason != corev1.PodReasonUnschedulable || c.Message != "0/3 nodes are available: 3 Insufficient memory." {
					t.Errorf("condition %+v", c)
				}
				if v.Status.Phase != kubevirtv1.Scheduling || v.Status.NodeName != "" {
					t.Errorf("phase %q node %q, want Scheduling and no node", v.Status.Phase, v.Status.NodeName)
				}
			},
			events: []standin.EventType{standin.EventSeen, standin.EventUnschedulable},
		},
		{
			name:      "noip: Running without an address",
			behaviour: "noip",
			until:     running,
			check: func(t *testing.T, j *job, v *kubevirtv1.VirtualMachineInstance) {
				if len(v.Status.Interfaces) != 1 || v.Status.Interfaces[0].IP != "" {
					t.Errorf("interfaces %+v, want one without ipAddress", v.Status.Interfaces)
				}
				if _, ok := f.ctl.IP(j.name); ok {
					t.Error("IP() reports an address")
				}
			},
			events: []standin.EventType{standin.EventSeen, standin.EventScheduling, standin.EventScheduled, standin.EventRunning},
		},
		{
			name:      "delayed running: Scheduled first, then Running",
			behaviour: "late",
			until:     running,
			check: func(t *testing.T, j *job, v *kubevirtv1.VirtualMachineInstance) {
				var phases []kubevirtv1.VirtualMachineInstancePhase
				for _, p := range v.Status.PhaseTransitionTimestamps {
					phases = append(phases, p.Phase)
				}
				want := []kubevirtv1.VirtualMachineInstancePhase{kubevirtv1.Pending, kubevirtv1.Scheduling, kubevirtv1.Scheduled, kubevirtv1.Running}
				if !slices.Equal(phases, want) {
					t.Errorf("phase transitions %v, want %v", phases, want)
				}
			},
			events: []standin.EventType{standin.EventSeen, standin.EventScheduling, standin.EventScheduled, standin.EventSSHReady, standin.EventRunning},
		},
		{
			name:      "delayed sshd: Running with an address before sshd listens",
			behaviour: "slowssh",
			until:     running,
			check: func(t *testing.T, j *job, v *kubevirtv1.VirtualMachineInstance) {
				srv, err := f.ctl.WaitSSHD(t.Context(), j.name)
				if err != nil {
					t.Fatal(err)
				}
				if srv.Host() != v.Status.Interfaces[0].IP {
					t.Errorf("sshd on %s, VMI reports %s", srv.Host(), v.Status.Interfaces[0].IP)
				}
			},
			events: []standin.EventType{standin.EventSeen, standin.EventScheduling, standin.EventScheduled, standin.EventRunning, standin.EventSSHReady},
		},
		{
			name:      "an invalid behaviour fails the VMI with the rule",
			behaviour: "invalid",
			until:     func(v *kubevirtv1.VirtualMachineInstance) bool { return v.Status.Phase == kubevirtv1.Failed },
			check: func(t *testing.T, j *job, v *kubevirtv1.VirtualMachineInstance) {
				if !strings.Contains(v.Status.Reason, "RunningDelay -1s: must not be negative") {
					t.Errorf("reason %q", v.Status.Reason)
				}
			},
			events: []standin.EventType{standin.EventFailed},
		},
		{
			name:     "a login that does not exist on the host fails the VMI, saying so",
			userData: func(j *job) []byte { j.user = "nosuchuser-standin"; return j.userData(t, true) },
			until:    func(v *kubevirtv1.VirtualMachineInstance) bool { return v.Status.Phase == kubevirtv1.Failed },
			check: func(t *testing.T, j *job, v *kubevirtv1.VirtualMachineInstance) {
				for _, want := range []string{`users[0].name "nosuchuser-standin"`, "no such account", "--ssh-user"} {
					if !strings.Contains(v.Status.Reason, want) {
						t.Errorf("reason %q does not contain %q", v.Status.Reason, want)
					}
				}
			},
			events: []standin.EventType{standin.EventSeen, standin.EventScheduling, standin.EventScheduled, standin.EventFailed},
		},
		{
			name:     "user-data that is not cloud-config fails the VMI",
			userData: func(*job) []byte { return []byte("#!/bin/sh\necho hello\n") },
			until:    func(v *kubevirtv1.VirtualMachineInstance) bool { return v.Status.Phase == kubevirtv1.Failed },
			check: func(t *testing.T, j *job, v *kubevirtv1.VirtualMachineInstance) {
				if !strings.Contains(v.Status.Reason, `must start with the line "#cloud-config"`) {
					t.Errorf("reason %q", v.Status.Reason)
				}
			},
			events: []standin.EventType{standin.EventSeen, standin.EventScheduling, standin.EventScheduled, standin.EventFailed},
		},
		{
			name:     "no injected host key: the guest serves a random one the client cannot pin",
			userData: func(j *job) []byte { return j.userData(t, false) },
			until:    running,
			check: func(t *testing.T, j *job, v *kubevirtv1.VirtualMachineInstance) {
				addr := net.JoinHostPort(v.Status.Interfaces[0].IP, "22")
				if c, err := dial(addr, j.user, j.client, j.host.AuthorizedKey); err == nil {
					c.Close()
					t.Fatal("logged in pinning a host key the guest was never given")
				} else if !strings.Contains(err.Error(), "host key mismatch") {
					t.Errorf("error %v, want a host key mismatch", err)
				}
			},
			events: []standin.EventType{standin.EventSeen, standin.EventScheduling, standin.EventScheduled, standin.EventSSHReady, standin.EventRunning},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := newJob(t, fmt.Sprintf("job-%d", i))
			data := j.userData(t, true)
			if tt.userData != nil {
				data = tt.userData(j)
			}
			f.createLabelled(t, j, data, map[string]string{"behaviour": tt.behaviour})
			v := f.waitVMI(t, j.name, "settling", tt.until)
			tt.check(t, j, v)
			// The stand-in reports a step after the API server took it.
			f.waitEvents(t, j.name, tt.events)

			// Deleting the VMI powers the guest off; the finalizer keeps
			// the VMI until then.
			if err := f.virt.KubevirtV1().VirtualMachineInstances(f.ns).Delete(t.Context(), j.name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			f.waitGone(t, j.name)
			if _, err := f.ctl.SSHD(j.name); err == nil {
				t.Error("the sshd of a deleted VMI is still reachable through SSHD()")
			}
			if got := f.eventTypes(j.name); len(got) == 0 || got[len(got)-1] != standin.EventStopped {
				t.Errorf("last stand-in event %v, want %s", got, standin.EventStopped)
			}
		})
	}
}

// TestDeleteStopsGuest checks that deleting a VMI kills what runs in its
// sessions, closes its port and releases its address.
func TestDeleteStopsGuest(t *testing.T) {
	f := newFixture(t, env, nil)
	j := newJob(t, "job-delete")
	f.create(t, j, j.userData(t, true))
	v := f.waitVMI(t, j.name, "Running", running)
	addr := net.JoinHostPort(v.Status.Interfaces[0].IP, "22")

	c, err := dial(addr, j.user, j.client, j.host.AuthorizedKey)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	marker := fmt.Sprintf("sleep %d.4242", 3000+time.Now().UnixNano()%1000)
	if err := s.Start(marker); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for len(pidsWithCmdline(marker)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%q never started", marker)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if f.ctl.AddressesInUse() != 1 {
		t.Errorf("AddressesInUse() = %d, want 1", f.ctl.AddressesInUse())
	}

	if err := f.virt.KubevirtV1().VirtualMachineInstances(f.ns).Delete(t.Context(), j.name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitGone(t, j.name)
	waitNoProcess(t, marker)
	if listening(addr) {
		t.Errorf("something still listens on %s", addr)
	}
	if n := f.ctl.AddressesInUse(); n != 0 {
		t.Errorf("AddressesInUse() = %d after the delete, want 0", n)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if err := f.ctl.WaitIdle(ctx); err != nil {
		t.Error(err)
	}
}

// TestStopLeavesNothing checks that Stop ends every sshd and session and
// removes the finalizer, so the VMIs can still be deleted without it.
func TestStopLeavesNothing(t *testing.T) {
	ns, err := env.NewNamespace(t.Context(), "standin-stop-")
	if err != nil {
		t.Fatal(err)
	}
	f := newClients(t, env, ns)
	f.ctl, err = standin.Start(t.Context(), standin.Options{Config: env.AdminConfig(), Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for i := range 3 {
		j := newJob(t, fmt.Sprintf("job-stop-%d", i))
		f.create(t, j, j.userData(t, true))
		v := f.waitVMI(t, j.name, "Running", running)
		addrs = append(addrs, net.JoinHostPort(v.Status.Interfaces[0].IP, "22"))
	}
	if err := f.ctl.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	for _, a := range addrs {
		if listening(a) {
			t.Errorf("sshd on %s survived Stop", a)
		}
	}
	list, err := f.virt.KubevirtV1().VirtualMachineInstances(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range list.Items {
		if slices.Contains(v.Finalizers, standin.Finalizer) {
			t.Errorf("vmi %s keeps the finalizer after Stop", v.Name)
		}
		if err := f.virt.KubevirtV1().VirtualMachineInstances(ns).Delete(t.Context(), v.Name, metav1.DeleteOptions{}); err != nil {
			t.Error(err)
		}
		f.waitGone(t, v.Name)
	}
}

// TestSurvivesAPIServerRestart checks that the stand-in keeps driving VMIs
// after the API server crashed and came back (its watch breaks and is
// re-established by a fresh list), and still tears down a VMI it drove
// before the crash.
func TestSurvivesAPIServerRestart(t *testing.T) {
	private := kubeenv.StartForTest(t, kubeenv.Options{})
	f := newFixture(t, private, nil)
	j1 := newJob(t, "job-before")
	f.create(t, j1, j1.userData(t, true))
	f.waitVMI(t, j1.name, "Running", running)

	// A crash, not a graceful stop: watches break without a goodbye.
	if err := private.KillAPIServer(); err != nil {
		t.Fatal(err)
	}
	if err := private.StartAPIServer(t.Context()); err != nil {
		t.Fatal(err)
	}

	j2 := newJob(t, "job-after")
	f.create(t, j2, j2.userData(t, true))
	v := f.waitVMI(t, j2.name, "Running", running)
	c, err := dial(net.JoinHostPort(v.Status.Interfaces[0].IP, "22"), j2.user, j2.client, j2.host.AuthorizedKey)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	for _, name := range []string{j1.name, j2.name} {
		if err := f.virt.KubevirtV1().VirtualMachineInstances(f.ns).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		f.waitGone(t, name)
	}
}

func TestStartValidatesOptions(t *testing.T) {
	cfg := env.AdminConfig()
	tests := []struct {
		name string
		opts standin.Options
		want string
	}{
		{"no config", standin.Options{Namespace: "x"}, "option Config: must be set"},
		{"bad namespace", standin.Options{Config: cfg, Namespace: "Not_A_Namespace"}, `option Namespace "Not_A_Namespace"`},
		{"bad node", standin.Options{Config: cfg, Namespace: "x", NodeName: "bad node"}, `option NodeName "bad node"`},
		{"bad port", standin.Options{Config: cfg, Namespace: "x", SSHPort: 70000}, "option SSHPort 70000: must be a TCP port"},
		{"negative timeout", standin.Options{Config: cfg, Namespace: "x", StartTimeout: -time.Second}, "option StartTimeout -1s: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := standin.Start(t.Context(), tt.opts)
			if err == nil {
				c.Stop()
				t.Fatal("Start accepted invalid options")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestAccount logs in to a stand-in guest as a throwaway account, runs the
// OS plugin's readiness check the way prepare does, and checks that the
// guest's power-off takes down what its sessions left running and resets
// the account, so the next VMI starts fresh.
func TestAccount(t *testing.T) {
	acct, err := standin.CreateAccount(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			if err := acct.Remove(context.Background()); err != nil {
				t.Error(err)
			}
		}
	})
	f := newFixtureWith(t, env, standin.Options{Accounts: []*standin.Account{acct}})
	j := newJob(t, "job-account")
	j.user = acct.Name
	f.create(t, j, j.userData(t, true))
	v := f.waitVMI(t, j.name, "Running", running)
	c, err := dial(net.JoinHostPort(v.Status.Interfaces[0].IP, "22"), acct.Name, j.client, j.host.AuthorizedKey)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := output(t, c, "id -un; echo $HOME"); got != acct.Name+"\n"+acct.Home {
		t.Errorf("id/home %q, want %s and %s", got, acct.Name, acct.Home)
	}
	if got := output(t, c, "cloud-init status --wait; echo rc=$?"); got != "status: done\nrc=0" {
		t.Errorf("cloud-init status --wait said %q, want done with exit 0", got)
	}
	if got := output(t, c, "cloud-init status --long | head -2"); got != "status: done\nextended_status: done" {
		t.Errorf("cloud-init status --long said %q", got)
	}

	// Leave things behind, as a job would: an orphaned background process,
	// files in /tmp and in the home directory.
	marker := fmt.Sprintf("sleep %d.%03d", 3000+time.Now().Unix()%1000, time.Now().Nanosecond()%1000)
	tmpFile := fmt.Sprintf("/tmp/standin-account-test-%d", time.Now().UnixNano())
	output(t, c, fmt.Sprintf("nohup %s >/dev/null 2>&1 & touch %s ~/leftover; mkdir -p ~/builds/group/project", marker, tmpFile))
	for deadline := time.Now().Add(waitLimit); len(pidsWithCmdline(marker)) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%q never started", marker)
		}
	}
	c.Close()

	if err := f.virt.KubevirtV1().VirtualMachineInstances(f.ns).Delete(t.Context(), j.name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitGone(t, j.name)
	if pids := pidsWithCmdline(marker); len(pids) > 0 {
		t.Errorf("the guest's background %q (pids %v) survived its power-off", marker, pids)
	}
	for _, p := range []string{tmpFile, acct.Home + "/leftover", acct.Home + "/builds"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived the guest's power-off (%v)", p, err)
		}
	}
	if _, err := os.Stat(acct.Home + "/.bashrc"); err != nil {
		t.Errorf("the account's shell setup is gone: %v", err)
	}

	if err := acct.Remove(t.Context()); err != nil {
		t.Fatal(err)
	}
	removed = true
	if _, err := os.Stat(acct.Home); !os.IsNotExist(err) {
		t.Errorf("home %s survived Remove (%v)", acct.Home, err)
	}
}

// TestBackgroundProcessOfAnotherLogin checks that a guest's power-off also
// ends what its sessions left in the background when the login is not a
// throwaway account (it is never reset): the processes are found by the
// SSH_CONNECTION their session gave them.
func TestBackgroundProcessOfAnotherLogin(t *testing.T) {
	f := newFixture(t, env, nil)
	j := newJob(t, "job-orphan")
	f.create(t, j, j.userData(t, true))
	v := f.waitVMI(t, j.name, "Running", running)
	c, err := dial(net.JoinHostPort(v.Status.Interfaces[0].IP, "22"), j.user, j.client, j.host.AuthorizedKey)
	if err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("sleep %d.%03d", 6000+time.Now().Unix()%1000, time.Now().Nanosecond()%1000)
	output(t, c, fmt.Sprintf("nohup %s >/dev/null 2>&1 &", marker))
	c.Close()
	for deadline := time.Now().Add(waitLimit); len(pidsWithCmdline(marker)) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%q never started", marker)
		}
	}
	if err := f.virt.KubevirtV1().VirtualMachineInstances(f.ns).Delete(t.Context(), j.name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitGone(t, j.name)
	if pids := pidsWithCmdline(marker); len(pids) > 0 {
		t.Errorf("the guest's background %q (pids %v) survived its power-off", marker, pids)
	}
}
