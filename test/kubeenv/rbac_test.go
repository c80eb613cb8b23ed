package kubeenv_test

import (
	"context"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"kubevirt.io/client-go/kubevirt"
)

const runnerSA = "gitlab-runner-kubevirt"

// TestRunnerRBAC checks deploy/rbac.yaml against a real authorizer: the
// runner's ServiceAccount can do its job in its own namespace and nothing
// else.
func TestRunnerRBAC(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ns := newNamespace(t, "runner")
	other := newNamespace(t, "other")
	if err := env.ApplyRBAC(ctx, ns); err != nil {
		t.Fatal(err)
	}
	// Applying twice is fine (server-side apply).
	if err := env.ApplyRBAC(ctx, ns); err != nil {
		t.Fatalf("re-apply: %v", err)
	}
	cfg, kubeconfig, err := env.ServiceAccountConfig(ctx, ns, runnerSA)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := kubevirt.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	allowed := []struct {
		name string
		do   func() error
	}{
		{"create vmi", func() error {
			_, err := kv.KubevirtV1().VirtualMachineInstances(ns).Create(ctx, minimalVMI("job-1"), metav1.CreateOptions{})
			return err
		}},
		{"get vmi", func() error {
			_, err := kv.KubevirtV1().VirtualMachineInstances(ns).Get(ctx, "job-1", metav1.GetOptions{})
			return err
		}},
		{"list vmis", func() error {
			_, err := kv.KubevirtV1().VirtualMachineInstances(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"watch vmis", func() error {
			w, err := kv.KubevirtV1().VirtualMachineInstances(ns).Watch(ctx, metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{"create secret", func() error {
			_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "job-1"},
				StringData: map[string]string{"userdata": "#cloud-config\n"},
			}, metav1.CreateOptions{})
			return err
		}},
		{"get secret", func() error {
			_, err := cs.CoreV1().Secrets(ns).Get(ctx, "job-1", metav1.GetOptions{})
			return err
		}},
		{"list secrets", func() error {
			_, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"patch secret ownerReferences", func() error {
			vmi, err := kv.KubevirtV1().VirtualMachineInstances(ns).Get(ctx, "job-1", metav1.GetOptions{})
			if err != nil {
				return err
			}
			patch := `{"metadata":{"ownerReferences":[{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachineInstance","name":"job-1","uid":"` + string(vmi.UID) + `"}]}}`
			_, err = cs.CoreV1().Secrets(ns).Patch(ctx, "job-1", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			return err
		}},
		{"create event", func() error {
			_, err := cs.CoreV1().Events(ns).Create(ctx, &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{GenerateName: "job-1-"},
				InvolvedObject: corev1.ObjectReference{APIVersion: "kubevirt.io/v1", Kind: "VirtualMachineInstance", Namespace: ns, Name: "job-1"},
				Reason:         "Prepared",
				Message:        "test",
				Type:           corev1.EventTypeNormal,
			}, metav1.CreateOptions{})
			return err
		}},
		{"delete secret", func() error {
			return cs.CoreV1().Secrets(ns).Delete(ctx, "job-1", metav1.DeleteOptions{})
		}},
		{"delete vmi", func() error {
			return kv.KubevirtV1().VirtualMachineInstances(ns).Delete(ctx, "job-1", metav1.DeleteOptions{})
		}},
	}
	// In order: later steps use what earlier ones created.
	for _, a := range allowed {
		if err := a.do(); err != nil {
			t.Fatalf("%s in own namespace: %v", a.name, err)
		}
	}

	forbidden := []struct {
		name string
		do   func() error
	}{
		{"create vmi in another namespace", func() error {
			_, err := kv.KubevirtV1().VirtualMachineInstances(other).Create(ctx, minimalVMI("job-2"), metav1.CreateOptions{})
			return err
		}},
		{"list vmis in another namespace", func() error {
			_, err := kv.KubevirtV1().VirtualMachineInstances(other).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"list vmis in all namespaces", func() error {
			_, err := kv.KubevirtV1().VirtualMachineInstances(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"get secrets in another namespace", func() error {
			_, err := cs.CoreV1().Secrets(other).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"update secret (the owner is set by a merge patch)", func() error {
			// Authorization comes before the lookup: no need for the
			// Secret to exist.
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "job-1", Namespace: ns, Labels: map[string]string{"updated": "yes"}}}
			_, err := cs.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
			return err
		}},
		{"update vmi", func() error {
			_, err := kv.KubevirtV1().VirtualMachineInstances(ns).Patch(ctx, "job-1", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		}},
		{"list pods", func() error {
			_, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"create configmap", func() error {
			_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		}},
		{"list virtualmachines", func() error {
			_, err := kv.KubevirtV1().VirtualMachines(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"list namespaces", func() error {
			_, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
			return err
		}},
		{"widen its own role", func() error {
			_, err := cs.RbacV1().Roles(ns).Get(ctx, runnerSA, metav1.GetOptions{})
			return err
		}},
	}
	for _, f := range forbidden {
		t.Run(f.name, func(t *testing.T) {
			err := f.do()
			if !apierrors.IsForbidden(err) {
				t.Errorf("want Forbidden, got %v", err)
			}
		})
	}

	// The kubeconfig carries the same identity and defaults to ns.
	kcfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kv2, err := kubevirt.NewForConfig(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv2.KubevirtV1().VirtualMachineInstances(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list vmis with the ServiceAccount kubeconfig: %v", err)
	}
	raw, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Contexts[raw.CurrentContext].Namespace; got != ns {
		t.Errorf("kubeconfig namespace %q, want %q", got, ns)
	}
}

func TestServiceAccountConfigUnknownAccount(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t, "nosa")
	_, _, err := env.ServiceAccountConfig(t.Context(), ns, "missing")
	if !apierrors.IsNotFound(err) {
		t.Errorf("want NotFound, got %v", err)
	}
}

func TestApplyManifestRefusesClusterScoped(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t, "cluster-scoped")
	manifest := []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: too-much
rules: []
`)
	err := env.ApplyManifest(t.Context(), ns, manifest)
	if err == nil || !strings.Contains(err.Error(), "cluster-scoped") {
		t.Errorf("want a cluster-scoped refusal, got %v", err)
	}
}

// TestWaitGranted checks that ApplyRBAC returns with the runner's Role in
// force (each of its verbs is granted at once, without retrying) and that
// WaitGranted gives up, naming the verb, on one the Role does not grant.
func TestWaitGranted(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ns := newNamespace(t, "granted")
	if err := env.ApplyRBAC(ctx, ns); err != nil {
		t.Fatal(err)
	}
	admin, err := kubernetes.NewForConfig(env.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		group, resource, verb string
		allowed               bool
	}{
		{"kubevirt.io", "virtualmachineinstances", "create", true},
		{"kubevirt.io", "virtualmachineinstances", "watch", true},
		{"", "secrets", "delete", true},
		{"", "events", "create", true},
		{"", "pods", "create", false},
		{"", "secrets", "update", false},
	}
	for _, tt := range tests {
		review, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User:               "system:serviceaccount:" + ns + ":" + runnerSA,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Group: tt.group, Resource: tt.resource, Verb: tt.verb},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if review.Status.Allowed != tt.allowed {
			t.Errorf("right after ApplyRBAC, %s %s allowed = %v, want %v", tt.verb, tt.resource, review.Status.Allowed, tt.allowed)
		}
	}

	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err = env.WaitGranted(short, ns, runnerSA, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}})
	if err == nil || !strings.Contains(err.Error(), "create pods") {
		t.Errorf("WaitGranted for a verb the Role lacks = %v, want an error naming create pods", err)
	}
}
