package kubeenv_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
)

func TestServerVersion(t *testing.T) {
	t.Parallel()
	dc, err := discovery.NewDiscoveryClientForConfig(env.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != kubeenv.KubernetesVersion {
		t.Errorf("server version %q, want %q", v.GitVersion, kubeenv.KubernetesVersion)
	}
}

func TestAdminKubeconfig(t *testing.T) {
	t.Parallel()
	cfg, err := clientcmd.BuildConfigFromFlags("", env.AdminKubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(t.Context(), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("get namespace default with the admin kubeconfig: %v", err)
	}
}

func TestKubeVirtCRDsMatchUpstream(t *testing.T) {
	t.Parallel()
	dyn, err := dynamic.NewForConfig(env.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	tests := []struct {
		name       string
		shortNames []any
		status     bool // has a status subresource
	}{
		{"virtualmachineinstances.kubevirt.io", []any{"vmi", "vmis"}, false},
		{"virtualmachines.kubevirt.io", []any{"vm", "vms"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			crd, err := crds.Get(t.Context(), tt.name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			spec := crd.Object["spec"].(map[string]any)
			if spec["scope"] != "Namespaced" || spec["group"] != "kubevirt.io" {
				t.Errorf("scope %v group %v", spec["scope"], spec["group"])
			}
			names := spec["names"].(map[string]any)
			if got := names["shortNames"].([]any); len(got) != len(tt.shortNames) || got[0] != tt.shortNames[0] || got[1] != tt.shortNames[1] {
				t.Errorf("shortNames %v, want %v", got, tt.shortNames)
			}
			versions := spec["versions"].([]any)
			storage := ""
			for _, v := range versions {
				v := v.(map[string]any)
				if v["storage"] == true {
					storage = v["name"].(string)
				}
				if v["served"] != true {
					t.Errorf("version %v not served", v["name"])
				}
				sub, _ := v["subresources"].(map[string]any)
				_, hasStatus := sub["status"]
				if hasStatus != tt.status {
					t.Errorf("version %v: status subresource %v, want %v", v["name"], hasStatus, tt.status)
				}
				schema := v["schema"].(map[string]any)["openAPIV3Schema"].(map[string]any)
				if _, ok := schema["properties"].(map[string]any)["spec"]; !ok {
					t.Errorf("version %v: schema has no spec", v["name"])
				}
			}
			if storage != "v1" {
				t.Errorf("storage version %q, want v1", storage)
			}
		})
	}
}
