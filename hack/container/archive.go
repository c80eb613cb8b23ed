package main

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// refNameAnnotation names an image in an OCI layout's index.json; skopeo's
// oci-archive:FILE:NAME transport selects by it.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// writeOCIArchive writes idx as an OCI image layout (index.json holding
// one descriptor, the multi-arch index, named o.Version) into layoutDir and
// packs that directory into dst as a tar, the format of skopeo's
// oci-archive: transport. The tar is written to a temporary file and
// renamed, so dst is never half-written.
func writeOCIArchive(o *options, idx v1.ImageIndex, layoutDir, dst string) error {
	lp, err := layout.Write(layoutDir, mutate.IndexMediaType(empty.Index, types.OCIImageIndex))
	if err != nil {
		return fmt.Errorf("write OCI layout %s: %w", layoutDir, err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{refNameAnnotation: o.Version})); err != nil {
		return fmt.Errorf("write OCI layout %s: %w", layoutDir, err)
	}
	return atomicWrite(dst, func(w io.Writer) error { return tarDir(w, layoutDir, o.Created) })
}

// tarDir writes the tree under dir to w in lexical order, with fixed
// owners, modes (0755 directories, 0644 files) and times.
func tarDir(w io.Writer, dir string, mtime time.Time) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatPAX}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Mode, hdr.Name = tar.TypeDir, 0o755, hdr.Name+"/"
			return tw.WriteHeader(hdr)
		case d.Type().IsRegular():
			return addFile(tw, hdr, p)
		}
		return fmt.Errorf("%s: not a regular file or directory", p)
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	return nil
}

// addFile writes the regular file p under hdr.
func addFile(tw *tar.Writer, hdr *tar.Header, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, fi.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// writeDockerArchive writes img as a `docker load` tarball tagged
// imageName:version-arch.
func writeDockerArchive(o *options, p platform, img v1.Image, dst string) error {
	tag, err := name.NewTag(fmt.Sprintf("%s:%s-%s", o.ImageName, o.Version, p.Arch))
	if err != nil {
		return fmt.Errorf("--image-name %q: %w", o.ImageName, err)
	}
	return atomicWrite(dst, func(w io.Writer) error { return tarball.Write(tag, img, w) })
}

// atomicWrite writes dst through a temporary file in its directory that is
// synced and renamed into place; on failure dst is left untouched.
func atomicWrite(dst string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = write(tmp); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp.Name(), dst, err)
	}
	return nil
}
