//go:build linux

package microvm

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testLog sends each line written to it to t.Log.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Helper()
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(line)
	}
	return len(p), nil
}

// TestBuildDebianBookworm builds the real image (or finds it in the cache:
// a cold build takes 2-3 minutes and needs root and network access to the
// Debian mirror) and checks what the image must be: every package
// configured, the packages jobs need, no SSH host keys, an empty
// machine-id, the recipe's overlay, a root file system the kernel command
// line can find.
func TestBuildDebianBookworm(t *testing.T) {
	const guest = "debian-bookworm"
	img, err := Build(t.Context(), BuildOptions{Guest: guest, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s: qcow2 %d MiB (virtual %d MiB), kernel %s, built in %d s",
		img.Dir, img.DiskSize>>20, img.DiskVirtualSize>>20, img.KernelVersion, img.BuildSeconds)

	t.Run("second build is a cache hit", func(t *testing.T) {
		var log bytes.Buffer
		again, err := Build(t.Context(), BuildOptions{Guest: guest, Log: &log})
		if err != nil {
			t.Fatal(err)
		}
		if again.Dir != img.Dir || !strings.Contains(log.String(), "cache hit") {
			t.Errorf("second build: dir %s (first %s), log %q: want a cache hit", again.Dir, img.Dir, log.String())
		}
	})

	t.Run("manifest", func(t *testing.T) {
		pkgs, err := img.Packages()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range append(requiredPackages, "linux-image-"+img.KernelVersion) {
			if pkgs[p] == "" {
				t.Errorf("manifest has no %s", p)
			}
		}
		t.Logf("%d packages; cloud-init %s, openssh-server %s, git %s, kernel %s",
			len(pkgs), pkgs["cloud-init"], pkgs["openssh-server"], pkgs["git"], img.KernelVersion)
	})

	t.Run("disk", func(t *testing.T) {
		out, err := exec.Command(lookPath(t, "qemu-img", "qemu-utils"), "info", "--output=json", img.Disk).Output()
		if err != nil {
			t.Fatalf("qemu-img info %s: %v", img.Disk, err)
		}
		var info struct {
			Format      string `json:"format"`
			VirtualSize int64  `json:"virtual-size"`
		}
		if err := json.Unmarshal(out, &info); err != nil {
			t.Fatal(err)
		}
		if info.Format != "qcow2" || info.VirtualSize != img.DiskVirtualSize {
			t.Errorf("qemu-img info: format %s, virtual size %d; image.json says qcow2, %d", info.Format, info.VirtualSize, img.DiskVirtualSize)
		}
		fi, err := os.Stat(img.Disk)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != img.DiskSize || fi.Size() >= img.DiskVirtualSize/4 {
			t.Errorf("qcow2 is %d bytes (image.json: %d), want it compressed well below the virtual %d", fi.Size(), img.DiskSize, img.DiskVirtualSize)
		}
		if !strings.Contains(img.KernelCmdline, "root=LABEL="+img.RootLabel) || !strings.Contains(img.KernelCmdline, "console=ttyS0") {
			t.Errorf("kernel command line %q does not mount LABEL=%s or does not log to ttyS0", img.KernelCmdline, img.RootLabel)
		}
	})

	t.Run("root file system", func(t *testing.T) {
		raw := filepath.Join(t.TempDir(), "root.raw")
		if out, err := exec.Command(lookPath(t, "qemu-img", "qemu-utils"), "convert", "-O", "raw", img.Disk, raw).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img convert: %v: %s", err, out)
		}
		blkid, err := exec.Command(lookPath(t, "blkid", "util-linux"), "-p", "-o", "export", raw).Output()
		if err != nil {
			t.Fatalf("blkid %s: %v", raw, err)
		}
		for _, want := range []string{"TYPE=ext4", "LABEL=" + img.RootLabel} {
			if !strings.Contains(string(blkid), want+"\n") {
				t.Errorf("blkid: %q has no %s", blkid, want)
			}
		}

		debugfs := lookPath(t, "debugfs", "e2fsprogs")
		fsCmd := func(request string) string {
			t.Helper()
			out, err := exec.Command(debugfs, "-R", request, raw).Output()
			if err != nil {
				t.Fatalf("debugfs -R %q: %v", request, err)
			}
			return string(out)
		}

		if ls := fsCmd("ls /etc/ssh"); strings.Contains(ls, "ssh_host_") || !strings.Contains(ls, "sshd_config") {
			t.Errorf("/etc/ssh must have sshd_config and no host keys: %s", ls)
		}
		if stat := fsCmd("stat /etc/machine-id"); !strings.Contains(stat, "Size: 0\n") {
			t.Errorf("/etc/machine-id must be empty: %s", stat)
		}
		if fstab := fsCmd("cat /etc/fstab"); !strings.Contains(fstab, "LABEL="+img.RootLabel+"\t/\t") {
			t.Errorf("/etc/fstab does not mount LABEL=%s on /: %q", img.RootLabel, fstab)
		}
		if ls := fsCmd("ls /var/lib/cloud"); strings.Contains(ls, "instance") {
			t.Errorf("/var/lib/cloud holds cloud-init state from the build: %s", ls)
		}

		// Every file of the recipe's overlay is in the image, unchanged.
		overlay := filepath.Join("guests", guest, "rootfs")
		err = filepath.WalkDir(overlay, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			want, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(overlay, p)
			if got := fsCmd("cat /" + filepath.ToSlash(rel)); got != string(want) {
				t.Errorf("/%s in the image differs from %s", rel, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		// dpkg's own record: everything installed and configured.
		status := fsCmd("cat /var/lib/dpkg/status")
		var pkg string
		for _, line := range strings.Split(status, "\n") {
			if strings.HasPrefix(line, "Package: ") {
				pkg = strings.TrimPrefix(line, "Package: ")
			}
			if strings.HasPrefix(line, "Status: ") && line != "Status: install ok installed" {
				t.Errorf("package %s: %s", pkg, line)
			}
		}
		if pkg == "" {
			t.Errorf("no packages in /var/lib/dpkg/status: %.200q", status)
		}
	})
}
