// Package realvm runs gitlab-runner-kubevirt end to end against real
// guests: a real kube-apiserver + etcd with the KubeVirt CRDs (package
// kubeenv), the runner's RBAC from deploy/rbac.yaml, and the VMI stand-in
// in QEMU mode, which boots the microvm/ Debian image for every VMI with
// the first-boot data the OS plugin rendered. The executor binaries run
// under the runner harness (package runner) exactly as gitlab-runner runs
// them, as the runner's ServiceAccount; every stage's commands run inside
// the guest.
//
// A [Bed] is what the real-VM tests (this package's tests) and
// `go run ./test/demo --mode qemu` share. It needs root, QEMU
// (qemu-system-x86), xorriso, and microvm's build dependencies for the
// first image build (bash microvm/install-deps.sh); a missing tool is an
// error naming its Debian package.
//
// Costs: the guest image build (1.5-3.5 min, once; cached by recipe hash),
// the kube binaries (built once, cached), an accelerator probe (up to
// 10 s), and one boot per job (30-90 s under TCG).
package realvm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/microvm"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/qemu"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// Names shared with the runner's deployment and the image build.
const (
	// ServiceAccount is the runner's ServiceAccount in deploy/rbac.yaml.
	ServiceAccount = e2e.ServiceAccount
	// Guest is the microvm/ recipe the bed boots.
	Guest = "debian-bookworm"
	// Image is the containerDisk image of Guest, the runner's
	// --default-image; the bed maps it to the locally built image.
	Image = "registry.example.com/gitlab-runner-kubevirt/debian-bookworm:latest"
	// ImagePattern is the image map's pattern for Guest.
	ImagePattern = "registry.example.com/gitlab-runner-kubevirt/debian-bookworm:*"
	// GuestUser is the login the Linux OS plugin creates in the guest
	// (prepare's --ssh-user).
	GuestUser = "runner"
)

// Options configure [Start].
type Options struct {
	// BinDir holds the core and plugins/ with plugins.lock (see
	// e2e.BuildBinaries, `make build`). Required.
	BinDir string
	// Kube configures the control plane.
	Kube kubeenv.Options
	// ExtraImages are image map entries tried before the Guest mapping
	// (tests map broken images here).
	ExtraImages []standin.ImageMapping
	// BootTimeout bounds each guest's boot to SSH (default
	// standin.DefaultGuestBootTimeout).
	BootTimeout time.Duration
	// ConsoleDir keeps the guests' console logs (default: removed with
	// each guest).
	ConsoleDir string
	// BuildLog receives the image build's progress at Start (nil
	// discards it).
	BuildLog io.Writer
	// OnEvent receives the stand-in's events; Logf its log.
	OnEvent func(standin.Event)
	Logf    func(format string, args ...any)
	// Progress, when set, is told each step of the start as it
	// completes: "guest image", "accelerator", "control plane ready",
	// "namespace and RBAC", "runner kubeconfig", "stand-in watching".
	Progress func(step string)
}

// Bed is a running real-VM environment. Stop it on every path.
type Bed struct {
	// ControlPlane is the control plane, the namespace with the runner's
	// RBAC and job objects, the kubeconfig of ServiceAccount and admin
	// clients.
	e2e.ControlPlane
	// Standin boots the VMIs.
	Standin *standin.Controller
	// Core is the executor binary; PluginDir its plugin directory.
	Core, PluginDir string
	// Image is the guest image; Accel the accelerator every guest uses
	// and AccelReason why.
	Image       *microvm.Image
	Accel       qemu.Accel
	AccelReason string
}

// CheckTools fails, naming the Debian package, when something the bed
// needs is missing.
func CheckTools() error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, fmt.Errorf("the real-VM environment needs root (guests' SSH forwards on port 22 of loopback addresses, the image build); running as uid %d", os.Geteuid()))
	}
	for _, t := range []struct{ tool, pkg string }{
		{qemu.DefaultQEMU, "qemu-system-x86"}, {"xorrisofs", "xorriso"}, {"qemu-img", "qemu-utils"},
	} {
		if _, err := exec.LookPath(t.tool); err != nil {
			errs = append(errs, fmt.Errorf("%s is missing: install Debian package %s (bash microvm/install-deps.sh)", t.tool, t.pkg))
		}
	}
	return errors.Join(errs...)
}

// Start builds (or finds cached) the guest image, detects the
// accelerator once, then starts the control plane, the namespace with the
// runner's RBAC and kubeconfig, and the stand-in in QEMU mode. On failure
// everything started is stopped again.
func Start(ctx context.Context, opts Options) (b *Bed, err error) {
	if err := CheckTools(); err != nil {
		return nil, err
	}
	if err := e2e.CheckBinDir(opts.BinDir); err != nil {
		return nil, err
	}
	progress := func(step string) {
		if opts.Progress != nil {
			opts.Progress(step)
		}
	}
	b = &Bed{Core: filepath.Join(opts.BinDir, e2e.CoreBinary), PluginDir: filepath.Join(opts.BinDir, e2e.PluginsDir)}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.Stop())
			b = nil
		}
	}()
	if b.Image, err = microvm.Build(ctx, microvm.BuildOptions{Guest: Guest, Log: opts.BuildLog}); err != nil {
		return b, fmt.Errorf("guest image %s (its build needs: bash microvm/install-deps.sh): %w", Guest, err)
	}
	progress("guest image")
	if b.Accel, b.AccelReason, err = qemu.DetectAccel(ctx, "", b.Image.Kernel); err != nil {
		return b, err
	}
	progress("accelerator")
	if b.ControlPlane, err = e2e.StartControlPlane(ctx, opts.Kube, "control plane ready", progress); err != nil {
		return b, err
	}
	images := &standin.ImageMap{Images: append(append([]standin.ImageMapping{}, opts.ExtraImages...),
		standin.ImageMapping{Image: ImagePattern, Guest: Guest})}
	b.Standin, err = standin.Start(ctx, standin.Options{
		Config: b.Env.AdminConfig(), Namespace: b.Namespace,
		OnEvent: opts.OnEvent, Logf: opts.Logf,
		Mode: standin.ModeQEMU,
		QEMU: standin.QEMUOptions{
			Images: images, Accel: b.Accel, BootTimeout: opts.BootTimeout,
			// Start built the image: the stand-in's builds are cache
			// hits, whose one line would only interleave with job logs.
			ConsoleDir: opts.ConsoleDir,
		},
	})
	if err != nil {
		return b, err
	}
	progress("stand-in watching")
	return b, nil
}

// RunnerConfig returns the [runners.custom] configuration of this bed:
// the core's four stages against the bed's namespace with the
// ServiceAccount's kubeconfig, kernel boot as on a real cluster, the
// guest image as default image and GuestUser as login, with prepareArgs
// appended to prepare's flags. Prepare's bound allows a slow TCG boot.
func (b *Bed) RunnerConfig(prepareArgs ...string) runner.Config {
	return e2e.StageConfig(b.Core, b.Kubeconfig, b.Namespace, GuestUser, 9*time.Minute, append([]string{
		"--default-image", Image,
		"--kernel-boot",
		"--timeout", "8m",
	}, prepareArgs...)...)
}

// Stop stops the stand-in (and every guest's QEMU) and the control plane.
// It is safe on a partly started bed.
func (b *Bed) Stop() error {
	var errs []error
	if b.Standin != nil {
		if err := b.Standin.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop the stand-in: %w", err))
		}
	}
	if b.Env != nil {
		if err := b.Env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop the control plane: %w", err))
		}
	}
	return errors.Join(errs...)
}
