//go:build linux

package qemu

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"sigs.k8s.io/yaml"
)

// cloudConfig is the #cloud-config the test hands the guest, marshalled as
// data like plugins/linux-cloudinit renders it: one user with the job's
// authorized key, and the job's ed25519 host key as the only host key.
type cloudConfig struct {
	Users          []cloudUser       `json:"users"`
	DisableRoot    bool              `json:"disable_root"`
	SSHPwauth      bool              `json:"ssh_pwauth"`
	SSHDeleteKeys  bool              `json:"ssh_deletekeys"`
	SSHGenKeyTypes []string          `json:"ssh_genkeytypes"`
	SSHKeys        map[string]string `json:"ssh_keys"`
}

type cloudUser struct {
	Name              string   `json:"name"`
	Shell             string   `json:"shell"`
	Sudo              string   `json:"sudo"`
	LockPasswd        bool     `json:"lock_passwd"`
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys"`
}

// keyPair is a fresh ed25519 key as an SSH signer, its public key in
// authorized_keys format and its private key in OpenSSH PEM.
type keyPair struct {
	signer        ssh.Signer
	public        ssh.PublicKey
	authorizedKey string
	privatePEM    string
}

func newKeyPair(t *testing.T) keyPair {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{
		signer:        signer,
		public:        sshPub,
		authorizedKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))),
		privatePEM:    string(pem.EncodeToMemory(block)),
	}
}

