package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
)

// entry is one file or directory of a layer.
type entry struct {
	// Name is the path inside the image, without a leading slash.
	Name string
	// Src is the file to copy; empty for a directory.
	Src string
	// Mode is the permission (and sticky) bits.
	Mode fs.FileMode
}

// layerSpec is one layer: its entries and its history line.
type layerSpec struct {
	entries   []entry
	createdBy string
}

// layerSpecs returns the image's two layers: the core binary, then the
// plugin directory (binaries and plugins.lock), so a plugin-only change
// leaves the core layer's digest alone. Everything is owned by root and
// read-only to the image's non-root user.
func layerSpecs(root string, lock *pluginhost.Lock) []layerSpec {
	bin := filepath.Join(root, filepath.FromSlash(installDir))
	core := layerSpec{
		createdBy: "hack/container: core binary",
		entries: []entry{
			{Name: "opt", Mode: 0o755},
			{Name: installDir, Mode: 0o755},
			// go-plugin puts its sockets in the temp dir; mount an emptyDir
			// here when the root filesystem is read-only.
			{Name: "tmp", Mode: 0o777 | fs.ModeSticky},
			{Name: path.Join(installDir, coreName), Src: filepath.Join(bin, coreName), Mode: 0o755},
		},
	}
	plugins := layerSpec{
		createdBy: "hack/container: plugins and plugins.lock",
		entries:   []entry{{Name: path.Join(installDir, pluginDirName), Mode: 0o755}},
	}
	for _, e := range lock.Plugins {
		plugins.entries = append(plugins.entries, entry{
			Name: path.Join(installDir, pluginDirName, e.File),
			Src:  filepath.Join(bin, pluginDirName, e.File),
			Mode: 0o755,
		})
	}
	plugins.entries = append(plugins.entries, entry{
		Name: path.Join(installDir, pluginDirName, pluginhost.LockFileName),
		Src:  filepath.Join(bin, pluginDirName, pluginhost.LockFileName),
		Mode: 0o644,
	})
	return []layerSpec{core, plugins}
}

// writeLayer writes entries as a gzipped tar to dst with fixed owners and
// times, so equal inputs give equal digests.
func writeLayer(dst string, entries []entry, mtime time.Time) (err error) {
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("create layer %s: %w", dst, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close layer %s: %w", dst, cerr)
		}
	}()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		if err := addEntry(tw, e, mtime); err != nil {
			return fmt.Errorf("layer %s: %w", dst, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finish layer %s: %w", dst, err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("compress layer %s: %w", dst, err)
	}
	return nil
}

// addEntry writes one tar entry.
func addEntry(tw *tar.Writer, e entry, mtime time.Time) error {
	hdr := &tar.Header{
		Name:    e.Name,
		Mode:    int64(e.Mode.Perm()),
		ModTime: mtime,
		Format:  tar.FormatPAX,
	}
	if e.Mode&fs.ModeSticky != 0 {
		hdr.Mode |= 0o1000
	}
	if e.Src == "" {
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		return tw.WriteHeader(hdr)
	}
	src, err := os.Open(e.Src)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", e.Src)
	}
	hdr.Typeflag = tar.TypeReg
	hdr.Size = fi.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("add %s: %w", e.Src, err)
	}
	return nil
}

// buildImage assembles the FROM-scratch image of platform p from the
// binaries under root, writing its layer files into layerDir.
func buildImage(o *options, p platform, root, layerDir string, lock *pluginhost.Lock) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	created := v1.Time{Time: o.Created.UTC()}
	for i, spec := range layerSpecs(root, lock) {
		file := filepath.Join(layerDir, fmt.Sprintf("%s-%s-layer%d.tar.gz", p.OS, p.Arch, i))
		if err := writeLayer(file, spec.entries, o.Created); err != nil {
			return nil, err
		}
		layer, err := tarball.LayerFromFile(file, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, fmt.Errorf("read layer %s: %w", file, err)
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     layer,
			MediaType: types.OCILayer,
			History:   v1.History{Created: created, CreatedBy: spec.createdBy},
		})
		if err != nil {
			return nil, fmt.Errorf("add layer %d for %s: %w", i, p, err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config of %s: %w", p, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Arch, p.Variant
	cf.Created = created
	cf.Author = o.Source
	cf.Config = v1.Config{
		User:       imageUser,
		Entrypoint: []string{"/" + path.Join(installDir, coreName)},
		Env:        []string{"PATH=/" + installDir},
		WorkingDir: "/",
		Labels:     o.labels(),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set config of %s: %w", p, err)
	}
	return mutate.Annotations(img, o.labels()).(v1.Image), nil
}

// buildIndex puts the per-platform images into one OCI image index.
func buildIndex(o *options, images map[string]v1.Image) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, p := range o.Platforms {
		img, ok := images[p.String()]
		if !ok {
			return nil, fmt.Errorf("no image built for %s", p)
		}
		adds = append(adds, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				Platform: &v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant},
			},
		})
	}
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, o.labels()).(v1.ImageIndex), nil
}
