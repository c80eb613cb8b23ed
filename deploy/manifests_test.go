package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// deployFiles says which test covers each file in deploy/. A new file
// there must be added here, with a test.
func deployFiles() map[string]string {
	return map[string]string{
		"README.md":                        "documentation",
		"rbac.yaml":                        "TestManifestsApply, TestServiceAccountRights",
		"gc-cronjob.yaml":                  "TestManifestsApply, TestGCCronJob, TestGCRunsAsServiceAccount",
		"helm/values.yaml":                 "TestHelmValues, TestRunnerPodDryRun",
		"helm/install-init-container.yaml": "TestRunnerPodDryRun",
		"helm/kustomization.yaml":          "TestPostRenderer",
		"helm/post-render.sh":              "TestPostRenderer",
	}
}

// TestEveryDeployFileIsTested fails when deploy/ holds a file no test
// covers, or a covered file is gone.
func TestEveryDeployFileIsTested(t *testing.T) {
	dir := filepath.Join(fx.root, "deploy")
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.go") {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		found = append(found, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	covered := deployFiles()
	for _, f := range found {
		if _, ok := covered[f]; !ok {
			t.Errorf("deploy/%s is not covered by any test: add it to deployFiles with a test that proves it", f)
		}
	}
	for f := range covered {
		if !slices.Contains(found, f) {
			t.Errorf("deploy/%s is listed in deployFiles but does not exist", f)
		}
	}
}

// manifestDocs splits a multi-document manifest into its documents.
func manifestDocs(t *testing.T, data []byte) [][]byte {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

// stripComments drops YAML comment lines.
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// rbacObjects decodes deploy/rbac.yaml strictly (unknown fields fail).
func rbacObjects(t *testing.T) (*corev1.ServiceAccount, *rbacv1.Role, *rbacv1.RoleBinding) {
	t.Helper()
	var (
		sa   *corev1.ServiceAccount
		role *rbacv1.Role
		rb   *rbacv1.RoleBinding
	)
	for i, doc := range manifestDocs(t, readDeploy(t, "rbac.yaml")) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("rbac.yaml document %d: %v", i, err)
		}
		var obj any
		switch meta.Kind {
		case "ServiceAccount":
			sa = &corev1.ServiceAccount{}
			obj = sa
		case "Role":
			role = &rbacv1.Role{}
			obj = role
		case "RoleBinding":
			rb = &rbacv1.RoleBinding{}
			obj = rb
		default:
			t.Fatalf("rbac.yaml document %d: unexpected kind %q", i, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("rbac.yaml %s: %v", meta.Kind, err)
		}
	}
	if sa == nil || role == nil || rb == nil {
		t.Fatal("rbac.yaml must hold a ServiceAccount, a Role and a RoleBinding")
	}
	return sa, role, rb
}

// cronJob decodes deploy/gc-cronjob.yaml strictly.
func cronJob(t *testing.T) *batchv1.CronJob {
	t.Helper()
	docs := manifestDocs(t, readDeploy(t, "gc-cronjob.yaml"))
	if len(docs) != 1 {
		t.Fatalf("gc-cronjob.yaml holds %d documents, want 1", len(docs))
	}
	cj := &batchv1.CronJob{}
	if err := yaml.UnmarshalStrict(docs[0], cj); err != nil {
		t.Fatalf("gc-cronjob.yaml: %v", err)
	}
	return cj
}

