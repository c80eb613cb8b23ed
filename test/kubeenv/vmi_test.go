package kubeenv_test

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	virtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubevirt"
)

var vmiGVR = schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "virtualmachineinstances"}

func TestVMIAcceptsValid(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t, "vmi-valid")
	kv, err := kubevirt.NewForConfig(env.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	vmis := kv.KubevirtV1().VirtualMachineInstances(ns)

	created, err := vmis.Create(t.Context(), minimalVMI("job-1"), metav1.CreateOptions{FieldValidation: "Strict"})
	if err != nil {
		t.Fatalf("create a valid VMI: %v", err)
	}
	got, err := vmis.Get(t.Context(), created.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := got.Spec.Volumes[0].ContainerDisk.Image; img != "registry.example.com/ci/debian:12" {
		t.Errorf("round-tripped image %q", img)
	}
	if mem := got.Spec.Domain.Resources.Requests.Memory().String(); mem != "1Gi" {
		t.Errorf("round-tripped memory %q", mem)
	}
	// No status subresource: status is written with a plain update, as the
	// VMI stand-in will do.
	got.Status.Phase = virtv1.Scheduling
	updated, err := vmis.Update(t.Context(), got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update status through the main resource: %v", err)
	}
	if updated.Status.Phase != virtv1.Scheduling {
		t.Errorf("phase %q after update", updated.Status.Phase)
	}
	if err := vmis.Delete(t.Context(), created.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestVMIRejectsInvalid proves KubeVirt's schema is really enforced: each
// case would be stored as-is by a schemaless CRD.
func TestVMIRejectsInvalid(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t, "vmi-invalid")
	dyn, err := dynamic.NewForConfig(env.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(spec map[string]any)
		strict bool
		want   string // substring of the error
	}{
		{
			name:   "resources of the wrong type",
			mutate: func(s map[string]any) { domain(s)["resources"] = "lots" },
			want:   "spec.domain.resources",
		},
		{
			name:   "unknown enum value",
			mutate: func(s map[string]any) { domain(s)["rebootPolicy"] = "Sometimes" },
			want:   `spec.domain.rebootPolicy: Unsupported value: "Sometimes"`,
		},
		{
			name: "memory that is not a quantity",
			mutate: func(s map[string]any) {
				domain(s)["resources"] = map[string]any{"requests": map[string]any{"memory": "a lot"}}
			},
			want: "spec.domain.resources.requests.memory",
		},
		{
			name:   "missing domain",
			mutate: func(s map[string]any) { delete(s, "domain") },
			want:   "spec.domain: Required value",
		},
		{
			name:   "unknown field under strict validation",
			mutate: func(s map[string]any) { domain(s)["turbo"] = true },
			strict: true,
			want:   `unknown field "spec.domain.turbo"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := vmiObject(t, "bad")
			tt.mutate(obj.Object["spec"].(map[string]any))
			opts := metav1.CreateOptions{}
			if tt.strict {
				opts.FieldValidation = "Strict"
			}
			_, err := dyn.Resource(vmiGVR).Namespace(ns).Create(t.Context(), obj, opts)
			if err == nil {
				t.Fatal("the API server accepted an invalid VMI")
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Errorf("error is not Invalid/BadRequest: %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func domain(spec map[string]any) map[string]any { return spec["domain"].(map[string]any) }

// vmiObject is minimalVMI as an unstructured object, so tests can break it
// in ways the typed struct cannot express.
func vmiObject(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	vmi := minimalVMI(name)
	vmi.APIVersion = "kubevirt.io/v1"
	vmi.Kind = "VirtualMachineInstance"
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(vmi)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}
