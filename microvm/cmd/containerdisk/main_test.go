package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// imageDir writes a microvm image directory with a real (empty) qcow2.
func imageDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Fatal("qemu-img not found: install the Debian package qemu-utils (or run microvm/install-deps.sh)")
	}
	if out, err := exec.Command(qemuImg, "create", "-q", "-f", "qcow2", filepath.Join(dir, "disk.qcow2"), "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	for name, content := range map[string]string{"vmlinuz": "kernel", "initrd.img": "initrd", "manifest.txt": "bash\t5.2\tamd64\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j, err := json.Marshal(map[string]any{
		"guest": "debian-bookworm", "hash": "0123456789abcdef", "disk": "disk.qcow2", "diskFormat": "qcow2",
		"kernel": "vmlinuz", "initrd": "initrd.img", "manifest": "manifest.txt", "kernelVersion": "6.1.0-50-cloud-amd64",
		"kernelCmdline": "console=ttyS0 root=LABEL=rootfs rw", "arch": "amd64", "suite": "bookworm",
		"built": "2026-11-28T23:15:02Z",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "image.json"), j, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRunWritesTarball(t *testing.T) {
	dir := imageDir(t)
	out := filepath.Join(t.TempDir(), "image.tar")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-image-dir", dir, "-tarball", out, "-label", "team=ci"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	tag, err := name.NewTag("gitlab-runner-kubevirt/debian-bookworm:0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("open %s with the default tag: %v", out, err)
	}
	if got := strings.TrimSpace(stdout.String()); got == "" || !strings.HasPrefix(got, "sha256:") {
		t.Errorf("stdout %q, want the image digest", got)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"io.gitlab-runner-kubevirt.guest":                "debian-bookworm",
		"io.gitlab-runner-kubevirt.kernel-cmdline":       "console=ttyS0 root=LABEL=rootfs rw",
		"io.gitlab-runner-kubevirt.containerdisk.disk":   "/disk/debian-bookworm.qcow2",
		"io.gitlab-runner-kubevirt.containerdisk.kernel": "/boot/vmlinuz",
		"org.opencontainers.image.created":               "2026-11-28T23:15:02Z",
		"team":                                           "ci",
	}
	for k, v := range want {
		if cf.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
		}
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	dir := imageDir(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no image dir", []string{"-tarball", "x.tar"}, "flag -image-dir"},
		{"no output", []string{"-image-dir", dir}, "-oci-layout and -tarball"},
		{"not an image", []string{"-image-dir", t.TempDir(), "-tarball", "x.tar"}, "image.json"},
		{"bad label", []string{"-image-dir", dir, "-tarball", "x.tar", "-label", "novalue"}, `"novalue": must be KEY=VALUE`},
		{"bad name", []string{"-image-dir", dir, "-tarball", "x.tar", "-name", "a/b"}, `option Name "a/b"`},
		{"stray argument", []string{"-image-dir", dir, "-tarball", "x.tar", "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			if err == nil {
				t.Fatal("run succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}
