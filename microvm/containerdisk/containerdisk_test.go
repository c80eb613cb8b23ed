package containerdisk

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What KubeVirt needs, spelled out rather than taken from the package's
// constants: virt-launcher's qemu user (107) must be able to read the disk.
const (
	wantFileMode = 0o440
	wantDirMode  = 0o555
	wantUID      = 107
	wantGID      = 107
)

// inputs are the files a test packs.
type inputs struct {
	disk, kernel, initrd string
}

// makeInputs creates a real (empty, 64 MiB virtual) qcow2 with qemu-img
// and random kernel and initrd files.
func makeInputs(t *testing.T) inputs {
	t.Helper()
	dir := t.TempDir()
	in := inputs{
		disk:   filepath.Join(dir, "root.qcow2"),
		kernel: filepath.Join(dir, "vmlinuz"),
		initrd: filepath.Join(dir, "initrd.img"),
	}
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Fatalf("qemu-img not found: install the Debian package qemu-utils (or run microvm/install-deps.sh): %v", err)
	}
	if out, err := exec.Command(qemuImg, "create", "-q", "-f", "qcow2", in.disk, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	for _, p := range []string{in.kernel, in.initrd} {
		b := make([]byte, 100<<10)
		_, _ = rand.Read(b)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// entry is one tar entry of the layer as a test sees it.
type entry struct {
	typ      byte
	mode     int64
	uid, gid int
	size     int64
	mtime    time.Time
	sha256   string
}

// readLayer returns the entries of the image's only layer, by name, and
// their order.
func readLayer(t *testing.T, img v1.Image, ociMediaType bool) (map[string]entry, []string) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("image has %d layers, want 1", len(layers))
	}
	mt, err := layers[0].MediaType()
	if ociMediaType && (err != nil || mt != types.OCILayer) {
		t.Errorf("layer media type = %q (%v), want %q", mt, err, types.OCILayer)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	entries := map[string]entry{}
	var order []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = entry{h.Typeflag, h.Mode, h.Uid, h.Gid, h.Size, h.ModTime, hex.EncodeToString(sum.Sum(nil))}
		order = append(order, h.Name)
	}
	return entries, order
}

