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
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube/kubetest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
)

// Set once in TestMain: env is the control plane shared by the tests of
// this package, binary the executor built from cmd/gitlab-runner-kubevirt,
// and pluginDir a plugin directory with real plugin binaries and their
// plugins.lock.
var (
	env       *kubeenv.Env
	binary    string
	pluginDir string
)

// module is this repository's module path.
const module = "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt"

// buildBinaries builds the executor and the plugins the end-to-end tests
// use into dir with go build, and pins the plugins with `plugins lock`.
func buildBinaries(dir string) error {
	binary = filepath.Join(dir, "gitlab-runner-kubevirt")
	pluginDir = filepath.Join(dir, "plugins")
	for _, b := range []struct{ out, pkg string }{
		{binary, module + "/cmd/gitlab-runner-kubevirt"},
		{filepath.Join(pluginDir, "gitlab-runner-kubevirt-plugin-transport-ssh"), module + "/plugins/transport-ssh"},
		// The real linux-cloudinit plugin with a readiness command that
		// holds on the stand-in's "guests" (see its doc comment).
		{filepath.Join(pluginDir, "gitlab-runner-kubevirt-plugin-linux-standin"), module + "/core/integration/testdata/linux-standin"},
	} {
		if out, err := exec.Command("go", "build", "-o", b.out, b.pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	lock := exec.Command(binary, "--plugin-dir", pluginDir, "plugins", "lock")
	if out, err := lock.CombinedOutput(); err != nil {
		return fmt.Errorf("gitlab-runner-kubevirt plugins lock: %v\n%s", err, out)
	}
	return nil
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gitlab-runner-kubevirt-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := kubeenv.RunMain(m, kubeenv.Options{}, func(e *kubeenv.Env) { env = e })
	os.RemoveAll(dir)
	os.Exit(code)
}

// serviceAccount is the ServiceAccount deploy/rbac.yaml binds the Role to.
const serviceAccount = kubetest.ServiceAccount

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

// newCluster creates a fresh namespace with the runner RBAC applied
// (kubetest.NewCluster).
func newCluster(t testing.TB) *cluster {
	t.Helper()
	c := kubetest.NewCluster(t, env, "it-")
	return &cluster{ns: c.Namespace, runner: c.Runner, kubeconfig: c.Kubeconfig, admin: c.Admin}
}

// setStatus updates a VMI's status as virt-controller would: get, change,
// update the whole object (no status subresource), retrying on conflicts.
func (c *cluster) setStatus(t testing.TB, name string, change func(*kubevirtv1.VirtualMachineInstanceStatus)) {
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
