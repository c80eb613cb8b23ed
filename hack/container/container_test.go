package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
)

// testOptions are the options of the archive the tests build.
func testOptions(t *testing.T) options {
	t.Helper()
	root, err := moduleRoot(t.Context(), "go")
	if err != nil {
		t.Fatal(err)
	}
	return options{
		RepoRoot:  root,
		OutDir:    t.TempDir(),
		Go:        "go",
		Version:   "v1.2.3-test.1",
		Revision:  "0123456789abcdef0123456789abcdef01234567",
		Source:    defaultSource,
		Licenses:  "MIT",
		Created:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Platforms: supportedPlatforms(),
	}
}

// file is one regular file of an image's filesystem.
type file struct {
	mode     int64
	uid, gid int
	data     []byte
}

// TestBuildArchive builds the real multi-arch archive from this repository
// and checks it the way a registry client and a node would see it.
func TestBuildArchive(t *testing.T) {
	o := testOptions(t)
	o.DockerArchives, o.ImageName = true, "registry.example.com/ci/gitlab-runner-kubevirt"
	var log bytes.Buffer
	res, err := build(t.Context(), &log, o)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	if want := filepath.Join(o.OutDir, "gitlab-runner-kubevirt-v1.2.3-test.1-oci.tar"); res.Archive != want {
		t.Errorf("archive = %s, want %s", res.Archive, want)
	}
	if len(res.DockerArchives) != 2 {
		t.Errorf("docker archives = %v, want one per platform", res.DockerArchives)
	}
	plugins, err := discoverPlugins(t.Context(), io.Discard, &o)
	if err != nil {
		t.Fatal(err)
	}

	dir := extractTar(t, res.Archive)
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("open the archive as an OCI layout: %v", err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(topManifest.Manifests) != 1 {
		t.Fatalf("index.json lists %d descriptors, want 1 (the multi-arch index)", len(topManifest.Manifests))
	}
	desc := topManifest.Manifests[0]
	if desc.MediaType != types.OCIImageIndex {
		t.Errorf("index.json descriptor media type = %s, want %s", desc.MediaType, types.OCIImageIndex)
	}
	if got := desc.Annotations[refNameAnnotation]; got != o.Version {
		t.Errorf("index.json %s = %q, want %q", refNameAnnotation, got, o.Version)
	}
	if desc.Digest != res.Index {
		t.Errorf("index.json points at %s, build reported %s", desc.Digest, res.Index)
	}
	idx, err := top.ImageIndex(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	checkLabels(t, "index annotations", im.Annotations, o)

	var gotPlatforms []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			t.Fatalf("manifest %s has no platform", m.Digest)
		}
		gotPlatforms = append(gotPlatforms, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	slices.Sort(gotPlatforms)
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(gotPlatforms, want) {
		t.Fatalf("index platforms = %v, want exactly %v", gotPlatforms, want)
	}

	locks := map[string]*pluginhost.Lock{}
	for _, p := range supportedPlatforms() {
		t.Run(p.String(), func(t *testing.T) {
			i := slices.IndexFunc(im.Manifests, func(d v1.Descriptor) bool {
				return d.Platform.OS == p.OS && d.Platform.Architecture == p.Arch
			})
			d := im.Manifests[i]
			if d.Platform.Variant != p.Variant {
				t.Errorf("platform variant = %q, want %q", d.Platform.Variant, p.Variant)
			}
			if d.Digest != res.Images[p.String()] {
				t.Errorf("manifest digest = %s, build reported %s", d.Digest, res.Images[p.String()])
			}
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			locks[p.String()] = checkImage(t, img, p, o, plugins)
		})
	}

	// The locks differ in digests only: GetInfo is the same on every
	// platform, and the binaries are not.
	amd, arm := locks["linux/amd64"], locks["linux/arm64"]
	if amd == nil || arm == nil {
		t.Fatal("a platform's lock was not read")
	}
	for i := range amd.Plugins {
		a, b := amd.Plugins[i], arm.Plugins[i]
		if a.SHA256 == b.SHA256 {
			t.Errorf("%s: amd64 and arm64 locks pin the same sha256 %s", a.File, a.SHA256)
		}
		b.SHA256 = a.SHA256
		if a.String() != b.String() || !slices.Equal(a.APIVersions, b.APIVersions) || !slices.Equal(a.Shells, b.Shells) || !slices.Equal(a.Capabilities, b.Capabilities) || a.OSFamily != b.OSFamily {
			t.Errorf("lock entries differ beyond sha256:\n amd64 %+v\n arm64 %+v", a, b)
		}
	}
}

// checkImage checks one platform's image and returns its plugins.lock.
func checkImage(t *testing.T, img v1.Image, p platform, o options, plugins []plugin) *pluginhost.Lock {
	mt, err := img.MediaType()
	if err != nil || mt != types.OCIManifestSchema1 {
		t.Errorf("image media type = %s (%v), want %s", mt, err, types.OCIManifestSchema1)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != p.OS || cf.Architecture != p.Arch || cf.Variant != p.Variant {
		t.Errorf("config platform = %s/%s/%s, want %s/%s/%s", cf.OS, cf.Architecture, cf.Variant, p.OS, p.Arch, p.Variant)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("config user = %q, want 65532:65532", cf.Config.User)
	}
	if want := []string{"/opt/gitlab-runner-kubevirt/gitlab-runner-kubevirt"}; !slices.Equal(cf.Config.Entrypoint, want) {
		t.Errorf("entrypoint = %q, want %q", cf.Config.Entrypoint, want)
	}
	if !cf.Created.Time.Equal(o.Created) {
		t.Errorf("created = %s, want %s", cf.Created.Time, o.Created)
	}
	checkLabels(t, "config labels", cf.Config.Labels, o)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	checkLabels(t, "manifest annotations", m.Annotations, o)

	files := imageFiles(t, img)
	core := "opt/gitlab-runner-kubevirt/gitlab-runner-kubevirt"
	lockPath := "opt/gitlab-runner-kubevirt/plugins/plugins.lock"
	want := map[string]int64{core: 0o755, lockPath: 0o644}
	for _, pl := range plugins {
		want[path.Join("opt/gitlab-runner-kubevirt/plugins", pl.File())] = 0o755
	}
	for name, mode := range want {
		f, ok := files[name]
		if !ok {
			t.Errorf("image has no /%s", name)
			continue
		}
		if f.mode != mode {
			t.Errorf("/%s mode = %04o, want %04o", name, f.mode, mode)
		}
		if f.uid != 0 || f.gid != 0 {
			t.Errorf("/%s owner = %d:%d, want 0:0 (not writable by the image user)", name, f.uid, f.gid)
		}
		if mode == 0o755 {
			checkELF(t, name, f.data, p.Machine)
		}
	}
	for name := range files {
		if _, ok := want[name]; !ok {
			t.Errorf("image has an unexpected file /%s", name)
		}
	}

	lf, ok := files[lockPath]
	if !ok {
		return nil
	}
	lock, err := pluginhost.ParseLock(lf.data)
	if err != nil {
		t.Fatalf("/%s: %v", lockPath, err)
	}
	if len(lock.Plugins) != len(plugins) {
		t.Errorf("plugins.lock locks %d plugins, want %d (every ./plugins main package)", len(lock.Plugins), len(plugins))
	}
	for _, e := range lock.Plugins {
		f, ok := files[path.Join("opt/gitlab-runner-kubevirt/plugins", e.File)]
		if !ok {
			t.Errorf("plugins.lock locks %s, which the image lacks", e.File)
			continue
		}
		sum := sha256.Sum256(f.data)
		if got := hex.EncodeToString(sum[:]); got != e.SHA256 {
			t.Errorf("plugins.lock pins %s at %s, the image's binary has %s", e.File, e.SHA256, got)
		}
	}
	return lock
}

// checkLabels checks the OCI labels (or annotations) every image level
// carries.
func checkLabels(t *testing.T, what string, got map[string]string, o options) {
	t.Helper()
	want := map[string]string{
		"org.opencontainers.image.source":   o.Source,
		"org.opencontainers.image.version":  o.Version,
		"org.opencontainers.image.revision": o.Revision,
		"org.opencontainers.image.licenses": o.Licenses,
		"org.opencontainers.image.title":    "gitlab-runner-kubevirt",
		"org.opencontainers.image.created":  "2026-01-02T03:04:05Z",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s %s = %q, want %q", what, k, got[k], v)
		}
	}
	if got["org.opencontainers.image.description"] == "" {
		t.Errorf("%s have no org.opencontainers.image.description", what)
	}
}

// checkELF checks that data is a static-looking ELF executable for machine.
func checkELF(t *testing.T, name string, data []byte, machine elf.Machine) {
	t.Helper()
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Errorf("/%s is not an ELF file: %v", name, err)
		return
	}
	defer ef.Close()
	if ef.Machine != machine {
		t.Errorf("/%s is built for %s, want %s", name, ef.Machine, machine)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		t.Errorf("/%s ELF type = %s, want an executable", name, ef.Type)
	}
	if interp := ef.Section(".interp"); interp != nil {
		t.Errorf("/%s has a dynamic loader (.interp); a FROM-scratch image needs CGO_ENABLED=0", name)
	}
}

// imageFiles returns the regular files of img's flattened filesystem.
func imageFiles(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]file{}
	for i, l := range layers {
		if mt, _ := l.MediaType(); mt != types.OCILayer {
			t.Errorf("layer %d media type = %s, want %s", i, mt, types.OCILayer)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("layer %d: %v", i, err)
			}
			if hdr.Typeflag != tar.TypeReg {
				continue
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("layer %d %s: %v", i, hdr.Name, err)
			}
			files[strings.TrimPrefix(hdr.Name, "/")] = file{mode: hdr.Mode, uid: hdr.Uid, gid: hdr.Gid, data: data}
		}
		rc.Close()
	}
	return files
}

