package kube

import (
	"errors"
	"path"
	"strings"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/policy"
)

// Defaults of the kernel boot flags: where microvm/containerdisk puts the
// kernel and initrd, and the command line microvm's images boot with.
const (
	DefaultKernelArgs = "console=ttyS0 root=LABEL=rootfs rw"
	DefaultKernelPath = "/boot/vmlinuz"
	DefaultInitrdPath = "/boot/initrd.img"
	// MaxKernelArgs is the x86 kernel's COMMAND_LINE_SIZE.
	MaxKernelArgs = 2048
	// MaxKernelBootPath bounds KernelPath and InitrdPath (PATH_MAX).
	MaxKernelBootPath = 4096
)

// Flag names the kernel boot settings come from; validation errors name
// them.
const (
	FlagKernelArgs = "--kernel-args"
	FlagKernelPath = "--kernel-path"
	FlagInitrdPath = "--initrd-path"
)

// KernelBoot makes the VMI boot with KubeVirt's direct kernel boot
// (spec.domain.firmware.kernelBoot) instead of a boot loader on the disk:
// KubeVirt copies the kernel and initrd out of the job's containerDisk
// image (the same image the root disk comes from), as microvm's images
// need, which have no partition table and no boot loader.
type KernelBoot struct {
	// Args is the kernel command line (kernelArgs).
	Args string
	// KernelPath and InitrdPath are absolute paths inside the image.
	// InitrdPath may be empty (a kernel that needs no initramfs).
	KernelPath string
	InitrdPath string
}

// DefaultKernelBoot returns the settings microvm's images boot with.
func DefaultKernelBoot() KernelBoot {
	return KernelBoot{Args: DefaultKernelArgs, KernelPath: DefaultKernelPath, InitrdPath: DefaultInitrdPath}
}

// Validate checks every field; the errors name the flag, the value and
// the rule.
func (k KernelBoot) Validate() error {
	var errs []error
	if len(k.Args) > MaxKernelArgs {
		errs = append(errs, inputerr.New(FlagKernelArgs, k.Args[:64]+"...", "must be at most %d bytes (the kernel's COMMAND_LINE_SIZE), is %d", MaxKernelArgs, len(k.Args)))
	} else if i := strings.IndexFunc(k.Args, unicode.IsControl); i >= 0 {
		errs = append(errs, inputerr.New(FlagKernelArgs, k.Args, "must not contain control characters (found %q at byte %d)", k.Args[i], i))
	}
	if k.KernelPath == "" {
		errs = append(errs, inputerr.New(FlagKernelPath, "", "is required with --kernel-boot: the kernel's absolute path inside the containerDisk image"))
	} else if err := checkImagePath(FlagKernelPath, k.KernelPath); err != nil {
		errs = append(errs, err)
	}
	if k.InitrdPath != "" {
		if err := checkImagePath(FlagInitrdPath, k.InitrdPath); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkImagePath checks a file path inside the image.
func checkImagePath(flag, p string) error {
	switch {
	case len(p) > MaxKernelBootPath:
		return inputerr.New(flag, p[:64]+"...", "must be at most %d bytes, is %d", MaxKernelBootPath, len(p))
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return inputerr.New(flag, p, "must not contain control characters")
	case !path.IsAbs(p):
		return inputerr.New(flag, p, "must be an absolute path inside the image (starting with /)")
	case strings.HasSuffix(p, "/"):
		return inputerr.New(flag, p, "must name a file, not a directory")
	case path.Clean(p) != p:
		return inputerr.New(flag, p, "must be a clean path (no //, . or .. elements); did you mean %s?", path.Clean(p))
	}
	return nil
}

// firmware returns the VMI's firmware section: the kernel and initrd come
// from vm's containerDisk image, pulled like it.
func (k KernelBoot) firmware(vm policy.VM) *kubevirtv1.Firmware {
	return &kubevirtv1.Firmware{KernelBoot: &kubevirtv1.KernelBoot{
		KernelArgs: k.Args,
		Container: &kubevirtv1.KernelBootContainer{
			Image:           vm.Image,
			ImagePullPolicy: corev1.PullPolicy(vm.ImagePullPolicy),
			ImagePullSecret: vm.ImagePullSecret,
			KernelPath:      k.KernelPath,
			InitrdPath:      k.InitrdPath,
		},
	}}
}
