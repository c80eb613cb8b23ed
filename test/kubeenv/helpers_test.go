package kubeenv_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"
)

// newNamespace creates a uniquely named namespace for one test.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns, err := env.NewNamespace(t.Context(), prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// minimalVMI is the smallest VMI the executor would create: a containerDisk
// root volume and a domain with resource requests.
func minimalVMI(name string) *virtv1.VirtualMachineInstance {
	return &virtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: virtv1.VirtualMachineInstanceSpec{
			Domain: virtv1.DomainSpec{
				Resources: virtv1.ResourceRequirements{
					Requests: corev1.ResourceList{
						corev1.ResourceCPU:    resource.MustParse("1"),
						corev1.ResourceMemory: resource.MustParse("1Gi"),
					},
				},
				Devices: virtv1.Devices{
					Disks: []virtv1.Disk{{
						Name:       "root",
						DiskDevice: virtv1.DiskDevice{Disk: &virtv1.DiskTarget{Bus: virtv1.DiskBusVirtio}},
					}},
				},
			},
			Volumes: []virtv1.Volume{{
				Name: "root",
				VolumeSource: virtv1.VolumeSource{
					ContainerDisk: &virtv1.ContainerDiskSource{Image: "registry.example.com/ci/debian:12"},
				},
			}},
		},
	}
}
