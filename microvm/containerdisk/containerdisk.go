// Package containerdisk packs a guest disk image into a KubeVirt
// containerDisk: an OCI image with one layer that holds
//
//	/disk/<name>.qcow2   the root disk (a VMI's spec.volumes[].containerDisk)
//	/boot/vmlinuz        optional: kernel and initrd for direct kernel boot
//	/boot/initrd.img     (spec.domain.firmware.kernelBoot.container)
//
// every file owned by 107:107 (the qemu user of KubeVirt's virt-launcher)
// with mode 0440, directories 0555, as KubeVirt's documentation asks
// ("readable for the user with the UID 107") and kubevirt/containerdisks
// builds them. The image carries OCI labels and annotations that say what
// is inside, and is written with github.com/google/go-containerregistry as
// an OCI image layout directory and/or a docker-archive tarball (what
// `crane push`, `docker load`, `ctr images import` and `kind load
// image-archive` read).
//
// Builds are reproducible: every timestamp is Options.Created, and the
// layer is gzip-compressed once, deterministically, so the same disk gives
// the same digest.
package containerdisk

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Layout of the image and ownership KubeVirt expects.
const (
	DiskDir    = "/disk"
	KernelPath = "/boot/vmlinuz"
	InitrdPath = "/boot/initrd.img"
	// QEMUUID and QEMUGID are KubeVirt's qemu user and group.
	QEMUUID = 107
	QEMUGID = 107
	// FileMode and DirMode are the modes of the image's files and
	// directories.
	FileMode = 0o440
	DirMode  = 0o555
)

// OCI annotation and label keys the image sets.
const (
	LabelTitle       = "org.opencontainers.image.title"
	LabelDescription = "org.opencontainers.image.description"
	LabelCreated     = "org.opencontainers.image.created"
	LabelRefName     = "org.opencontainers.image.ref.name"
	// LabelDiskPath and friends tell a VMI author where the files are.
	LabelDiskPath   = "io.gitlab-runner-kubevirt.containerdisk.disk"
	LabelKernelPath = "io.gitlab-runner-kubevirt.containerdisk.kernel"
	LabelInitrdPath = "io.gitlab-runner-kubevirt.containerdisk.initrd"
	// containerdImageName is the annotation `ctr images import` names the
	// image by.
	containerdImageName = "io.containerd.image.name"
)

// qcow2Magic starts every qcow2 file.
var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

