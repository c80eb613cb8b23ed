package reliability_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// The steps of a job's life, in order, that RBAC can break. "run" is any
// run sub-stage (the first one, prepare_script, reads the job's objects).
const (
	stepPrepare = "prepare"
	stepRun     = "run"
	stepCleanup = "cleanup"
	stepGC      = "gc"
	// stepNone marks a verb no step is known to need; its case fails,
	// saying the Role is wider than the executor needs.
	stepNone = ""
)

// rbacPrepareTimeout is prepare's --timeout in the verb cases: a bound
// against a wait that never ends (client-go retries a forbidden list or
// watch); a stand-in job prepares in a few seconds even with every case
// running at once.
const rbacPrepareTimeout = "25s"

const (
	groupKubeVirt = "kubevirt.io"
	resourceVMIs  = "virtualmachineinstances"
	resSecrets    = "secrets"
)

// TestRBACEachVerbIsNeeded proves that deploy/rbac.yaml's Role is the least
// privilege for VMIs and Secrets: for each verb of those two rules, a copy
// of the Role without that verb is bound to the runner's ServiceAccount in
// a fresh namespace (with its own stand-in and guest account), a real job
// runs through the built binaries as that ServiceAccount (prepare, run
// sub-stages, cleanup) and then gc runs as it, as the CronJob would. The
// first step that fails must be the one the table names, and it must say
// "forbidden". A verb whose removal breaks nothing fails its case: the
// Role would be wider than needed.
//
// It also shows the ServiceAccount bound to the full Role may do nothing
// outside it: other namespaces, pods, configmaps (access reviews and real
// calls).
func TestRBACEachVerbIsNeeded(t *testing.T) {
	defer assertClean(t)
	manifest, err := kubeenv.RBACManifest()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		group, resource, verb string
		// step is the first step that fails without the verb.
		step string
		// why names the call that needs the verb.
		why string
	}{
		{groupKubeVirt, resourceVMIs, "get", stepRun, "run reads the job's VMI for its address"},
		// client-go >= 0.35 streams a reflector's initial list over a
		// watch (WatchListClient) and falls back to list: prepare's wait
		// works with either verb alone, gc's list needs list.
		{groupKubeVirt, resourceVMIs, "list", stepGC, "gc lists the VMIs to find expired ones"},
		{groupKubeVirt, resourceVMIs, "watch", stepPrepare, "prepare watches the VMI until it runs"},
		{groupKubeVirt, resourceVMIs, "create", stepPrepare, "prepare creates the job's VMI"},
		{groupKubeVirt, resourceVMIs, "delete", stepCleanup, "cleanup deletes the job's VMI"},
		{"", resSecrets, "get", stepRun, "run reads the job's credentials"},
		{"", resSecrets, "list", stepGC, "gc lists the job Secrets to find orphans"},
		{"", resSecrets, "create", stepPrepare, "prepare creates the job's credential Secret"},
		{"", resSecrets, "patch", stepPrepare, "prepare patches the Secret's ownerReferences to the VMI"},
		{"", resSecrets, "delete", stepCleanup, "cleanup deletes the job's Secret"},
	}

	// The table must cover exactly the verbs the Role grants on these two
	// resources: a verb added to the Role needs its case.
	granted, err := roleVerbs(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var covered []string
	for _, tt := range tests {
		covered = append(covered, tt.group+"/"+tt.resource+":"+tt.verb)
	}
	slices.Sort(covered)
	var want []string
	for _, gv := range granted {
		if strings.HasPrefix(gv, groupKubeVirt+"/"+resourceVMIs+":") || strings.HasPrefix(gv, "/"+resSecrets+":") {
			want = append(want, gv)
		}
	}
	if !slices.Equal(covered, want) {
		t.Fatalf("the table covers\n  %s\nbut %s grants on VMIs and Secrets\n  %s", strings.Join(covered, "\n  "), kubeenv.RBACManifestPath, strings.Join(want, "\n  "))
	}

	t.Run("forbidden outside the Role", func(t *testing.T) { testForbiddenOutsideRole(t, manifest) })
	// The group returns once every parallel case is done and cleaned up,
	// before assertClean.
	t.Run("without", func(t *testing.T) {
		for _, tt := range tests {
			name := tt.resource + " " + tt.verb
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				edited, err := withoutVerb(manifest, tt.group, tt.resource, tt.verb)
				if err != nil {
					t.Fatal(err)
				}
				steps := runAsRole(t, edited, "rbac-"+tt.verb+"-")
				failed := steps.firstFailure()
				switch {
				case tt.step == stepNone && failed == stepNone:
					t.Errorf("without %s on %s every step succeeded (prepare, run, cleanup, gc): no stage needs it, so %s grants more than the executor needs; drop the verb from the Role", tt.verb, tt.resource, kubeenv.RBACManifestPath)
				case tt.step == stepNone:
					t.Errorf("without %s on %s, %s failed although no stage is known to need the verb (%s); update the table:\n%s", tt.verb, tt.resource, failed, tt.why, steps.output(failed))
				case failed == stepNone:
					t.Errorf("without %s on %s every step succeeded; want %s to fail (%s)", tt.verb, tt.resource, tt.step, tt.why)
				case failed != tt.step:
					t.Errorf("without %s on %s the first step to fail is %s, want %s (%s):\n%s", tt.verb, tt.resource, failed, tt.step, tt.why, steps.output(failed))
				default:
					out := steps.output(failed)
					if !strings.Contains(strings.ToLower(out), "forbidden") {
						t.Errorf("without %s on %s, %s failed without saying the request was forbidden:\n%s", tt.verb, tt.resource, failed, out)
					}
					t.Logf("without %s on %s: %s fails (%s)", tt.verb, tt.resource, failed, tt.why)
				}
			})
		}
	})
}

