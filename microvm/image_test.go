package microvm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// validImageJSON is an image.json as build.sh writes it.
func validImageJSON() map[string]any {
	return map[string]any{
		"guest": "debian-bookworm", "hash": "0123456789abcdef",
		"disk": "disk.qcow2", "diskFormat": "qcow2", "diskSize": 3, "diskVirtualSize": 8589934592,
		"kernel": "vmlinuz", "initrd": "initrd.img", "kernelVersion": "6.1.0-50-cloud-amd64",
		"kernelCmdline": "console=ttyS0 root=LABEL=rootfs rw", "rootLabel": "rootfs",
		"manifest": "manifest.txt", "suite": "bookworm", "variant": "minbase", "arch": "amd64",
		"mirror": "http://deb.debian.org/debian", "built": "2026-11-28T23:15:02Z", "buildSeconds": 150,
	}
}

// writeImageDir writes an image directory with image.json j and the files
// it names (those in skip left out).
func writeImageDir(t *testing.T, j map[string]any, skip ...string) string {
	t.Helper()
	dir := t.TempDir()
	data, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "image.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"disk.qcow2":   "QFI",
		"vmlinuz":      "kernel",
		"initrd.img":   "initrd",
		"manifest.txt": "bash\t5.2.15-2+b9\tamd64\ncloud-init\t22.4.2-1+deb12u4\tall\n",
	}
	for name, content := range files {
		if strings.Contains(strings.Join(skip, " "), name) {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadImage(t *testing.T) {
	dir := writeImageDir(t, validImageJSON())
	img, err := LoadImage(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Image{
		Dir: dir, Guest: "debian-bookworm", Hash: "0123456789abcdef",
		Disk: filepath.Join(dir, "disk.qcow2"), DiskFormat: "qcow2", DiskSize: 3, DiskVirtualSize: 8589934592,
		RootLabel: "rootfs", Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img"),
		KernelVersion: "6.1.0-50-cloud-amd64", KernelCmdline: "console=ttyS0 root=LABEL=rootfs rw",
		Manifest: filepath.Join(dir, "manifest.txt"), Suite: "bookworm", Variant: "minbase", Arch: "amd64",
		Mirror: "http://deb.debian.org/debian", Built: time.Date(2026, 11, 28, 23, 15, 2, 0, time.UTC), BuildSeconds: 150,
	}
	if *img != want {
		t.Errorf("LoadImage =\n%+v\nwant\n%+v", *img, want)
	}
	pkgs, err := img.Packages()
	if err != nil {
		t.Fatal(err)
	}
	if pkgs["cloud-init"] != "22.4.2-1+deb12u4" || pkgs["bash"] != "5.2.15-2+b9" || len(pkgs) != 2 {
		t.Errorf("Packages = %v", pkgs)
	}
}

func TestLoadImageRejects(t *testing.T) {
	with := func(key string, value any) map[string]any {
		j := validImageJSON()
		j[key] = value
		return j
	}
	tests := []struct {
		name string
		dir  func(t *testing.T) string
		want []string
	}{
		{"no image.json", func(t *testing.T) string { return t.TempDir() }, []string{"image.json", "no such file"}},
		{"not JSON", func(t *testing.T) string {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "image.json"), []byte("{"), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}, []string{"image.json"}},
		{"bad guest", func(t *testing.T) string { return writeImageDir(t, with("guest", "a/b")) }, []string{"guest", `"a/b"`, "must match"}},
		{"raw disk", func(t *testing.T) string { return writeImageDir(t, with("diskFormat", "raw")) }, []string{"diskFormat", `"raw"`, "qcow2"}},
		{"bad built", func(t *testing.T) string { return writeImageDir(t, with("built", "yesterday")) }, []string{"built", "yesterday", "RFC 3339"}},
		{"path outside", func(t *testing.T) string { return writeImageDir(t, with("kernel", "../../etc/passwd")) }, []string{"kernel", "../../etc/passwd", "file name in the image directory"}},
		{"missing disk", func(t *testing.T) string { return writeImageDir(t, validImageJSON(), "disk.qcow2") }, []string{"disk", "no such file"}},
		{"missing initrd", func(t *testing.T) string { return writeImageDir(t, validImageJSON(), "initrd.img") }, []string{"initrd", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir(t)
			img, err := LoadImage(dir)
			if err == nil {
				t.Fatalf("LoadImage succeeded: %+v", img)
			}
			for _, w := range append(tt.want, dir) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestPackagesRejectsBadManifest(t *testing.T) {
	dir := writeImageDir(t, validImageJSON())
	if err := os.WriteFile(filepath.Join(dir, "manifest.txt"), []byte("bash 5.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := LoadImage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.Packages(); err == nil || !strings.Contains(err.Error(), "manifest.txt:1") {
		t.Errorf("Packages of a malformed manifest: %v, want an error naming manifest.txt:1", err)
	}
}
