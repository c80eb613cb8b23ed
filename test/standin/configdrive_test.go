package standin_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/windows-cloudbase/cloudbase"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/qemu"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// TestWindowsConfigDriveLayout renders first-boot data with the
// windows-cloudbase plugin, stores it in a Secret referenced by a
// cloudInitConfigDrive volume, builds the stand-in's seed for that VMI and
// writes it with qemu.WriteSeed. The ISO must have KubeVirt's ConfigDrive
// layout (volume "config-2"; openstack/latest/user_data and
// meta_data.json), and Cloudbase-Init's readers must find in it what they
// document: meta_data.json's "uuid" (instance id) and "hostname", and a
// user_data that its UserDataPlugin parses (read with the plugin's own
// read_userdata.py: Python's email package and PyYAML) into the cloud-config
// user and the PowerShell script.
func TestWindowsConfigDriveLayout(t *testing.T) {
	xorriso, err := exec.LookPath("xorriso")
	if err != nil {
		t.Fatal("xorriso is missing: install the Debian package xorriso")
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is missing: install the Debian packages python3 and python3-yaml")
	}
	client, err := sshd.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	host, err := sshd.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	const password = "Zq8-rT_w.Kp+2=@LmN4x" // Cloudbase-Init's 20 characters, Windows' complexity
	resp, err := cloudbase.New("").Render(t.Context(), &pluginv1.RenderRequest{
		Username: "runner", AuthorizedKey: client.AuthorizedKey, Password: password,
		HostKey:  &pluginv1.HostKey{Type: ssh.KeyAlgoED25519, PrivateKey: host.PrivateKeyPEM, PublicKey: host.AuthorizedKey},
		Hostname: "runner-1-77", InstanceId: "runner-1-77-abc",
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDatasource() != pluginv1.Datasource_DATASOURCE_CONFIG_DRIVE {
		t.Fatalf("windows-cloudbase asks for datasource %s, want CONFIG_DRIVE", resp.GetDatasource())
	}

	// A VMI as the core builds it for Windows; no stand-in may drive it
	// (a Windows guest cannot boot here), so it stays unschedulable.
	f := newFixture(t, env, func(*kubevirtv1.VirtualMachineInstance) standin.Behaviour {
		return standin.Unschedulable("0/1 nodes are available: no Windows node")
	})
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "runner-1-77-credentials"}, Data: map[string][]byte{"userdata": resp.GetUserData()}}
	if len(resp.GetNetworkData()) > 0 {
		secret.Data["networkdata"] = resp.GetNetworkData()
	}
	if _, err := f.kube.CoreV1().Secrets(f.ns).Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ref := &corev1.LocalObjectReference{Name: secret.Name}
	vmi, err := f.virt.KubevirtV1().VirtualMachineInstances(f.ns).Create(t.Context(), &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "runner-1-77"},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{
			Volumes: []kubevirtv1.Volume{
				{Name: "containerdisk", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "registry.example.com/ci/windows-2022:latest"}}},
				{Name: "cloudinitdisk", VolumeSource: kubevirtv1.VolumeSource{CloudInitConfigDrive: &kubevirtv1.CloudInitConfigDriveSource{UserDataSecretRef: ref}}},
			},
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seed, err := f.ctl.Seed(t.Context(), vmi.Name)
	if err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(t.TempDir(), "seed.iso")
	if err := qemu.WriteSeed(t.Context(), iso, *seed); err != nil {
		t.Fatal(err)
	}

	// The ISO as a guest sees it: volume id and files.
	pvd, err := exec.Command(xorriso, "-indev", iso, "-pvd_info").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso -pvd_info: %v\n%s", err, pvd)
	}
	if m := regexp.MustCompile(`(?m)^Volume Id\s*:\s*(\S+)`).FindSubmatch(pvd); m == nil || string(m[1]) != qemu.ConfigDriveLabel {
		t.Errorf("volume id %q, want %q (Cloudbase-Init and cloud-init find the drive by it)\n%s", m, qemu.ConfigDriveLabel, pvd)
	}
	out := filepath.Join(t.TempDir(), "drive")
	if b, err := exec.Command(xorriso, "-osirrox", "on", "-indev", iso, "-extract", "/", out).CombinedOutput(); err != nil {
		t.Fatalf("xorriso -extract: %v\n%s", err, b)
	}
	var files []string
	if err := filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(out, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	want := []string{"openstack/latest/meta_data.json", "openstack/latest/user_data"}
	if len(resp.GetNetworkData()) > 0 {
		want = []string{"openstack/latest/meta_data.json", "openstack/latest/network_data.json", "openstack/latest/user_data"}
	}
	if !slices.Equal(files, want) {
		t.Fatalf("config drive files %v, want KubeVirt's %v", files, want)
	}

	// meta_data.json: Cloudbase-Init's ConfigDrive (OpenStack) service
	// takes the instance id from "uuid" and the host name from
	// "hostname"; KubeVirt fills both from the VMI.
	raw, err := os.ReadFile(filepath.Join(out, "openstack/latest/meta_data.json"))
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatalf("meta_data.json is not JSON: %v\n%s", err, raw)
	}
	for key, value := range map[string]string{"uuid": string(vmi.UID), "instance_id": string(vmi.UID), "hostname": vmi.Name} {
		if meta[key] != value {
			t.Errorf("meta_data.json %s = %v, want %q (%s)", key, meta[key], value, raw)
		}
	}

	// user_data: byte for byte what the plugin rendered, and what
	// Cloudbase-Init's UserDataPlugin would act on.
	userData, err := os.ReadFile(filepath.Join(out, "openstack/latest/user_data"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(userData, resp.GetUserData()) {
		t.Fatal("user_data on the drive differs from the rendered user-data")
	}
	root, err := kubeenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, filepath.Join(root, "plugins", "windows-cloudbase", "cloudbase", "testdata", "read_userdata.py"))
	cmd.Stdin = bytes.NewReader(userData)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	parsed, err := cmd.Output()
	if err != nil {
		t.Fatalf("read_userdata.py (needs python3-yaml): %v\n%s", err, stderr.String())
	}
	var parts []struct {
		ContentType string         `json:"content_type"`
		Filename    *string        `json:"filename"`
		Payload     *string        `json:"payload"`
		CloudConfig map[string]any `json:"cloud_config"`
	}
	if err := json.Unmarshal(parsed, &parts); err != nil {
		t.Fatalf("read_userdata.py output: %v", err)
	}
	var types []string
	for _, p := range parts {
		types = append(types, p.ContentType)
	}
	if want := []string{"multipart/mixed", "text/cloud-config", "text/x-shellscript"}; !slices.Equal(types, want) {
		t.Fatalf("Cloudbase-Init reads parts %v, want %v", types, want)
	}
	cc := parts[1].CloudConfig
	if cc["set_hostname"] != "runner-1-77" {
		t.Errorf("cloud-config set_hostname = %v", cc["set_hostname"])
	}
	users, _ := cc["users"].([]any)
	if len(users) != 1 {
		t.Fatalf("cloud-config users = %v", cc["users"])
	}
	u, _ := users[0].(map[string]any)
	keys, _ := u["ssh_authorized_keys"].([]any)
	if u["name"] != "runner" || u["passwd"] != password || len(keys) != 1 || strings.TrimSpace(keys[0].(string)) != strings.TrimSpace(client.AuthorizedKey) {
		t.Errorf("cloud-config user name %v, passwd set %t, keys %v: want runner with the job's password and key", u["name"], u["passwd"] == password, keys)
	}
	if s := parts[2]; s.Filename == nil || !strings.HasSuffix(*s.Filename, ".ps1") || s.Payload == nil || !strings.Contains(*s.Payload, "sshd") {
		t.Errorf("script part %v: want a .ps1 that configures sshd", s.Filename)
	}
}
