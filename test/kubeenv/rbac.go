package kubeenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// RBACManifestPath is the repository-relative path of the runner's RBAC.
const RBACManifestPath = "deploy/rbac.yaml"

// RBACManifest reads deploy/rbac.yaml from the repository root (see
// [RepoRoot]).
func RBACManifest() ([]byte, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, fmt.Errorf("locate %s: %w", RBACManifestPath, err)
	}
	path := filepath.Join(root, filepath.FromSlash(RBACManifestPath))
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read RBAC manifest: %w", err)
	}
	return data, nil
}

// ApplyRBAC applies deploy/rbac.yaml (the runner's ServiceAccount, Role and
// RoleBinding) into namespace, as [Env.ApplyManifest] does.
func (e *Env) ApplyRBAC(ctx context.Context, namespace string) error {
	data, err := RBACManifest()
	if err != nil {
		return err
	}
	if err := e.ApplyManifest(ctx, namespace, data); err != nil {
		return fmt.Errorf("apply %s: %w", RBACManifestPath, err)
	}
	return nil
}

// ApplyManifest server-side applies every object of a multi-document YAML
// manifest into namespace, as the admin. Each object's metadata.namespace is
// rewritten to namespace, and so is the namespace of RoleBinding subjects
// that pointed at the object's original namespace (so a binding keeps
// referring to the ServiceAccount applied with it). Cluster-scoped objects
// are refused: the manifests this project ships are namespace-scoped.
// It returns once every RoleBinding of the manifest that binds a Role of it
// to ServiceAccounts is in force (see [Env.WaitGranted]).
func (e *Env) ApplyManifest(ctx context.Context, namespace string, manifest []byte) error {
	objs, err := decodeManifest(manifest)
	if err != nil {
		return err
	}
	cfg := e.AdminConfig()
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	groups, err := restmapper.GetAPIGroupResources(disc)
	if err != nil {
		return fmt.Errorf("discover API resources: %w", err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}

	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		desc := fmt.Sprintf("%s %s", gvk.Kind, obj.GetName())
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s: %w", desc, err)
		}
		if m.Scope.Name() != meta.RESTScopeNameNamespace {
			return fmt.Errorf("%s: cluster-scoped objects are not allowed here", desc)
		}
		if err := retarget(obj, namespace); err != nil {
			return fmt.Errorf("%s: %w", desc, err)
		}
		_, err = client.Resource(m.Resource).Namespace(namespace).Apply(ctx, obj.GetName(), obj,
			metav1.ApplyOptions{FieldManager: "kubeenv", Force: true})
		if err != nil {
			return fmt.Errorf("apply %s in %s: %w", desc, namespace, err)
		}
	}
	// Return only once the bindings are in force, so the caller can use
	// the ServiceAccounts at once.
	return e.waitManifestGranted(ctx, namespace, objs)
}

// decodeManifest splits a multi-document YAML (or JSON) manifest into
// objects, skipping empty documents.
func decodeManifest(manifest []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for i := 0; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("manifest document %d: %w", i, err)
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		if obj.GetKind() == "" || obj.GetName() == "" {
			return nil, fmt.Errorf("manifest document %d: missing kind or metadata.name", i)
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		return nil, errors.New("manifest has no objects")
	}
	return objs, nil
}

// retarget moves obj into namespace, including RoleBinding subjects that
// referred to obj's original namespace.
func retarget(obj *unstructured.Unstructured, namespace string) error {
	orig := obj.GetNamespace()
	obj.SetNamespace(namespace)
	if obj.GetKind() != "RoleBinding" {
		return nil
	}
	subjects, found, err := unstructured.NestedSlice(obj.Object, "subjects")
	if err != nil || !found {
		return err
	}
	for _, s := range subjects {
		sub, ok := s.(map[string]any)
		if !ok {
			return fmt.Errorf("subject %v is not an object", s)
		}
		if ns, _ := sub["namespace"].(string); sub["kind"] == "ServiceAccount" && (ns == orig || ns == "") {
			sub["namespace"] = namespace
		}
	}
	return unstructured.SetNestedSlice(obj.Object, subjects, "subjects")
}