// extractTar unpacks the archive at p into a temporary directory.
func extractTar(t *testing.T, p string) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return dir
		}
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		if !fs.ValidPath(strings.TrimSuffix(hdr.Name, "/")) {
			t.Fatalf("%s holds an unsafe path %q", p, hdr.Name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, data, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: entry %s has type %c, want only directories and files", p, hdr.Name, hdr.Typeflag)
		}
	}
}

// TestLayersReproducible builds the same image twice from the same
// binaries: equal inputs must give equal digests.
func TestLayersReproducible(t *testing.T) {
	o := testOptions(t)
	p := supportedPlatforms()[0]
	root := t.TempDir()
	bin := filepath.Join(root, filepath.FromSlash(installDir))
	pluginDir := filepath.Join(bin, pluginDirName)
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Contents need not be real binaries to test the packing.
	if err := os.WriteFile(filepath.Join(bin, coreName), []byte("core"), 0o755); err != nil {
		t.Fatal(err)
	}
	pluginFile := "gitlab-runner-kubevirt-plugin-demo"
	if err := os.WriteFile(filepath.Join(pluginDir, pluginFile), []byte("plugin"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := &pluginhost.Lock{APIVersion: pluginhost.LockAPIVersion, Plugins: []pluginhost.Entry{{
		File: pluginFile, SHA256: strings.Repeat("0", 64), Name: "demo", Kind: pluginhost.KindTransport,
		Version: "1.0.0", APIVersions: []int{1},
	}}}
	lock, err := writeLockFor(root, base)
	if err != nil {
		t.Fatal(err)
	}
	var digests []v1.Hash
	for i := range 2 {
		img, err := buildImage(&o, p, root, t.TempDir(), lock)
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
		// Touching the sources must not matter: only --created is used.
		now := time.Now()
		if err := os.Chtimes(filepath.Join(bin, coreName), now, now); err != nil {
			t.Fatal(err)
		}
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds from the same inputs gave %s and %s", digests[0], digests[1])
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*options)
		want   []string // substrings of the error; none: valid
	}{
		{name: "valid", mutate: func(*options) {}},
		{name: "unknown revision", mutate: func(o *options) { o.Revision = "unknown" }},
		{name: "version with slash", mutate: func(o *options) { o.Version = "v1/2" }, want: []string{`--version "v1/2"`, "image tag"}},
		{name: "version starting with dot", mutate: func(o *options) { o.Version = ".v1" }, want: []string{`--version ".v1"`}},
		{name: "empty version", mutate: func(o *options) { o.Version = "" }, want: []string{`--version ""`}},
		{name: "revision not hex", mutate: func(o *options) { o.Revision = "main" }, want: []string{`--revision "main"`, "hex commit id"}},
		{name: "source not a URL", mutate: func(o *options) { o.Source = "github.com/x" }, want: []string{`--source "github.com/x"`, "http(s) URL"}},
		{name: "license with newline", mutate: func(o *options) { o.Licenses = "MIT\nX" }, want: []string{"--licenses", "SPDX"}},
		{name: "no platforms", mutate: func(o *options) { o.Platforms = nil }, want: []string{"--platforms", "linux/amd64, linux/arm64"}},
		{name: "bad image name", mutate: func(o *options) { o.DockerArchives, o.ImageName = true, "Registry/UPPER" }, want: []string{`--image-name "Registry/UPPER"`}},
		{name: "image name unused", mutate: func(o *options) { o.ImageName = "Registry/UPPER" }},
		{name: "time before epoch", mutate: func(o *options) { o.Created = time.Unix(-1, 0) }, want: []string{"--created", "1970"}},
		{name: "two errors at once", mutate: func(o *options) { o.Version, o.Revision = "", "x" }, want: []string{"--version", "--revision"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := options{
				RepoRoot: "/repo", OutDir: "/repo/dist", Go: "go", Version: "v0.1.0",
				Revision: "abcdef0", Source: defaultSource, Licenses: "MIT",
				Created: time.Unix(1, 0), Platforms: supportedPlatforms(), ImageName: "gitlab-runner-kubevirt",
			}
			tt.mutate(&o)
			err := o.validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("validate accepted %+v", o)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParsePlatforms(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "linux/amd64,linux/arm64", want: []string{"linux/amd64", "linux/arm64"}},
		{in: " linux/arm64 ", want: []string{"linux/arm64"}},
		{in: "linux/s390x", wantErr: `"linux/s390x" is not one of linux/amd64, linux/arm64`},
		{in: "linux/amd64,linux/amd64", wantErr: "linux/amd64 is listed twice"},
		{in: "", wantErr: `--platforms ""`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parsePlatforms(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parsePlatforms(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range got {
				names = append(names, p.String())
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("parsePlatforms(%q) = %v, want %v", tt.in, names, tt.want)
			}
		})
	}
}

func TestCreatedTime(t *testing.T) {
	tests := []struct {
		name, flag, epoch string
		want              time.Time
		wantErr           string
	}{
		{name: "flag", flag: "2026-01-02T03:04:05Z", epoch: "5", want: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{name: "epoch", epoch: "1700000000", want: time.Unix(1700000000, 0)},
		{name: "bad flag", flag: "yesterday", wantErr: `--created "yesterday": must be an RFC 3339 time`},
		{name: "bad epoch", epoch: "-3", wantErr: `SOURCE_DATE_EPOCH "-3"`},
		{name: "epoch not a number", epoch: "1e9", wantErr: `SOURCE_DATE_EPOCH "1e9"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := createdTime(context.Background(), t.TempDir(), tt.flag, tt.epoch)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("createdTime = %s, want %s", got, tt.want)
			}
		})
	}
}