var (
	namePattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	labelKeyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$`)
	archs           = []string{"amd64", "arm64", "ppc64le", "s390x"}
)

// Options configures Build.
type Options struct {
	// Disk is the qcow2 root disk. Required.
	Disk string
	// Name is the disk's file name in /disk without ".qcow2". Default "disk".
	Name string
	// Kernel and Initrd, both or neither, are added as /boot/vmlinuz and
	// /boot/initrd.img for KubeVirt's kernelBoot.
	Kernel string
	Initrd string
	// Labels are added to the image config's labels (and the manifest's
	// annotations). Keys must match ^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$;
	// values must be free of control characters.
	Labels map[string]string
	// Created is the image's creation time and every file's mtime. Zero
	// means the Unix epoch, for reproducible output.
	Created time.Time
	// Architecture is the image's platform architecture. Default "amd64".
	Architecture string
	// TempDir holds the compressed layer until Close. Default os.TempDir().
	TempDir string
}

// file is one regular file of the layer.
type file struct {
	path string // inside the image, absolute
	src  string // on the host
	size int64
}

// Image is a built containerDisk. Its layer lives in a temporary file until
// Close.
type Image struct {
	v1.Image
	layerPath string
	files     []file
}

// Files returns the paths of the regular files in the image.
func (img *Image) Files() []string {
	out := make([]string, len(img.files))
	for i, f := range img.files {
		out[i] = f.path
	}
	return out
}

// Close removes the temporary layer file. The image cannot be written
// afterwards.
func (img *Image) Close() error {
	if err := os.Remove(img.layerPath); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove layer %s: %w", img.layerPath, err)
	}
	return nil
}

// Build packs opts.Disk (and kernel and initrd) into a containerDisk
// image. Call Close on the result.
func Build(ctx context.Context, opts Options) (*Image, error) {
	files, err := opts.validate()
	if err != nil {
		return nil, fmt.Errorf("build containerdisk: %w", err)
	}
	created := opts.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC().Truncate(time.Second)
	arch := opts.Architecture
	if arch == "" {
		arch = "amd64"
	}

	tmp, err := os.CreateTemp(opts.TempDir, "containerdisk-layer-*.tar.gz")
	if err != nil {
		return nil, fmt.Errorf("build containerdisk: %w", err)
	}
	layerPath := tmp.Name()
	fail := func(err error) (*Image, error) {
		_ = tmp.Close()
		_ = os.Remove(layerPath)
		return nil, fmt.Errorf("build containerdisk: %w", err)
	}
	if err := writeLayer(ctx, tmp, files, created); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}

	layer, err := tarball.LayerFromFile(layerPath, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return fail(fmt.Errorf("read layer: %w", err))
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "gitlab-runner-kubevirt containerdisk: " + strings.Join(paths(files), " "),
			Comment:   "KubeVirt containerDisk",
		},
	})
	if err != nil {
		return fail(fmt.Errorf("append layer: %w", err))
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fail(fmt.Errorf("read config: %w", err))
	}
	cf = cf.DeepCopy()
	cf.Architecture = arch
	cf.OS = "linux"
	cf.Created = v1.Time{Time: created}
	cf.Config.Labels = opts.labels(files, created)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return fail(fmt.Errorf("set config: %w", err))
	}
	annotated, ok := mutate.Annotations(img, cf.Config.Labels).(v1.Image)
	if !ok {
		return fail(fmt.Errorf("annotate manifest: unexpected type"))
	}
	return &Image{Image: annotated, layerPath: layerPath, files: files}, nil
}

// validate checks opts and returns the layer's files in order.
func (opts Options) validate() ([]file, error) {
	if opts.Disk == "" {
		return nil, fmt.Errorf("option Disk %q: required: the qcow2 disk to pack", opts.Disk)
	}
	name := opts.Name
	if name == "" {
		name = "disk"
	}
	if !namePattern.MatchString(name) || strings.HasSuffix(name, ".qcow2") {
		return nil, fmt.Errorf("option Name %q: must match %s and not end in .qcow2 (it becomes %s/<Name>.qcow2)", opts.Name, namePattern, DiskDir)
	}
	disk, err := regularFile("Disk", opts.Disk)
	if err != nil {
		return nil, err
	}
	if err := checkQcow2(opts.Disk); err != nil {
		return nil, err
	}
	disk.path = path.Join(DiskDir, name+".qcow2")
	files := []file{disk}

	if (opts.Kernel == "") != (opts.Initrd == "") {
		return nil, fmt.Errorf("options Kernel %q and Initrd %q: set both (for kernelBoot) or neither", opts.Kernel, opts.Initrd)
	}
	if opts.Kernel != "" {
		k, err := regularFile("Kernel", opts.Kernel)
		if err != nil {
			return nil, err
		}
		i, err := regularFile("Initrd", opts.Initrd)
		if err != nil {
			return nil, err
		}
		k.path, i.path = KernelPath, InitrdPath
		files = append(files, k, i)
	}

	for k, v := range opts.Labels {
		if !labelKeyPattern.MatchString(k) {
			return nil, fmt.Errorf("option Labels key %q: must match %s", k, labelKeyPattern)
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) || len(v) > 4096 {
			return nil, fmt.Errorf("option Labels[%q] %q: must be at most 4096 bytes without control characters", k, v)
		}
	}
	if opts.Architecture != "" && !contains(archs, opts.Architecture) {
		return nil, fmt.Errorf("option Architecture %q: must be one of %s", opts.Architecture, strings.Join(archs, ", "))
	}
	if opts.TempDir != "" {
		if fi, err := os.Stat(opts.TempDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("option TempDir %q: must be an existing directory", opts.TempDir)
		}
	}
	return files, nil
}

// labels returns the config labels: the defaults, then opts.Labels.
func (opts Options) labels(files []file, created time.Time) map[string]string {
	l := map[string]string{
		LabelTitle:       path.Base(files[0].path),
		LabelDescription: "KubeVirt containerDisk: " + strings.Join(paths(files), ", "),
		LabelCreated:     created.Format(time.RFC3339),
		LabelDiskPath:    files[0].path,
	}
	if len(files) == 3 {
		l[LabelKernelPath] = KernelPath
		l[LabelInitrdPath] = InitrdPath
	}
	for k, v := range opts.Labels {
		l[k] = v
	}
	return l
}

func regularFile(option, p string) (file, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return file{}, fmt.Errorf("option %s %q: %w", option, p, err)
	}
	if !fi.Mode().IsRegular() {
		return file{}, fmt.Errorf("option %s %q: must be a regular file", option, p)
	}
	f, err := os.Open(p)
	if err != nil {
		return file{}, fmt.Errorf("option %s %q: must be readable: %w", option, p, err)
	}
	_ = f.Close()
	return file{src: p, size: fi.Size()}, nil
}

func checkQcow2(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("option Disk %q: %w", p, err)
	}
	defer f.Close()
	magic := make([]byte, len(qcow2Magic))
	if _, err := io.ReadFull(f, magic); err != nil || string(magic) != string(qcow2Magic) {
		return fmt.Errorf("option Disk %q: must be a qcow2 image (starting with \"QFI\\xfb\"; convert with qemu-img convert -O qcow2)", p)
	}
	return nil
}

// writeLayer writes the gzip-compressed tar of files to w: the parent
// directories first, then the files, all with fixed owner, modes and mtime.
func writeLayer(ctx context.Context, w io.Writer, files []file, mtime time.Time) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)

	dirs := map[string]bool{}
	for _, f := range files {
		dirs[path.Dir(f.path)] = true
	}
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		if err := tw.WriteHeader(header(tar.TypeDir, strings.TrimPrefix(d, "/")+"/", DirMode, 0, mtime)); err != nil {
			return fmt.Errorf("write layer: %w", err)
		}
	}
	for _, f := range files {
		if err := copyFile(ctx, tw, f, mtime); err != nil {
			return fmt.Errorf("write layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("write layer: %w", err)
	}
	return bw.Flush()
}

func header(typ byte, name string, mode int64, size int64, mtime time.Time) *tar.Header {
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     mode,
		Size:     size,
		Uid:      QEMUUID,
		Gid:      QEMUGID,
		Uname:    "qemu",
		Gname:    "qemu",
		ModTime:  mtime,
		Format:   tar.FormatPAX,
	}
}

func copyFile(ctx context.Context, tw *tar.Writer, f file, mtime time.Time) error {
	src, err := os.Open(f.src)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := tw.WriteHeader(header(tar.TypeReg, strings.TrimPrefix(f.path, "/"), FileMode, f.size, mtime)); err != nil {
		return err
	}
	n, err := io.Copy(tw, ctxReader{ctx, src})
	if err != nil {
		return fmt.Errorf("copy %s: %w", f.src, err)
	}
	if n != f.size {
		return fmt.Errorf("copy %s: size changed while reading (%d bytes, expected %d)", f.src, n, f.size)
	}
	return nil
}

// ctxReader stops reading when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func paths(files []file) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.path
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// WriteOCILayout writes the image as an OCI image layout in dir (created if
// missing; it must be empty), tagged ref in index.json
// (org.opencontainers.image.ref.name and io.containerd.image.name).
func (img *Image) WriteOCILayout(dir, ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("write OCI layout %s: reference %q: %w", dir, ref, err)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("write OCI layout %s: the directory must be empty or missing", dir)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write OCI layout %s: %w", dir, err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		LabelRefName:        r.String(),
		containerdImageName: r.String(),
	})); err != nil {
		return fmt.Errorf("write OCI layout %s: %w", dir, err)
	}
	return nil
}

// WriteTarball writes the image as a docker-archive tarball (docker save
// format) to file, tagged ref.
func (img *Image) WriteTarball(file, ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("write tarball %s: reference %q: %w", file, ref, err)
	}
	if err := tarball.WriteToFile(file, r, img); err != nil {
		return fmt.Errorf("write tarball %s: %w", file, err)
	}
	return nil
}