// roleVerbs returns the sorted group/resource:verb list of the Role in
// manifest.
func roleVerbs(manifest []byte) ([]string, error) {
	objs, err := decodeObjects(manifest)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, o := range objs {
		if o.GetKind() != "Role" {
			continue
		}
		role, err := toRole(o)
		if err != nil {
			return nil, err
		}
		for _, r := range role.Rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						out = append(out, g+"/"+res+":"+v)
					}
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("manifest %s: no Role with rules", kubeenv.RBACManifestPath)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// withoutVerb returns manifest with verb removed from the Role's rule for
// group/resource. It fails if that rule does not grant verb, or grants it
// on other resources too (the copy must differ by exactly one right).
func withoutVerb(manifest []byte, group, resource, verb string) ([]byte, error) {
	objs, err := decodeObjects(manifest)
	if err != nil {
		return nil, err
	}
	var docs [][]byte
	removed := false
	for _, o := range objs {
		if o.GetKind() == "Role" {
			role, err := toRole(o)
			if err != nil {
				return nil, err
			}
			for i, r := range role.Rules {
				if !slices.Contains(r.APIGroups, group) || !slices.Contains(r.Resources, resource) || !slices.Contains(r.Verbs, verb) {
					continue
				}
				if len(r.APIGroups) != 1 || len(r.Resources) != 1 {
					return nil, fmt.Errorf("role %s rule %d: grants %q on %v in groups %v; split it so one verb of %q can be removed alone", role.Name, i, verb, r.Resources, r.APIGroups, resource)
				}
				role.Rules[i].Verbs = slices.DeleteFunc(slices.Clone(r.Verbs), func(v string) bool { return v == verb })
				removed = true
			}
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(role)
			if err != nil {
				return nil, fmt.Errorf("encode role %s: %w", role.Name, err)
			}
			o = &unstructured.Unstructured{Object: m}
		}
		doc, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		docs = append(docs, doc)
	}
	if !removed {
		return nil, fmt.Errorf("manifest %s: the Role does not grant verb %q on %q in group %q", kubeenv.RBACManifestPath, verb, resource, group)
	}
	return bytes.Join(docs, []byte("---\n")), nil
}

// decodeObjects splits a multi-document YAML manifest into objects.
func decodeObjects(manifest []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for i := 0; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("manifest %s document %d: %w", kubeenv.RBACManifestPath, i, err)
		}
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

func toRole(o *unstructured.Unstructured) (*rbacv1.Role, error) {
	role := &rbacv1.Role{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, role); err != nil {
		return nil, fmt.Errorf("decode role %s: %w", o.GetName(), err)
	}
	return role, nil
}

// roleBed is a fresh namespace with an RBAC manifest applied, the
// ServiceAccount's kubeconfig, a guest account and a stand-in.
type roleBed struct {
	namespace, kubeconfig string
	account               *standin.Account
}

// newRoleBed sets up a roleBed for manifest; everything is removed when
// the test ends (objects the restricted executor could not delete are
// deleted as the admin first, so the stand-in releases their guests).
func newRoleBed(t *testing.T, manifest []byte, prefix string) *roleBed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ns, err := bed.Env.NewNamespace(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := bed.Env.ApplyManifest(ctx, ns, manifest); err != nil {
		t.Fatal(err)
	}
	_, kubeconfig, err := bed.Env.ServiceAccountConfig(ctx, ns, e2e.ServiceAccount)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := standin.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := acct.Remove(context.Background()); err != nil {
			t.Errorf("remove guest account: %v", err)
		}
	})
	si, err := standin.Start(ctx, standin.Options{
		Config: bed.Env.AdminConfig(), Namespace: ns, SSHPort: bed.SSHPort,
		NodeName: "standin-" + ns, Accounts: []*standin.Account{acct},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := si.Stop(); err != nil {
			t.Errorf("stop the stand-in of %s: %v", ns, err)
		}
	})
	t.Cleanup(func() { purge(t, ns, si) })
	return &roleBed{namespace: ns, kubeconfig: kubeconfig, account: acct}
}

