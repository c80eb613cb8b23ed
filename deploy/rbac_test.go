package deploy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/credentials"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/policy"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// saClient returns a clientset authenticated as rbac.yaml's
// ServiceAccount in ns (a real token from the TokenRequest API), and the
// path of a kubeconfig for it.
func saClient(t *testing.T, ns string) (*kubernetes.Clientset, string) {
	t.Helper()
	sa, _, _ := rbacObjects(t)
	cfg, kubeconfig, err := fx.env.ServiceAccountConfig(t.Context(), ns, sa.Name)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, kubeconfig
}

// TestServiceAccountRights asks the API server, as the ServiceAccount the
// gc CronJob and the runner Pod run under, what it may do: gc's list, get
// and delete of VMIs and Secrets in its own namespace, and nothing in any
// other namespace, on any other resource, or cluster-wide.
func TestServiceAccountRights(t *testing.T) {
	ns, err := fx.env.NewNamespace(t.Context(), "deploy-rbac-")
	if err != nil {
		t.Fatal(err)
	}
	other, err := fx.env.NewNamespace(t.Context(), "deploy-rbac-other-")
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.env.ApplyRBAC(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	cs, _ := saClient(t, ns)

	type access struct {
		verb, group, resource, namespace string
	}
	vmis := func(verb, namespace string) access {
		return access{verb, "kubevirt.io", "virtualmachineinstances", namespace}
	}
	secrets := func(verb, namespace string) access { return access{verb, "", "secrets", namespace} }
	tests := []struct {
		access
		allowed bool
	}{
		// What gc does.
		{vmis("list", ns), true},
		{vmis("get", ns), true},
		{vmis("delete", ns), true},
		{secrets("list", ns), true},
		{secrets("get", ns), true},
		{secrets("delete", ns), true},
		// Nowhere else.
		{vmis("list", other), false},
		{vmis("delete", other), false},
		{secrets("list", other), false},
		{secrets("get", "kube-system"), false},
		{vmis("list", ""), false},
		{secrets("list", ""), false},
		{vmis("deletecollection", ns), false},
		{secrets("deletecollection", ns), false},
		// Nothing else.
		{access{"list", "", "pods", ns}, false},
		{access{"create", "", "pods", ns}, false},
		{access{"create", "", "pods/exec", ns}, false},
		{access{"list", "", "configmaps", ns}, false},
		{access{"get", "", "serviceaccounts", ns}, false},
		{access{"create", "", "serviceaccounts/token", ns}, false},
		{access{"list", "kubevirt.io", "virtualmachines", ns}, false},
		{access{"update", "kubevirt.io", "virtualmachineinstances/status", ns}, false},
		{access{"create", "rbac.authorization.k8s.io", "rolebindings", ns}, false},
		{access{"escalate", "rbac.authorization.k8s.io", "roles", ns}, false},
		{access{"list", "", "nodes", ""}, false},
		{access{"delete", "", "namespaces", ""}, false},
		{access{"impersonate", "", "serviceaccounts", ns}, false},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s %s.%s in %q", tt.verb, tt.resource, tt.group, tt.namespace)
		t.Run(name, func(t *testing.T) {
			review, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(t.Context(), &authzv1.SelfSubjectAccessReview{
				Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
					Verb: tt.verb, Group: tt.group, Resource: tt.resource, Namespace: tt.namespace,
				}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if review.Status.Allowed != tt.allowed {
				t.Errorf("allowed = %v, want %v (reason %q)", review.Status.Allowed, tt.allowed, review.Status.Reason)
			}
		})
	}

	// The complete list of what the identity may do in its namespace is
	// the Role of rbac.yaml plus what every ServiceAccount may do (the
	// cluster's default policy: self reviews, discovery): the rights of a
	// ServiceAccount bound to nothing.
	t.Run("rules review equals the Role", func(t *testing.T) {
		_, role, _ := rbacObjects(t)
		admin, err := fx.env.Clientset()
		if err != nil {
			t.Fatal(err)
		}
		const bare = "deploy-test-unbound"
		if _, err := admin.CoreV1().ServiceAccounts(ns).Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: bare}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		bareCfg, _, err := fx.env.ServiceAccountConfig(t.Context(), ns, bare)
		if err != nil {
			t.Fatal(err)
		}
		bareCS, err := kubernetes.NewForConfig(bareCfg)
		if err != nil {
			t.Fatal(err)
		}
		baseline := resourceRules(t, bareCS, ns)
		got := slices.DeleteFunc(resourceRules(t, cs, ns), func(s string) bool { return slices.Contains(baseline, s) })
		var want []string
		for _, r := range role.Rules {
			want = append(want, expand(r.APIGroups, r.Resources, r.Verbs)...)
		}
		want = slices.Compact(sorted(want))
		if !slices.Equal(got, want) {
			t.Errorf("beyond what every serviceaccount may do, it may do\n  %s\nbut rbac.yaml's Role grants\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	})
}

// resourceRules returns the sorted group/resource:verb list a
// SelfSubjectRulesReview in ns reports for cs's identity.
func resourceRules(t *testing.T, cs kubernetes.Interface, ns string) []string {
	t.Helper()
	review, err := cs.AuthorizationV1().SelfSubjectRulesReviews().Create(t.Context(), &authzv1.SelfSubjectRulesReview{
		Spec: authzv1.SelfSubjectRulesReviewSpec{Namespace: ns},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if review.Status.Incomplete {
		t.Fatalf("rules review incomplete: %s", review.Status.EvaluationError)
	}
	var out []string
	for _, r := range review.Status.ResourceRules {
		out = append(out, expand(r.APIGroups, r.Resources, r.Verbs)...)
	}
	return slices.Compact(sorted(out))
}

// expand lists group/resource:verb for every combination of a rule.
func expand(groups, resources, verbs []string) []string {
	var out []string
	for _, g := range groups {
		for _, r := range resources {
			for _, v := range verbs {
				out = append(out, g+"/"+r+":"+v)
			}
		}
	}
	return out
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

// TestGCRunsAsServiceAccount runs the gc CronJob's exact command line with
// the built binary, authenticated as rbac.yaml's ServiceAccount: it must
// delete the expired job's VMI and Secret in its namespace, keep the live
// job, and leave other namespaces alone.
func TestGCRunsAsServiceAccount(t *testing.T) {
	ns, err := fx.env.NewNamespace(t.Context(), "deploy-gc-")
	if err != nil {
		t.Fatal(err)
	}
	other, err := fx.env.NewNamespace(t.Context(), "deploy-gc-other-")
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.env.ApplyRBAC(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	if err := fx.env.ApplyManifest(t.Context(), ns, readDeploy(t, "gc-cronjob.yaml")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	expired := createJob(t, ns, "7", now.Add(-5*time.Hour), time.Hour)
	live := createJob(t, ns, "8", now, 100*time.Hour)
	elsewhere := createJob(t, other, "9", now.Add(-5*time.Hour), time.Hour)

	_, kubeconfig := saClient(t, ns)
	c := cronJob(t).Spec.JobTemplate.Spec.Template.Spec.Containers[0]
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		// What the kubelet does with $(POD_NAMESPACE) from the downward API.
		args[i] = strings.ReplaceAll(a, "$(POD_NAMESPACE)", ns)
	}
	args = append(args, "--kubeconfig", kubeconfig)
	res := runCore(t, fx.core, nil, args...)
	if res.code != 0 {
		t.Fatalf("gitlab-runner-kubevirt %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	}

	admin, err := kube.NewForConfig(fx.env.AdminConfig(), ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		job       *kube.Job
		wantExist bool
	}{
		{expired, false},
		{live, true},
		{elsewhere, true},
	} {
		_, vmiErr := admin.Virt.KubevirtV1().VirtualMachineInstances(tt.job.Namespace).Get(t.Context(), tt.job.Names.VMI, metav1.GetOptions{})
		_, secretErr := admin.Kube.CoreV1().Secrets(tt.job.Namespace).Get(t.Context(), tt.job.Names.Secret, metav1.GetOptions{})
		for what, err := range map[string]error{"vmi": vmiErr, "secret": secretErr} {
			switch {
			case tt.wantExist && err != nil:
				t.Errorf("%s %s/%s: %v, want it kept", what, tt.job.Namespace, tt.job.Names.VMI, err)
			case !tt.wantExist && !apierrors.IsNotFound(err):
				t.Errorf("%s of job %s/%s: get returned %v, want NotFound (gc should have deleted it)", what, tt.job.Namespace, tt.job.Names.VMI, err)
			}
		}
	}
	if !strings.Contains(res.stdout, expired.Names.VMI) {
		t.Errorf("gc output does not name the deleted VMI %s:\n%s", expired.Names.VMI, res.stdout)
	}
}

// createJob creates a job's Secret and VMI in ns as the admin, the way
// prepare builds them, created at created and expiring after ttl.
func createJob(t *testing.T, ns, jobID string, created time.Time, ttl time.Duration) *kube.Job {
	t.Helper()
	names, err := naming.ForJob(naming.DefaultPrefix, "1", jobID)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := credentials.Generate(nil, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	j := &kube.Job{
		Namespace: ns, Names: names,
		Job: jobenv.Job{RunnerID: "1", JobID: jobID, ProjectID: "5", Name: "deploy test"},
		VM: policy.VM{
			Image: "registry.example.com/ci/debian-runner:12", MachineType: "q35", Architecture: "amd64", TTL: ttl,
			Requests: map[string]resource.Quantity{"cpu": resource.MustParse("1"), "memory": resource.MustParse("1Gi")},
		},
		Created: created,
		Boot: &pluginv1.RenderResponse{
			UserData: []byte("#cloud-config\n"), Datasource: pluginv1.Datasource_DATASOURCE_NOCLOUD,
			Recipe: &pluginv1.RunRecipe{Shell: "bash", ScriptExtension: ".sh", TempDir: "/tmp", Command: "bash {script}"},
		},
		OSPlugin: "linux-cloudinit", Transport: "transport-ssh", Username: "runner", Credentials: creds, Port: 22,
	}
	secret, err := j.Secret()
	if err != nil {
		t.Fatal(err)
	}
	vmi, err := j.VMI()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kube.NewForConfig(fx.env.AdminConfig(), ns)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Create(t.Context(), secret, vmi); err != nil {
		t.Fatal(err)
	}
	return j
}

// restrictedNamespace creates a namespace whose Pods must pass the
// "restricted" Pod Security Standard (enforced by the API server's
// PodSecurity admission).
func restrictedNamespace(t *testing.T) string {
	t.Helper()
	cs, err := fx.env.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	created, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "deploy-restricted-",
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce":         "restricted",
			"pod-security.kubernetes.io/enforce-version": "latest",
		},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return created.Name
}

// dryRunPod creates a Pod with spec in ns with dryRun=All: schema
// validation, the ServiceAccount admission and Pod Security admission all
// run, nothing is stored.
func dryRunPod(t *testing.T, ns, name string, spec corev1.PodSpec) {
	t.Helper()
	if err := tryDryRunPod(t, ns, name, spec); err != nil {
		t.Fatalf("dry-run pod %s in %s: %v", name, ns, err)
	}
}

func tryDryRunPod(t *testing.T, ns, name string, spec corev1.PodSpec) error {
	t.Helper()
	cs, err := fx.env.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"},
		Spec:       spec,
	}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict})
	return err
}

// TestRestrictedNamespaceEnforces is the control for the dry-run Pod
// tests: a Pod that breaks the restricted standard must be refused, or a
// passing dry run would prove nothing.
func TestRestrictedNamespaceEnforces(t *testing.T) {
	ns := restrictedNamespace(t)
	if err := fx.env.ApplyRBAC(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	pod := cronJob(t).Spec.JobTemplate.Spec.Template.Spec
	pod.SecurityContext = nil
	pod.Containers[0].SecurityContext = nil
	err := tryDryRunPod(t, ns, "control", pod)
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Fatalf("a pod without securityContext was not refused by PodSecurity: %v", err)
	}
}
