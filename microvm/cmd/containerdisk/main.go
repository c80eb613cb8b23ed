// Command containerdisk packs a guest image built by microvm/build.sh into
// a KubeVirt containerDisk (see package containerdisk):
//
//	containerdisk -image-dir DIR [-ref REF] [-oci-layout DIR] [-tarball FILE]
//	              [-name NAME] [-no-kernel] [-label KEY=VALUE]...
//
// -image-dir is build.sh's output directory (what it prints). The disk
// lands at /disk/<name>.qcow2 (name defaults to the guest), the kernel and
// initrd at /boot/vmlinuz and /boot/initrd.img unless -no-kernel. At least
// one of -oci-layout and -tarball is required. It prints the image digest.
//
// Example (make image, then):
//
//	go run ./microvm/cmd/containerdisk -image-dir "$(bash microvm/build.sh debian-bookworm)" \
//	    -ref registry.example.com/ci/debian-bookworm:latest -tarball debian-bookworm.tar
//	crane push debian-bookworm.tar registry.example.com/ci/debian-bookworm:latest
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/microvm"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/microvm/containerdisk"
)

// labels collects repeated -label KEY=VALUE flags.
type labels map[string]string

func (l labels) String() string { return fmt.Sprint(map[string]string(l)) }

func (l labels) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: must be KEY=VALUE", s)
	}
	l[k] = v
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "containerdisk:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("containerdisk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	imageDir := fs.String("image-dir", "", "output directory of microvm/build.sh (required)")
	ref := fs.String("ref", "", "image reference to tag the archive with (default gitlab-runner-kubevirt/<guest>:<hash>)")
	ociLayout := fs.String("oci-layout", "", "write an OCI image layout to this directory (must be empty or missing)")
	tarballPath := fs.String("tarball", "", "write a docker-archive tarball to this file")
	diskName := fs.String("name", "", "disk file name in /disk without .qcow2 (default the guest name)")
	noKernel := fs.Bool("no-kernel", false, "leave out /boot/vmlinuz and /boot/initrd.img")
	extra := labels{}
	fs.Var(extra, "label", "add an image label KEY=VALUE (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: every input is a flag", fs.Args())
	}
	if *imageDir == "" {
		return fmt.Errorf("flag -image-dir %q: required: the directory microvm/build.sh printed", *imageDir)
	}
	if *ociLayout == "" && *tarballPath == "" {
		return fmt.Errorf("flags -oci-layout and -tarball are both empty: give at least one output")
	}

	img, err := microvm.LoadImage(*imageDir)
	if err != nil {
		return err
	}
	if *ref == "" {
		*ref = "gitlab-runner-kubevirt/" + img.Guest + ":" + img.Hash
	}
	if *diskName == "" {
		*diskName = img.Guest
	}
	opts := containerdisk.Options{
		Disk:         img.Disk,
		Name:         *diskName,
		Created:      img.Built,
		Architecture: img.Arch,
		Labels: map[string]string{
			"io.gitlab-runner-kubevirt.guest":          img.Guest,
			"io.gitlab-runner-kubevirt.image-hash":     img.Hash,
			"io.gitlab-runner-kubevirt.suite":          img.Suite,
			"io.gitlab-runner-kubevirt.kernel-version": img.KernelVersion,
			"io.gitlab-runner-kubevirt.kernel-cmdline": img.KernelCmdline,
			"org.opencontainers.image.version":         img.Hash,
		},
	}
	if !*noKernel {
		opts.Kernel, opts.Initrd = img.Kernel, img.Initrd
	}
	for k, v := range extra {
		opts.Labels[k] = v
	}

	cd, err := containerdisk.Build(ctx, opts)
	if err != nil {
		return err
	}
	defer cd.Close()
	if *ociLayout != "" {
		if err := cd.WriteOCILayout(*ociLayout, *ref); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "containerdisk: OCI layout %s\n", *ociLayout)
	}
	if *tarballPath != "" {
		if err := cd.WriteTarball(*tarballPath, *ref); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "containerdisk: docker-archive tarball %s\n", *tarballPath)
	}
	digest, err := cd.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	layers, err := cd.Layers()
	if err != nil {
		return fmt.Errorf("image layers: %w", err)
	}
	size, err := layers[0].Size()
	if err != nil {
		return fmt.Errorf("layer size: %w", err)
	}
	fmt.Fprintf(stderr, "containerdisk: %s = %s, layer %d MiB, files %s\n", *ref, digest, size>>20, strings.Join(cd.Files(), " "))
	fmt.Fprintln(stdout, digest)
	return cd.Close()
}
