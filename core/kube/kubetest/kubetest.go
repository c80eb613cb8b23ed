// Package kubetest gives the tests of packages built on core/kube a fresh
// namespace on a real kube-apiserver (test/kubeenv) with the runner's RBAC
// (deploy/rbac.yaml) applied, and a [kube.Clients] for each identity a test
// needs: the runner's ServiceAccount and the cluster admin.
package kubetest

import (
	"testing"

	"k8s.io/client-go/rest"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
)

// ServiceAccount is the runner's ServiceAccount in deploy/rbac.yaml.
const ServiceAccount = "gitlab-runner-kubevirt"

// Cluster is one test's namespace and its clients.
type Cluster struct {
	// Namespace is the fresh namespace; the runner's Role is bound in it.
	Namespace string
	// Runner authenticates as ServiceAccount, with only its Role's verbs.
	Runner *kube.Clients
	// RunnerConfig is the Runner identity's REST config, for clients in
	// another namespace.
	RunnerConfig *rest.Config
	// Kubeconfig is a kubeconfig file for the Runner identity.
	Kubeconfig string
	// Admin is the cluster admin: it plays KubeVirt (status updates) and
	// inspects what the runner left.
	Admin *kube.Clients
}

// NewCluster creates a namespace on env named prefix plus a random suffix,
// applies the runner's RBAC into it and connects both identities. It fails
// the test on any error.
func NewCluster(t testing.TB, env *kubeenv.Env, prefix string) *Cluster {
	t.Helper()
	ctx := t.Context()
	ns, err := env.NewNamespace(ctx, prefix)
	if err != nil {
		t.Fatalf("create namespace %s*: %v", prefix, err)
	}
	if err := env.ApplyRBAC(ctx, ns); err != nil {
		t.Fatalf("apply the runner's RBAC in namespace %s: %v", ns, err)
	}
	cfg, kubeconfig, err := env.ServiceAccountConfig(ctx, ns, ServiceAccount)
	if err != nil {
		t.Fatalf("credentials of ServiceAccount %s/%s: %v", ns, ServiceAccount, err)
	}
	runner, err := kube.NewForConfig(cfg, ns)
	if err != nil {
		t.Fatalf("runner clients: %v", err)
	}
	admin, err := kube.NewForConfig(env.AdminConfig(), ns)
	if err != nil {
		t.Fatalf("admin clients: %v", err)
	}
	return &Cluster{Namespace: ns, Runner: runner, RunnerConfig: cfg, Kubeconfig: kubeconfig, Admin: admin}
}
