package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// result is what a build wrote.
type result struct {
	// Archive is the OCI image-layout tarball.
	Archive string
	// Index is the digest of the multi-arch image index.
	Index v1.Hash
	// Images maps os/arch to the digest of that platform's image manifest.
	Images map[string]v1.Hash
	// DockerArchives are the `docker load` tarballs, if asked for.
	DockerArchives []string
}

// build cross-compiles the core and plugins for every platform, pins the
// plugins per platform, assembles one FROM-scratch image per platform and
// writes the multi-arch OCI archive (and optionally docker tarballs) into
// o.OutDir.
func build(ctx context.Context, log io.Writer, o options) (*result, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	work := o.WorkDir
	if work == "" {
		dir, err := os.MkdirTemp("", "gitlab-runner-kubevirt-container-")
		if err != nil {
			return nil, fmt.Errorf("create work dir: %w", err)
		}
		defer os.RemoveAll(dir)
		work = dir
	}
	plugins, err := discoverPlugins(ctx, log, &o)
	if err != nil {
		return nil, err
	}

	roots := map[string]string{}
	for _, p := range o.Platforms {
		root := filepath.Join(work, "rootfs", p.OS+"-"+p.Arch)
		if err := compile(ctx, log, &o, p, root, plugins); err != nil {
			return nil, err
		}
		roots[p.String()] = root
	}
	// GetInfo comes from running the plugins, which only binaries for this
	// machine can do: reuse that platform's build, or make one.
	host := platform{OS: runtime.GOOS, Arch: runtime.GOARCH}
	hostRoot, ok := roots[host.String()]
	if !ok {
		hostRoot = filepath.Join(work, "rootfs", "host")
		if err := compile(ctx, log, &o, host, hostRoot, plugins); err != nil {
			return nil, err
		}
	}
	base, err := hostLock(ctx, log, &o, hostRoot, plugins)
	if err != nil {
		return nil, err
	}

	layerDir := filepath.Join(work, "layers")
	if err := os.MkdirAll(layerDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", layerDir, err)
	}
	res := &result{Images: map[string]v1.Hash{}}
	images := map[string]v1.Image{}
	for _, p := range o.Platforms {
		lock, err := writeLockFor(roots[p.String()], base)
		if err != nil {
			return nil, err
		}
		img, err := buildImage(&o, p, roots[p.String()], layerDir, lock)
		if err != nil {
			return nil, err
		}
		if res.Images[p.String()], err = img.Digest(); err != nil {
			return nil, fmt.Errorf("digest of %s image: %w", p, err)
		}
		images[p.String()] = img
		fmt.Fprintf(log, "image %s: %s\n", p, res.Images[p.String()])
	}
	idx, err := buildIndex(&o, images)
	if err != nil {
		return nil, err
	}
	if res.Index, err = idx.Digest(); err != nil {
		return nil, fmt.Errorf("digest of the index: %w", err)
	}

	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", o.OutDir, err)
	}
	res.Archive = filepath.Join(o.OutDir, o.archiveName())
	if err := writeOCIArchive(&o, idx, filepath.Join(work, "layout"), res.Archive); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "wrote %s (index %s)\n", res.Archive, res.Index)
	if o.DockerArchives {
		for _, p := range o.Platforms {
			dst := filepath.Join(o.OutDir, fmt.Sprintf("gitlab-runner-kubevirt-%s-%s-%s-docker.tar", o.Version, p.OS, p.Arch))
			if err := writeDockerArchive(&o, p, images[p.String()], dst); err != nil {
				return nil, err
			}
			res.DockerArchives = append(res.DockerArchives, dst)
			fmt.Fprintf(log, "wrote %s\n", dst)
		}
	}
	return res, nil
}
