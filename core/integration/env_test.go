package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
)

// env is the control plane shared by the tests of this package, and
// binary the executor built from cmd/gitlab-runner-kubevirt; both are set
// once in TestMain.
var (
	env    *kubeenv.Env
	binary string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gitlab-runner-kubevirt-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gitlab-runner-kubevirt")
	build := exec.Command("go", "build", "-o", binary, "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/cmd/gitlab-runner-kubevirt")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the executor: %v\n%s", err, out)
		os.Exit(1)
	}
	code := kubeenv.RunMain(m, kubeenv.Options{}, func(e *kubeenv.Env) { env = e })
	os.RemoveAll(dir)
	os.Exit(code)
}

// serviceAccount is the ServiceAccount deploy/rbac.yaml binds the Role to.
const serviceAccount = "gitlab-runner-kubevirt"

// cluster is one test's namespace with two views of it.
type cluster struct {
	ns string
	// runner authenticates as the runner's ServiceAccount (deploy/rbac.yaml).
	runner *kube.Clients
	// kubeconfig is a kubeconfig file for the runner identity.
	kubeconfig string
	// admin plays KubeVirt (status updates) and inspects.
	admin *kube.Clients
}

// newCluster creates a fresh namespace with the runner RBAC applied.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := t.Context()
	ns, err := env.NewNamespace(ctx, "it-")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.ApplyRBAC(ctx, ns); err != nil {
		t.Fatal(err)
	}
	cfg, kubeconfig, err := env.ServiceAccountConfig(ctx, ns, serviceAccount)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := kube.NewForConfig(cfg, ns)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kube.NewForConfig(env.AdminConfig(), ns)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{ns: ns, runner: runner, kubeconfig: kubeconfig, admin: admin}
}

// setStatus updates a VMI's status as virt-controller would: get, change,
// update the whole object (no status subresource), retrying on conflicts.
func (c *cluster) setStatus(t *testing.T, name string, change func(*kubevirtv1.VirtualMachineInstanceStatus)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	vmis := c.admin.Virt.KubevirtV1().VirtualMachineInstances(c.ns)
	for {
		vmi, err := vmis.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("get vmi %s: %v", name, err)
			return
		}
		change(&vmi.Status)
		_, err = vmis.Update(ctx, vmi, metav1.UpdateOptions{})
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Errorf("update vmi %s status: %v", name, err)
			return
		}
	}
}
