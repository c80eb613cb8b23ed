package integration

import (
	"strconv"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
)

// TestKernelBootIsAcceptedByKubeVirtSchema creates a kernel-booting VMI as
// the runner's ServiceAccount and reads back what the API server stored
// after the CRD's structural schema pruned unknown fields: every kernel
// boot field must survive.
func TestKernelBootIsAcceptedByKubeVirtSchema(t *testing.T) {
	tests := []struct {
		name string
		kb   kube.KernelBoot
	}{
		{name: "microvm defaults", kb: kube.DefaultKernelBoot()},
		{name: "no initrd", kb: kube.KernelBoot{Args: "console=ttyS0 root=/dev/vda rw quiet", KernelPath: "/kernel/bzImage"}},
	}
	c := newCluster(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := job(t, c.ns, "21", "70"+strconv.Itoa(i), time.Now(), time.Hour)
			j.VM.ImagePullSecret = "regcred"
			j.KernelBoot = &tt.kb
			created := c.create(t, j)
			vmi, err := c.admin.GetVMI(t.Context(), created.Name)
			if err != nil {
				t.Fatal(err)
			}
			fw := vmi.Spec.Domain.Firmware
			if fw == nil || fw.KernelBoot == nil || fw.KernelBoot.Container == nil {
				t.Fatalf("stored firmware = %+v, want kernelBoot with a container", fw)
			}
			kb, ct := fw.KernelBoot, fw.KernelBoot.Container
			if kb.KernelArgs != tt.kb.Args || ct.KernelPath != tt.kb.KernelPath || ct.InitrdPath != tt.kb.InitrdPath {
				t.Errorf("stored kernelBoot %+v container %+v, want %+v", kb, ct, tt.kb)
			}
			if ct.Image != j.VM.Image || string(ct.ImagePullPolicy) != j.VM.ImagePullPolicy || ct.ImagePullSecret != "regcred" {
				t.Errorf("stored kernel container %+v, want image %s pulled %s with regcred", ct, j.VM.Image, j.VM.ImagePullPolicy)
			}
			if cd := vmi.Spec.Volumes[0].ContainerDisk; cd == nil || cd.Image != ct.Image {
				t.Errorf("containerDisk %+v and kernel container image %s differ", cd, ct.Image)
			}
		})
	}
}