// dialGuest logs in, retrying while the guest's sshd is not (or no longer,
// e.g. restarted by cloud-init) accepting, until ctx ends. A host key other
// than the pinned one fails at once.
func dialGuest(ctx context.Context, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	for {
		client, err := ssh.Dial("tcp", addr, cfg)
		if err == nil {
			return client, nil
		}
		if strings.Contains(err.Error(), "host key mismatch") || strings.Contains(err.Error(), "unable to authenticate") {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ssh %s: %w (last error: %v)", addr, ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

// run runs command on the guest and returns its combined output.
func run(t *testing.T, client *ssh.Client, command string) string {
	t.Helper()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatalf("ssh session for %q: %v", command, err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(command)
	if err != nil {
		t.Fatalf("%q on the guest: %v\n%s", command, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestBootDebianGuest is the real thing: the microvm image boots under
// QEMU with a NoCloud seed, real cloud-init creates the user and installs
// the injected host key, and the test logs in over SSH pinning exactly
// that key.
func TestBootDebianGuest(t *testing.T) {
	img := guestImage(t)
	ctx := t.Context()

	accel, why, err := DetectAccel(ctx, "", img.Kernel)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accelerator: %s", why)

	const user, hostname = "runner", "job-42"
	client, host, other := newKeyPair(t), newKeyPair(t), newKeyPair(t)
	body, err := yaml.Marshal(cloudConfig{
		Users: []cloudUser{{
			Name: user, Shell: "/bin/bash", Sudo: "ALL=(ALL) NOPASSWD:ALL", LockPasswd: true,
			SSHAuthorizedKeys: []string{client.authorizedKey},
		}},
		DisableRoot:    true,
		SSHDeleteKeys:  true,
		SSHGenKeyTypes: []string{"ed25519"},
		SSHKeys:        map[string]string{"ed25519_private": host.privatePEM, "ed25519_public": host.authorizedKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := MetaData{InstanceID: NewInstanceID(), Hostname: hostname}.Render(NoCloud)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	vm := BootForTest(t, Options{
		Kernel: img.Kernel, Initrd: img.Initrd, KernelCmdline: img.KernelCmdline, Disk: img.Disk,
		Seed:  &Seed{UserData: append([]byte("#cloud-config\n"), body...), MetaData: meta},
		Accel: accel, CPUs: 2, MemoryMiB: 1024,
	})
	banner := time.Since(start)

	config := func(hostKey ssh.PublicKey, algorithms ...string) *ssh.ClientConfig {
		return &ssh.ClientConfig{
			User:              user,
			Auth:              []ssh.AuthMethod{ssh.PublicKeys(client.signer)},
			HostKeyCallback:   ssh.FixedHostKey(hostKey),
			HostKeyAlgorithms: algorithms,
			Timeout:           30 * time.Second,
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	// The pinned key logs in ...
	c, err := dialGuest(dctx, vm.SSHAddr(), config(host.public))
	if err != nil {
		t.Fatalf("log in with the injected host key pinned: %v", err)
	}
	defer c.Close()
	login := time.Since(start)

	// ... any other expected key is refused ...
	if bad, err := dialGuest(dctx, vm.SSHAddr(), config(other.public)); err == nil {
		bad.Close()
		t.Error("the guest was accepted with a different pinned host key")
	} else if !strings.Contains(err.Error(), "host key mismatch") {
		t.Errorf("dial with a different pinned host key: %v, want a host key mismatch", err)
	}
	// ... and the guest offers no host key of another type (the image
	// ships none and cloud-init generates only ed25519).
	for _, alg := range []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521} {
		_, err := ssh.Dial("tcp", vm.SSHAddr(), config(host.public, alg))
		if err == nil || !strings.Contains(err.Error(), "no common algorithm for host key") {
			t.Errorf("dial asking for a %s host key: %v, want no common algorithm", alg, err)
		}
	}

	status := run(t, c, "cloud-init status --wait --long")
	cloudInitDone := time.Since(start)
	if !strings.Contains(status, "status: done") {
		t.Errorf("cloud-init status --wait:\n%s\nwant status: done", status)
	}
	if uname := run(t, c, "uname -a"); !strings.Contains(uname, img.KernelVersion) || !strings.Contains(uname, hostname) {
		t.Errorf("uname -a = %q, want kernel %s on host %s", uname, img.KernelVersion, hostname)
	}
	if git := run(t, c, "git --version && git lfs version"); !strings.HasPrefix(git, "git version ") || !strings.Contains(git, "git-lfs/") {
		t.Errorf("git --version && git lfs version = %q", git)
	}
	if id := run(t, c, "id -un; sudo -n id -un"); id != user+"\nroot" {
		t.Errorf("id -un; sudo -n id -un = %q, want %q", id, user+"\nroot")
	}
	if got := run(t, c, "sudo -n cat /etc/ssh/ssh_host_ed25519_key.pub"); !bytes.Equal(ssh.MarshalAuthorizedKey(mustParse(t, got)), ssh.MarshalAuthorizedKey(host.public)) {
		t.Errorf("guest's host key %q is not the injected %q", got, host.authorizedKey)
	}
	if keys := run(t, c, "ls /etc/ssh | grep -c '^ssh_host_' || true"); keys != "2" {
		t.Errorf("the guest has %s ssh_host_* files, want 2 (the injected ed25519 pair)", keys)
	}
	if mid := run(t, c, "cat /etc/machine-id"); len(mid) != 32 {
		t.Errorf("machine-id %q: want one generated at first boot", mid)
	}
	if resolv := run(t, c, "readlink /etc/resolv.conf; networkctl list --no-legend | grep -c routable"); !strings.HasPrefix(resolv, "../run/systemd/resolve/stub-resolv.conf\n") || strings.HasSuffix(resolv, "\n0") {
		t.Errorf("network: %q, want resolved's stub resolver and a routable link", resolv)
	}
	t.Logf("timings (%s): SSH banner %s, login %s, cloud-init done %s after QEMU start",
		accel, banner.Round(100*time.Millisecond), login.Round(100*time.Millisecond), cloudInitDone.Round(100*time.Millisecond))
	t.Logf("guest boot: %s", run(t, c, "systemd-analyze || true"))

	if err := vm.Stop(); err != nil {
		t.Error(err)
	}
	if _, err := ssh.Dial("tcp", vm.SSHAddr(), config(host.public)); err == nil {
		t.Error("the guest still answers after Stop")
	}
}

func mustParse(t *testing.T, authorizedKey string) ssh.PublicKey {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		t.Fatalf("parse %q: %v", authorizedKey, err)
	}
	return k
}