func TestBuildWritesKubeVirtContainerDisk(t *testing.T) {
	in := makeInputs(t)
	created := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	img, err := Build(context.Background(), Options{
		Disk: in.disk, Name: "debian-bookworm", Kernel: in.kernel, Initrd: in.initrd,
		Created: created, Labels: map[string]string{"io.example.guest": "debian-bookworm"},
		TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()

	out := t.TempDir()
	const ref = "registry.example.com/ci/debian-bookworm:latest"
	tarPath := filepath.Join(out, "image.tar")
	layoutDir := filepath.Join(out, "oci")
	if err := img.WriteTarball(tarPath, ref); err != nil {
		t.Fatal(err)
	}
	if err := img.WriteOCILayout(layoutDir, ref); err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	wantConfig, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	// A docker archive keeps the config and the layers but not the
	// manifest (readers synthesize a Docker one), so only the OCI layout
	// is checked for manifest media types and annotations.
	openers := []struct {
		name         string
		manifestKept bool
		open         func(t *testing.T) v1.Image
	}{
		{"docker-archive tarball", false, func(t *testing.T) v1.Image {
			tag, err := name.NewTag(ref)
			if err != nil {
				t.Fatal(err)
			}
			i, err := tarball.ImageFromPath(tarPath, &tag)
			if err != nil {
				t.Fatalf("open %s as %s: %v", tarPath, ref, err)
			}
			return i
		}},
		{"OCI layout", true, func(t *testing.T) v1.Image {
			idx, err := layout.ImageIndexFromPath(layoutDir)
			if err != nil {
				t.Fatal(err)
			}
			m, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Manifests) != 1 {
				t.Fatalf("index has %d manifests, want 1", len(m.Manifests))
			}
			if got := m.Manifests[0].Annotations[LabelRefName]; got != ref {
				t.Errorf("index annotation %s = %q, want %q", LabelRefName, got, ref)
			}
			if m.Manifests[0].Digest != want {
				t.Errorf("index points at %s, want %s", m.Manifests[0].Digest, want)
			}
			i, err := idx.Image(m.Manifests[0].Digest)
			if err != nil {
				t.Fatal(err)
			}
			return i
		}},
	}
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			got := o.open(t)
			m, err := got.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.Digest != wantConfig {
				t.Errorf("config %s, want the built image's %s", m.Config.Digest, wantConfig)
			}
			if o.manifestKept && (m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON) {
				t.Errorf("media types manifest %q config %q, want OCI", m.MediaType, m.Config.MediaType)
			}
			cf, err := got.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Architecture != "amd64" || cf.OS != "linux" {
				t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
			}
			if !cf.Created.Equal(created) {
				t.Errorf("config created %s, want %s", cf.Created.Time, created)
			}
			wantLabels := map[string]string{
				LabelTitle:         "debian-bookworm.qcow2",
				LabelCreated:       "2026-11-28T12:00:00Z",
				LabelDiskPath:      "/disk/debian-bookworm.qcow2",
				LabelKernelPath:    "/boot/vmlinuz",
				LabelInitrdPath:    "/boot/initrd.img",
				"io.example.guest": "debian-bookworm",
			}
			for k, v := range wantLabels {
				if cf.Config.Labels[k] != v {
					t.Errorf("config label %s = %q, want %q", k, cf.Config.Labels[k], v)
				}
				if o.manifestKept && m.Annotations[k] != v {
					t.Errorf("manifest annotation %s = %q, want %q", k, m.Annotations[k], v)
				}
			}
			if !strings.Contains(cf.Config.Labels[LabelDescription], "KubeVirt containerDisk") {
				t.Errorf("description label %q does not say what the image is", cf.Config.Labels[LabelDescription])
			}

			entries, order := readLayer(t, got, o.manifestKept)
			wantOrder := []string{"boot/", "disk/", "disk/debian-bookworm.qcow2", "boot/vmlinuz", "boot/initrd.img"}
			if strings.Join(order, " ") != strings.Join(wantOrder, " ") {
				t.Errorf("layer entries %q, want %q", order, wantOrder)
			}
			files := map[string]string{
				"disk/debian-bookworm.qcow2": in.disk,
				"boot/vmlinuz":               in.kernel,
				"boot/initrd.img":            in.initrd,
			}
			for n, src := range files {
				e, ok := entries[n]
				if !ok {
					t.Errorf("layer has no %s", n)
					continue
				}
				fi, err := os.Stat(src)
				if err != nil {
					t.Fatal(err)
				}
				if e.typ != tar.TypeReg || e.mode != wantFileMode || e.uid != wantUID || e.gid != wantGID {
					t.Errorf("%s: type %c mode %o owner %d:%d, want a regular file, mode %o, owner %d:%d",
						n, e.typ, e.mode, e.uid, e.gid, wantFileMode, wantUID, wantGID)
				}
				if e.size != fi.Size() || e.sha256 != sha256File(t, src) {
					t.Errorf("%s: %d bytes sha256 %s, want the %d bytes of %s", n, e.size, e.sha256, fi.Size(), src)
				}
				if !e.mtime.Equal(created) {
					t.Errorf("%s: mtime %s, want %s", n, e.mtime, created)
				}
			}
			for _, d := range []string{"disk/", "boot/"} {
				e := entries[d]
				if e.typ != tar.TypeDir || e.mode != wantDirMode || e.uid != wantUID || e.gid != wantGID {
					t.Errorf("%s: type %c mode %o owner %d:%d, want a directory, mode %o, owner %d:%d",
						d, e.typ, e.mode, e.uid, e.gid, wantDirMode, wantUID, wantGID)
				}
			}
		})
	}
}

func TestBuildIsReproducible(t *testing.T) {
	in := makeInputs(t)
	digests := map[v1.Hash]bool{}
	for i := 0; i < 2; i++ {
		img, err := Build(context.Background(), Options{Disk: in.disk, Kernel: in.kernel, Initrd: in.initrd})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests[d] = true
		if err := img.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(img.layerPath); !os.IsNotExist(err) {
			t.Errorf("Close left the layer file %s (stat: %v)", img.layerPath, err)
		}
	}
	if len(digests) != 1 {
		t.Errorf("two builds of the same inputs gave %d digests: %v", len(digests), digests)
	}
}