// TestManifestsApply server-side applies every Kubernetes manifest in
// deploy/ to the real API server, into a fresh namespace each, and reads
// the objects back.
func TestManifestsApply(t *testing.T) {
	tests := []struct {
		files []string
		check func(t *testing.T, ns string)
	}{
		{
			files: []string{"rbac.yaml"},
			check: func(t *testing.T, ns string) {
				cs, err := fx.env.Clientset()
				if err != nil {
					t.Fatal(err)
				}
				sa, role, rb := rbacObjects(t)
				if _, err := cs.CoreV1().ServiceAccounts(ns).Get(t.Context(), sa.Name, metav1.GetOptions{}); err != nil {
					t.Errorf("serviceaccount: %v", err)
				}
				got, err := cs.RbacV1().Roles(ns).Get(t.Context(), role.Name, metav1.GetOptions{})
				if err != nil {
					t.Fatalf("role: %v", err)
				}
				if len(got.Rules) != len(role.Rules) {
					t.Errorf("role has %d rules on the server, %d in the file", len(got.Rules), len(role.Rules))
				}
				gotRB, err := cs.RbacV1().RoleBindings(ns).Get(t.Context(), rb.Name, metav1.GetOptions{})
				if err != nil {
					t.Fatalf("rolebinding: %v", err)
				}
				if len(gotRB.Subjects) != 1 || gotRB.Subjects[0].Name != sa.Name || gotRB.Subjects[0].Namespace != ns {
					t.Errorf("rolebinding subjects = %+v, want the serviceaccount %s/%s", gotRB.Subjects, ns, sa.Name)
				}
			},
		},
		{
			files: []string{"rbac.yaml", "gc-cronjob.yaml"},
			check: func(t *testing.T, ns string) {
				cs, err := fx.env.Clientset()
				if err != nil {
					t.Fatal(err)
				}
				want := cronJob(t)
				got, err := cs.BatchV1().CronJobs(ns).Get(t.Context(), want.Name, metav1.GetOptions{})
				if err != nil {
					t.Fatalf("cronjob: %v", err)
				}
				if got.Spec.Schedule != want.Spec.Schedule || got.Spec.ConcurrencyPolicy != want.Spec.ConcurrencyPolicy {
					t.Errorf("cronjob on the server: schedule %q policy %q", got.Spec.Schedule, got.Spec.ConcurrencyPolicy)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.files, "+"), func(t *testing.T) {
			ns, err := fx.env.NewNamespace(t.Context(), "deploy-apply-")
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.files {
				if err := fx.env.ApplyManifest(t.Context(), ns, readDeploy(t, f)); err != nil {
					t.Fatalf("server-side apply deploy/%s: %v", f, err)
				}
			}
			// Applying again changes nothing and must not conflict.
			for _, f := range tt.files {
				if err := fx.env.ApplyManifest(t.Context(), ns, readDeploy(t, f)); err != nil {
					t.Fatalf("second server-side apply of deploy/%s: %v", f, err)
				}
			}
			tt.check(t, ns)
		})
	}
}

// TestGCCronJob checks the gc CronJob's schedule, bounds, identity and
// hardening, that every flag it passes is a real flag of gc, and that its
// Pod passes the "restricted" Pod Security Standard on the real API server.
func TestGCCronJob(t *testing.T) {
	cj := cronJob(t)
	sa, _, _ := rbacObjects(t)
	js := cj.Spec.JobTemplate.Spec
	pod := js.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("gc pod has %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	isTrue := func(b *bool) bool { return b != nil && *b }
	checks := []struct {
		what string
		ok   bool
	}{
		{"schedule is every 15 minutes", cj.Spec.Schedule == "*/15 * * * *"},
		{"concurrencyPolicy is Forbid", cj.Spec.ConcurrencyPolicy == batchv1.ForbidConcurrent},
		{"successfulJobsHistoryLimit is set, at most 10", cj.Spec.SuccessfulJobsHistoryLimit != nil && *cj.Spec.SuccessfulJobsHistoryLimit <= 10},
		{"failedJobsHistoryLimit is set, at most 10", cj.Spec.FailedJobsHistoryLimit != nil && *cj.Spec.FailedJobsHistoryLimit <= 10},
		{"activeDeadlineSeconds is set, below the 15-minute period", js.ActiveDeadlineSeconds != nil && *js.ActiveDeadlineSeconds > 0 && time.Duration(*js.ActiveDeadlineSeconds)*time.Second < 15*time.Minute},
		{"restartPolicy is OnFailure", pod.RestartPolicy == corev1.RestartPolicyOnFailure},
		{"serviceAccountName is rbac.yaml's " + sa.Name, pod.ServiceAccountName == sa.Name},
		{"pod runAsNonRoot", pod.SecurityContext != nil && isTrue(pod.SecurityContext.RunAsNonRoot)},
		{"pod seccomp RuntimeDefault", pod.SecurityContext != nil && pod.SecurityContext.SeccompProfile != nil && pod.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
		{"container readOnlyRootFilesystem", c.SecurityContext != nil && isTrue(c.SecurityContext.ReadOnlyRootFilesystem)},
		{"container allowPrivilegeEscalation false", c.SecurityContext != nil && c.SecurityContext.AllowPrivilegeEscalation != nil && !*c.SecurityContext.AllowPrivilegeEscalation},
		{"container drops ALL capabilities", c.SecurityContext != nil && c.SecurityContext.Capabilities != nil && slices.Equal(c.SecurityContext.Capabilities.Drop, []corev1.Capability{"ALL"})},
		{"cpu and memory requests", !c.Resources.Requests.Cpu().IsZero() && !c.Resources.Requests.Memory().IsZero()},
		{"cpu and memory limits", !c.Resources.Limits.Cpu().IsZero() && !c.Resources.Limits.Memory().IsZero()},
		{"args start with gc", len(c.Args) > 0 && c.Args[0] == "gc"},
		{"--namespace is the pod's namespace", flagValue(c.Args, "--namespace") == "$(POD_NAMESPACE)" && hasFieldRef(c.Env, "POD_NAMESPACE", "metadata.namespace")},
		{"the image's entrypoint is used (no command)", len(c.Command) == 0},
	}
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("gc-cronjob.yaml: want %s", ck.what)
		}
	}
	checkFlags(t, c.Args)

	ns := restrictedNamespace(t)
	if err := fx.env.ApplyRBAC(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	dryRunPod(t, ns, "gc", pod)
}

// flagValue returns the value following flag in args ("--flag value" or
// "--flag=value"), or "".
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// hasFieldRef reports whether env sets name from the downward API field.
func hasFieldRef(env []corev1.EnvVar, name, field string) bool {
	return slices.ContainsFunc(env, func(e corev1.EnvVar) bool {
		return e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == field
	})
}

// helpFlag matches a flag line of cobra's help: "  -o, --output string".
var helpFlag = regexp.MustCompile(`(?m)^\s+(?:-[A-Za-z], )?--([a-z0-9][a-z0-9-]*)`)

// checkFlags runs the built binary with args plus --help: cobra parses
// every flag (and its value's syntax) before it prints help, so exit 0
// means they all parse; then every --flag in args must be listed in that
// subcommand's help.
func checkFlags(t *testing.T, args []string) {
	t.Helper()
	res := runCore(t, fx.core, nil, append(append([]string{}, args...), "--help")...)
	if res.code != 0 {
		t.Fatalf("gitlab-runner-kubevirt %s --help: exit %d\n%s%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	}
	known := map[string]bool{}
	for _, m := range helpFlag.FindAllStringSubmatch(res.stdout, -1) {
		known[m[1]] = true
	}
	if !known["help"] {
		t.Fatalf("could not read the flags from %s help:\n%s", args[0], res.stdout)
	}
	for _, a := range args[1:] {
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "=")
		if !known[name] {
			t.Errorf("%s has no flag --%s (its help lists %v)", args[0], name, keys(known))
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