// purge deletes, as the admin, whatever a restricted job left in ns and
// waits until the stand-in powered the guests off.
func purge(t *testing.T, ns string, si *standin.Controller) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	vmis, secrets, err := objects(ctx, ns)
	if err != nil {
		t.Errorf("list leftovers in %s: %v", ns, err)
		return
	}
	for _, n := range vmis {
		if err := bed.Virt.KubevirtV1().VirtualMachineInstances(ns).Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete leftover vmi %s/%s: %v", ns, n, err)
		}
	}
	for _, n := range secrets {
		if err := bed.Kube.CoreV1().Secrets(ns).Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete leftover secret %s/%s: %v", ns, n, err)
		}
	}
	if err := si.WaitIdle(ctx); err != nil {
		t.Errorf("stand-in of %s: %v", ns, err)
	}
}

// runnerConfig is the bed's runner configuration moved to rb: its
// namespace, its ServiceAccount's kubeconfig, its guest account.
func (rb *roleBed) runnerConfig(prepareArgs ...string) runner.Config {
	cfg := bed.RunnerConfig(prepareArgs...)
	swap := func(args []string) []string {
		out := slices.Clone(args)
		for i := range out {
			switch out[i] {
			case bed.Namespace:
				out[i] = rb.namespace
			case bed.Kubeconfig:
				out[i] = rb.kubeconfig
			case bed.Account.Name:
				out[i] = rb.account.Name
			}
		}
		return out
	}
	cfg.ConfigArgs, cfg.PrepareArgs, cfg.RunArgs, cfg.CleanupArgs = swap(cfg.ConfigArgs), swap(cfg.PrepareArgs), swap(cfg.RunArgs), swap(cfg.CleanupArgs)
	cfg.PrepareRetries = 1
	return cfg
}

// jobSteps is what happened to one job and the gc after it.
type jobSteps struct {
	res *runner.Result
	// gcRan and gcErr/gcOut: gc runs only when the job's own stages all
	// succeeded.
	gcRan bool
	gcErr error
	gcOut string
}

// firstFailure names the first step that failed, or stepNone.
func (s *jobSteps) firstFailure() string {
	switch s.res.FailedStage {
	case "":
	case "prepare", "config":
		return s.res.FailedStage
	case "cleanup":
		return stepCleanup
	default:
		return stepRun
	}
	if c, ok := s.res.Stage("cleanup"); !ok || c.ExitCode != 0 || c.Signal != "" {
		return stepCleanup
	}
	if s.gcRan && s.gcErr != nil {
		return stepGC
	}
	return stepNone
}

// output returns what step printed (cleanup's output is only in the
// runner's log, as with gitlab-runner).
func (s *jobSteps) output(step string) string {
	switch step {
	case stepGC:
		return s.gcOut
	case stepCleanup:
		var b strings.Builder
		for _, line := range strings.Split(s.res.RunnerLog, "\n") {
			if strings.Contains(line, "cleanup_std") {
				b.WriteString(line + "\n")
			}
		}
		return b.String()
	case stepRun:
		return s.res.Output(s.res.FailedStage)
	default:
		return s.res.Output(step)
	}
}

// runAsRole runs one job and then gc as the ServiceAccount bound by
// manifest in a fresh namespace, with the sshd stand-in.
func runAsRole(t *testing.T, manifest []byte, prefix string) *jobSteps {
	t.Helper()
	rb := newRoleBed(t, manifest, prefix)
	cfg := rb.runnerConfig("--timeout", rbacPrepareTimeout)
	cfg.CleanupArgs = append(cfg.CleanupArgs, "--timeout", "20s")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	job := runner.Job{ID: nextJobID(), Script: []string{"echo rbac-job-ran"}, AfterScript: []string{"echo after"}}
	steps := &jobSteps{res: runJob(ctx, t, e2etest.NewExecutor(t, cfg), job)}
	if steps.firstFailure() == stepNone {
		if !strings.Contains(steps.res.JobLog(), "rbac-job-ran") {
			t.Errorf("the job succeeded but its script's output is missing")
		}
		steps.gcRan = true
		steps.gcOut, steps.gcErr = runGC(ctx, rb.kubeconfig, rb.namespace)
	}
	return steps
}