func TestBuildDiskOnly(t *testing.T) {
	in := makeInputs(t)
	img, err := Build(context.Background(), Options{Disk: in.disk})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	entries, order := readLayer(t, img, true)
	if want := "disk/ disk/disk.qcow2"; strings.Join(order, " ") != want {
		t.Errorf("layer entries %q, want %q", order, want)
	}
	if entries["disk/disk.qcow2"].size == 0 {
		t.Error("disk/disk.qcow2 is empty")
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cf.Config.Labels[LabelKernelPath]; ok {
		t.Errorf("label %s set without a kernel", LabelKernelPath)
	}
	if !cf.Created.Equal(time.Unix(0, 0)) {
		t.Errorf("created %s, want the Unix epoch when Options.Created is zero", cf.Created.Time)
	}
}

func TestBuildRejectsInvalidOptions(t *testing.T) {
	in := makeInputs(t)
	notQcow2 := filepath.Join(t.TempDir(), "raw.img")
	if err := os.WriteFile(notQcow2, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
		want []string // substrings of the error
	}{
		{"no disk", Options{}, []string{"option Disk", "required"}},
		{"missing disk", Options{Disk: "/nonexistent/disk.qcow2"}, []string{"option Disk", "/nonexistent/disk.qcow2"}},
		{"disk is a directory", Options{Disk: t.TempDir()}, []string{"option Disk", "regular file"}},
		{"disk not qcow2", Options{Disk: notQcow2}, []string{"option Disk", notQcow2, "qcow2"}},
		{"name with slash", Options{Disk: in.disk, Name: "../etc/x"}, []string{"option Name", "../etc/x", "must match"}},
		{"name with qcow2 suffix", Options{Disk: in.disk, Name: "x.qcow2"}, []string{"option Name", "x.qcow2", ".qcow2"}},
		{"kernel without initrd", Options{Disk: in.disk, Kernel: in.kernel}, []string{"Kernel", "Initrd", "both"}},
		{"missing kernel", Options{Disk: in.disk, Kernel: "/nonexistent/k", Initrd: in.initrd}, []string{"option Kernel", "/nonexistent/k"}},
		{"bad label key", Options{Disk: in.disk, Labels: map[string]string{"bad key": "v"}}, []string{"option Labels key", "bad key", "must match"}},
		{"label value with newline", Options{Disk: in.disk, Labels: map[string]string{"k": "a\nb"}}, []string{"option Labels", "control characters"}},
		{"bad architecture", Options{Disk: in.disk, Architecture: "x86"}, []string{"option Architecture", "x86", "amd64"}},
		{"missing temp dir", Options{Disk: in.disk, TempDir: "/nonexistent/tmp"}, []string{"option TempDir", "/nonexistent/tmp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := Build(context.Background(), tt.opts)
			if err == nil {
				img.Close()
				t.Fatalf("Build(%+v) succeeded, want an error", tt.opts)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestBuildHonoursCancel(t *testing.T) {
	in := makeInputs(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tmp := t.TempDir()
	if _, err := Build(ctx, Options{Disk: in.disk, TempDir: tmp}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Build with a cancelled context: %v, want context.Canceled", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("a cancelled Build left %d files in TempDir", len(left))
	}
}

func TestWriteRejectsBadTargets(t *testing.T) {
	in := makeInputs(t)
	img, err := Build(context.Background(), Options{Disk: in.disk})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "other"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		write func() error
		want  []string
	}{
		{"layout dir not empty", func() error { return img.WriteOCILayout(full, "example/x:1") }, []string{full, "empty"}},
		{"layout bad ref", func() error { return img.WriteOCILayout(t.TempDir(), "UPPER/Case::") }, []string{"reference", "UPPER/Case::"}},
		{"tarball bad ref", func() error { return img.WriteTarball(filepath.Join(t.TempDir(), "x.tar"), "a b") }, []string{"reference", "a b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.write()
			if err == nil {
				t.Fatal("write succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
