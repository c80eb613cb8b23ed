package kube

import (
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

func TestKernelBootValidate(t *testing.T) {
	tests := []struct {
		name string
		kb   KernelBoot
		err  string // "" means valid
	}{
		{name: "defaults", kb: DefaultKernelBoot()},
		{name: "no initrd", kb: KernelBoot{Args: "console=ttyS0", KernelPath: "/vmlinuz"}},
		{name: "empty args", kb: KernelBoot{KernelPath: "/boot/vmlinuz"}},
		{name: "newline in args", kb: KernelBoot{Args: "console=ttyS0\ninit=/bin/sh", KernelPath: "/boot/vmlinuz"},
			err: `--kernel-args "console=ttyS0\ninit=/bin/sh": must not contain control characters`},
		{name: "args too long", kb: KernelBoot{Args: strings.Repeat("a", MaxKernelArgs+1), KernelPath: "/boot/vmlinuz"},
			err: `must be at most 2048 bytes (the kernel's COMMAND_LINE_SIZE), is 2049`},
		{name: "no kernel", kb: KernelBoot{Args: "x"}, err: `--kernel-path "": is required`},
		{name: "relative kernel", kb: KernelBoot{KernelPath: "boot/vmlinuz"}, err: `--kernel-path "boot/vmlinuz": must be an absolute path`},
		{name: "unclean kernel", kb: KernelBoot{KernelPath: "/boot/../vmlinuz"}, err: `--kernel-path "/boot/../vmlinuz": must be a clean path`},
		{name: "directory kernel", kb: KernelBoot{KernelPath: "/boot/"}, err: `--kernel-path "/boot/": must name a file`},
		{name: "tab in initrd", kb: KernelBoot{KernelPath: "/boot/vmlinuz", InitrdPath: "/boot/in\titrd"}, err: `--initrd-path "/boot/in\titrd": must not contain control characters`},
		{name: "relative initrd", kb: KernelBoot{KernelPath: "/boot/vmlinuz", InitrdPath: "initrd.img"}, err: `--initrd-path "initrd.img": must be an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.kb.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", tt.kb, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Validate(%+v) = %v, want an error containing %q", tt.kb, err, tt.err)
			}
			if !inputerr.Is(err) {
				t.Errorf("error %v is not an inputerr.Error", err)
			}
		})
	}
}

func TestVMIKernelBoot(t *testing.T) {
	tests := []struct {
		name       string
		kernelBoot *KernelBoot
	}{
		{name: "off", kernelBoot: nil},
		{name: "defaults", kernelBoot: &KernelBoot{Args: DefaultKernelArgs, KernelPath: DefaultKernelPath, InitrdPath: DefaultInitrdPath}},
		{name: "no initrd", kernelBoot: &KernelBoot{Args: "console=ttyS0 quiet", KernelPath: "/kernel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := testJob(t, "ci", "12", "3456", pluginv1.Datasource_DATASOURCE_NOCLOUD, false)
			j.VM.ImagePullSecret = "regcred"
			j.KernelBoot = tt.kernelBoot
			vmi, err := j.VMI()
			if err != nil {
				t.Fatal(err)
			}
			checkVMIShape(t, j, vmi)
			fw := vmi.Spec.Domain.Firmware
			if tt.kernelBoot == nil {
				if fw != nil {
					t.Fatalf("firmware = %+v without kernel boot, want none", fw)
				}
				return
			}
			if fw == nil || fw.KernelBoot == nil || fw.KernelBoot.Container == nil {
				t.Fatalf("firmware = %+v, want kernelBoot with a container", fw)
			}
			kb, c := fw.KernelBoot, fw.KernelBoot.Container
			if kb.KernelArgs != tt.kernelBoot.Args || c.KernelPath != tt.kernelBoot.KernelPath || c.InitrdPath != tt.kernelBoot.InitrdPath {
				t.Errorf("kernelBoot = %+v, container %+v; want %+v", kb, c, tt.kernelBoot)
			}
			// The kernel comes from the same image as the root disk,
			// pulled the same way.
			cd := vmi.Spec.Volumes[0].ContainerDisk
			if c.Image != j.VM.Image || c.Image != cd.Image || c.ImagePullPolicy != cd.ImagePullPolicy || c.ImagePullSecret != "regcred" || cd.ImagePullSecret != "regcred" {
				t.Errorf("kernel container %+v does not match the containerDisk %+v", c, cd)
			}
		})
	}
}

func TestVMIRefusesInvalidKernelBoot(t *testing.T) {
	j := testJob(t, "ci", "12", "3456", pluginv1.Datasource_DATASOURCE_NOCLOUD, false)
	j.KernelBoot = &KernelBoot{Args: "a\nb", KernelPath: "vmlinuz"}
	_, err := j.VMI()
	for _, want := range []string{"vmi " + j.Names.VMI + ": kernel boot", `--kernel-args "a\nb"`, `--kernel-path "vmlinuz"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("VMI() error = %v, want it to contain %q", err, want)
		}
	}
}