// runGC runs `gitlab-runner-kubevirt gc` in namespace as kubeconfig's
// identity, expiring every job object, and returns its output.
func runGC(ctx context.Context, kubeconfig, namespace string) (string, error) {
	cmd := exec.CommandContext(ctx, bed.Core, "gc", "--kubeconfig", kubeconfig, "--namespace", namespace,
		"--max-age", "1ns", "--orphan-grace", "1ns")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("gc in %s: %w", namespace, err)
	}
	return out.String(), nil
}

// testForbiddenOutsideRole binds the unmodified Role in a fresh namespace
// and shows its ServiceAccount may not touch VMIs or Secrets in another
// namespace (the bed's, which holds the same Role for another
// ServiceAccount) or cluster-wide, nor pods or configmaps in its own:
// access reviews say so, and real calls are refused as Forbidden.
func testForbiddenOutsideRole(t *testing.T, manifest []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ns, err := bed.Env.NewNamespace(ctx, "rbac-full-")
	if err != nil {
		t.Fatal(err)
	}
	if err := bed.Env.ApplyManifest(ctx, ns, manifest); err != nil {
		t.Fatal(err)
	}
	cfg, kubeconfig, err := bed.Env.ServiceAccountConfig(ctx, ns, e2e.ServiceAccount)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	other := bed.Namespace
	reviews := []struct {
		verb, group, resource, namespace string
		allowed                          bool
	}{
		// Sanity: the Role works in its own namespace.
		{"create", groupKubeVirt, resourceVMIs, ns, true},
		{"get", "", resSecrets, ns, true},
		// Not in another namespace, not cluster-wide.
		{"get", groupKubeVirt, resourceVMIs, other, false},
		{"list", groupKubeVirt, resourceVMIs, other, false},
		{"create", groupKubeVirt, resourceVMIs, other, false},
		{"delete", groupKubeVirt, resourceVMIs, other, false},
		{"get", "", resSecrets, other, false},
		{"list", "", resSecrets, other, false},
		{"delete", "", resSecrets, other, false},
		{"list", groupKubeVirt, resourceVMIs, "", false},
		{"list", "", resSecrets, "", false},
		// Not pods or configmaps, even in its own namespace.
		{"list", "", "pods", ns, false},
		{"create", "", "pods", ns, false},
		{"create", "", "pods/exec", ns, false},
		{"get", "", "configmaps", ns, false},
		{"list", "", "configmaps", ns, false},
		{"create", "", "configmaps", ns, false},
	}
	for _, r := range reviews {
		review, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
			Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
				Verb: r.verb, Group: r.group, Resource: r.resource, Namespace: r.namespace,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("access review %s %s in %q: %v", r.verb, r.resource, r.namespace, err)
		}
		if review.Status.Allowed != r.allowed {
			t.Errorf("access review: %s %s.%s in %q allowed = %v, want %v (reason %q)", r.verb, r.resource, r.group, r.namespace, review.Status.Allowed, r.allowed, review.Status.Reason)
		}
	}

	// Real calls, as the ServiceAccount.
	calls := []struct {
		name string
		call func() error
	}{
		{"list secrets in " + other, func() error {
			_, err := cs.CoreV1().Secrets(other).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"create a secret in " + other, func() error {
			_, err := cs.CoreV1().Secrets(other).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "rbac-probe"}}, metav1.CreateOptions{})
			return err
		}},
		{"list pods in " + ns, func() error {
			_, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"list configmaps in " + ns, func() error {
			_, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"create a configmap in " + ns, func() error {
			_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "rbac-probe"}}, metav1.CreateOptions{})
			return err
		}},
		{"list secrets in all namespaces", func() error {
			_, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
			return err
		}},
	}
	for _, c := range calls {
		if err := c.call(); !apierrors.IsForbidden(err) {
			t.Errorf("%s as the ServiceAccount: err = %v, want Forbidden", c.name, err)
		}
	}
	// The VMI rule, through the real executor's gc, is refused in another
	// namespace too.
	if out, err := runGC(ctx, kubeconfig, other); err == nil || !strings.Contains(strings.ToLower(out), "forbidden") {
		t.Errorf("gc in %s as %s's ServiceAccount: err = %v, want a forbidden failure; output:\n%s", other, ns, err, out)
	}
}
