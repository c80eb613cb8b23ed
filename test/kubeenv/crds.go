package kubeenv

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// crdFS holds the generated KubeVirt CRDs (see internal/crdgen).
//
//go:embed crds/*.yaml
var crdFS embed.FS

// CRDs returns the embedded KubeVirt CustomResourceDefinition manifests
// (VirtualMachineInstance and VirtualMachine, with KubeVirt's full OpenAPI
// validation) keyed by file name.
func CRDs() (map[string][]byte, error) {
	names, err := fs.Glob(crdFS, "crds/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("list embedded CRDs: %w", err)
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		data, err := crdFS.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("read embedded %s: %w", n, err)
		}
		out[path.Base(n)] = data
	}
	return out, nil
}

// installCRDs creates the embedded CRDs and waits until each is Established.
func installCRDs(ctx context.Context, cfg *rest.Config, timeout time.Duration) error {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	files, err := CRDs()
	if err != nil {
		return err
	}
	crds := client.Resource(schema.GroupVersionResource{
		Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions",
	})
	var names []string
	for file, data := range files {
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			return fmt.Errorf("decode %s: %w", file, err)
		}
		if _, err := crds.Create(ctx, &obj, metav1.CreateOptions{FieldManager: "kubeenv"}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s: %w", obj.GetName(), err)
		}
		names = append(names, obj.GetName())
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, name := range names {
		gvr, err := waitEstablished(ctx, crds, name)
		if err != nil {
			return err
		}
		if err := waitServed(ctx, client.Resource(gvr)); err != nil {
			return fmt.Errorf("CRD %s: %w", name, err)
		}
	}
	return nil
}

// waitServed lists the custom resource until the API server answers, so the
// first request of a test does not pay for the handler's lazy set-up.
func waitServed(ctx context.Context, res dynamic.NamespaceableResourceInterface) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := res.List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not served: %w (last error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// waitEstablished waits for the CRD's Established condition and returns the
// resource of its storage version.
func waitEstablished(ctx context.Context, crds dynamic.ResourceInterface, name string) (schema.GroupVersionResource, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		obj, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return schema.GroupVersionResource{}, fmt.Errorf("get CRD %s: %w", name, err)
		}
		conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		var reasons []string
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return storageResource(obj)
			}
			if m["status"] != "True" {
				reasons = append(reasons, fmt.Sprintf("%v=%v (%v: %v)", m["type"], m["status"], m["reason"], m["message"]))
			}
		}
		select {
		case <-ctx.Done():
			return schema.GroupVersionResource{}, fmt.Errorf("CRD %s not Established: %w; conditions: %v", name, ctx.Err(), reasons)
		case <-tick.C:
		}
	}
}

func storageResource(crd *unstructured.Unstructured) (schema.GroupVersionResource, error) {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		m, _ := v.(map[string]any)
		if name, _ := m["name"].(string); m["storage"] == true && name != "" {
			return schema.GroupVersionResource{Group: group, Version: name, Resource: plural}, nil
		}
	}
	return schema.GroupVersionResource{}, fmt.Errorf("CRD %s has no storage version", crd.GetName())
}

// warmUpVMIs dry-run creates a VirtualMachineInstance in namespace default
// until it succeeds. The first write of a new resource type after the API
// server starts costs about 2s (the ResourceQuota admission plugin sets up an
// evaluator for it); paying that here keeps it out of the callers' first
// create, and proves the VMI resource is served. Nothing is stored.
func warmUpVMIs(ctx context.Context, cfg *rest.Config, timeout time.Duration) error {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	vmis := client.Resource(schema.GroupVersionResource{
		Group: "kubevirt.io", Version: "v1", Resource: "virtualmachineinstances",
	}).Namespace(metav1.NamespaceDefault)
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubevirt.io/v1",
		"kind":       "VirtualMachineInstance",
		"metadata":   map[string]any{"name": "kubeenv-warm-up"},
		"spec":       map[string]any{"domain": map[string]any{"devices": map[string]any{}}},
	}}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := vmis.Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("warm up virtualmachineinstances: %w (last error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}
