package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/BurntSushi/toml"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"
)

// chartValues mirrors the keys of the official gitlab-runner chart's
// values.yaml (chart 0.86.0) that deploy/helm/values.yaml sets. Decoding is
// strict: a key the chart does not have (which Helm would silently ignore)
// fails the test.
type chartValues struct {
	GitlabURL  string `json:"gitlabUrl"`
	Concurrent int    `json:"concurrent"`
	RBAC       struct {
		Create *bool `json:"create"`
	} `json:"rbac"`
	ServiceAccount struct {
		Create *bool  `json:"create"`
		Name   string `json:"name"`
	} `json:"serviceAccount"`
	Runners struct {
		Executor string `json:"executor"`
		Secret   string `json:"secret"`
		Config   string `json:"config"`
	} `json:"runners"`
	PodSecurityContext corev1.PodSecurityContext `json:"podSecurityContext"`
	SecurityContext    corev1.SecurityContext    `json:"securityContext"`
	Volumes            []corev1.Volume           `json:"volumes"`
	VolumeMounts       []corev1.VolumeMount      `json:"volumeMounts"`
}

// runnerConfig is the [[runners]] part of gitlab-runner's config.toml with
// the custom executor's documented keys. Keys outside it fail the test.
type runnerConfig struct {
	Runners []struct {
		Name     string       `toml:"name"`
		Executor string       `toml:"executor"`
		Custom   customConfig `toml:"custom"`
	} `toml:"runners"`
}

// customConfig is [runners.custom].
type customConfig struct {
	ConfigExec          string   `toml:"config_exec"`
	ConfigArgs          []string `toml:"config_args"`
	ConfigExecTimeout   *int     `toml:"config_exec_timeout"`
	PrepareExec         string   `toml:"prepare_exec"`
	PrepareArgs         []string `toml:"prepare_args"`
	PrepareExecTimeout  *int     `toml:"prepare_exec_timeout"`
	RunExec             string   `toml:"run_exec"`
	RunArgs             []string `toml:"run_args"`
	CleanupExec         string   `toml:"cleanup_exec"`
	CleanupArgs         []string `toml:"cleanup_args"`
	CleanupExecTimeout  *int     `toml:"cleanup_exec_timeout"`
	GracefulKillTimeout *int     `toml:"graceful_kill_timeout"`
	ForceKillTimeout    *int     `toml:"force_kill_timeout"`
}

// stage is one custom-executor stage as config.toml wires it.
type stage struct {
	name string
	exec string
	args []string
}

func (c customConfig) stages() []stage {
	return []stage{
		{"config", c.ConfigExec, c.ConfigArgs},
		{"prepare", c.PrepareExec, c.PrepareArgs},
		{"run", c.RunExec, c.RunArgs},
		{"cleanup", c.CleanupExec, c.CleanupArgs},
	}
}

// helmValues decodes deploy/helm/values.yaml strictly.
func helmValues(t *testing.T) chartValues {
	t.Helper()
	var v chartValues
	if err := yaml.UnmarshalStrict(readDeploy(t, "helm/values.yaml"), &v); err != nil {
		t.Fatalf("helm/values.yaml: %v", err)
	}
	return v
}

// renderRunnerConfig renders runners.config as the chart's tpl does for
// release namespace ns (missing keys fail) and parses the TOML.
func renderRunnerConfig(t *testing.T, v chartValues, ns string) customConfig {
	t.Helper()
	tmpl, err := template.New("runners.config").Option("missingkey=error").Parse(v.Runners.Config)
	if err != nil {
		t.Fatalf("runners.config template: %v", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, map[string]any{"Release": map[string]any{"Namespace": ns}}); err != nil {
		t.Fatalf("render runners.config: %v", err)
	}
	var rc runnerConfig
	md, err := toml.Decode(buf.String(), &rc)
	if err != nil {
		t.Fatalf("runners.config is not valid TOML: %v\n%s", err, buf.String())
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Errorf("runners.config has keys that are not custom-executor keys: %v", und)
	}
	if len(rc.Runners) != 1 {
		t.Fatalf("runners.config has %d [[runners]] blocks, want 1", len(rc.Runners))
	}
	r := rc.Runners[0]
	if r.Executor != "custom" {
		t.Errorf("[[runners]] executor = %q, want custom", r.Executor)
	}
	if r.Name == "" {
		t.Error("[[runners]] has no name")
	}
	return r.Custom
}

// executorMount returns the runner container's mount of the executor
// volume.
func executorMount(t *testing.T, v chartValues) corev1.VolumeMount {
	t.Helper()
	if len(v.VolumeMounts) != 1 || len(v.Volumes) != 1 {
		t.Fatalf("values.yaml has %d volumes and %d volumeMounts, want the one executor volume", len(v.Volumes), len(v.VolumeMounts))
	}
	m := v.VolumeMounts[0]
	if m.Name != v.Volumes[0].Name || v.Volumes[0].EmptyDir == nil {
		t.Fatalf("volumeMounts[0] %q must mount the emptyDir volume %q", m.Name, v.Volumes[0].Name)
	}
	return m
}

// TestHelmValues checks the Helm values against the chart's keys, renders
// the runner's config.toml, and runs the built binary on every stage's
// argument list.
func TestHelmValues(t *testing.T) {
	v := helmValues(t)
	sa, _, _ := rbacObjects(t)
	if v.Runners.Executor != "custom" {
		t.Errorf("runners.executor = %q, want custom (the chart defaults to kubernetes)", v.Runners.Executor)
	}
	if v.Runners.Secret == "" {
		t.Error("runners.secret must name the Secret holding the runner token (keeps it out of values and helm's argv)")
	}
	if v.RBAC.Create == nil || *v.RBAC.Create {
		t.Error("rbac.create must be false: deploy/rbac.yaml provides the Role")
	}
	if v.ServiceAccount.Create == nil || *v.ServiceAccount.Create || v.ServiceAccount.Name != sa.Name {
		t.Errorf("serviceAccount must be {create: false, name: %s} (deploy/rbac.yaml's), got create=%v name=%q", sa.Name, v.ServiceAccount.Create, v.ServiceAccount.Name)
	}
	mount := executorMount(t, v)
	if !mount.ReadOnly {
		t.Error("the runner container must mount the executor volume read-only")
	}
	const ns = "gitlab-runner"
	custom := renderRunnerConfig(t, v, ns)
	wantExec := path.Join(mount.MountPath, "gitlab-runner-kubevirt")

	for _, st := range custom.stages() {
		t.Run(st.name, func(t *testing.T) {
			if st.exec != wantExec {
				t.Errorf("%s_exec = %q, want %q (the binary in the mounted volume)", st.name, st.exec, wantExec)
			}
			if len(st.args) == 0 || st.args[0] != st.name {
				t.Fatalf("%s_args = %q, want the %s subcommand first", st.name, st.args, st.name)
			}
			checkFlags(t, st.args)
		})
	}

	// Stages find the job's objects by name and namespace, and config
	// places the builds directory for the shell and user prepare sets up.
	same := []struct {
		flag   string
		stages []string
	}{
		{"--namespace", []string{"prepare", "run", "cleanup"}},
		{"--name-prefix", []string{"prepare", "run", "cleanup"}},
		{"--shell", []string{"config", "prepare"}},
		{"--ssh-user", []string{"config", "prepare"}},
		{"--os-plugin", []string{"config", "prepare"}},
	}
	args := map[string][]string{}
	for _, st := range custom.stages() {
		args[st.name] = st.args
	}
	for _, s := range same {
		first := flagValue(args[s.stages[0]], s.flag)
		for _, name := range s.stages[1:] {
			if got := flagValue(args[name], s.flag); got != first {
				t.Errorf("%s is %q in %s_args but %q in %s_args; they must agree", s.flag, first, s.stages[0], got, name)
			}
		}
	}
	if got := flagValue(args["prepare"], "--namespace"); got != ns {
		t.Errorf("prepare --namespace = %q, want the release namespace %q", got, ns)
	}
}

// TestRunnerStagesFromInitContainer does what the runner Pod does: the
// init container's command line installs the binary and plugins into a
// directory, then config_exec and prepare_exec from values.yaml run from
// there. config completes (it needs no cluster); prepare gets past its
// flag checks (the job variables gitlab-runner would pass are absent).
func TestRunnerStagesFromInitContainer(t *testing.T) {
	v := helmValues(t)
	ic := initContainer(t)
	target := ic.Args[len(ic.Args)-1]
	dir := filepath.Join(t.TempDir(), "volume")
	src := sourceTree(t)
	res := runCore(t, filepath.Join(src, "gitlab-runner-kubevirt"), nil, append(slices.Clone(ic.Args[:len(ic.Args)-1]), dir)...)
	if res.code != 0 {
		t.Fatalf("init container command %q (with %s for %s): exit %d\n%s", ic.Args, dir, target, res.code, res.stderr)
	}
	custom := renderRunnerConfig(t, v, "gitlab-runner")
	// The runner container sees the volume at the mount path.
	local := func(exec string) string {
		rel, err := filepath.Rel(executorMount(t, v).MountPath, exec)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Fatalf("%s is not inside the executor volume", exec)
		}
		return filepath.Join(dir, rel)
	}

	res = runCore(t, local(custom.ConfigExec), nil, custom.ConfigArgs...)
	if res.code != 0 {
		t.Fatalf("config_exec %q: exit %d\n%s", custom.ConfigArgs, res.code, res.stderr)
	}
	var cfg struct {
		BuildsDir string `json:"builds_dir"`
		Shell     string `json:"shell"`
		Driver    struct {
			Name string `json:"name"`
		} `json:"driver"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &cfg); err != nil {
		t.Fatalf("config printed no JSON: %v\n%s", err, res.stdout)
	}
	if cfg.Shell != flagValue(custom.ConfigArgs, "--shell") || cfg.Driver.Name != "gitlab-runner-kubevirt" || cfg.BuildsDir == "" {
		t.Errorf("config printed %s", res.stdout)
	}

	ns, err := fx.env.NewNamespace(t.Context(), "deploy-prepare-")
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.env.ApplyRBAC(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	_, kubeconfig := saClient(t, ns)
	custom = renderRunnerConfig(t, v, ns)
	res = runCore(t, local(custom.PrepareExec), []string{"KUBECONFIG=" + kubeconfig}, custom.PrepareArgs...)
	t.Logf("prepare without job variables, exit %d: %s", res.code, strings.TrimSpace(res.stderr))
	flagErr := regexp.MustCompile(`--[a-z-]+ "[^"]*": `)
	if m := flagErr.FindString(res.stderr); m != "" {
		t.Errorf("prepare refused a value of prepare_args (%s):\n%s", m, res.stderr)
	}
	if res.code == 0 || !strings.Contains(res.stderr, "CI_") {
		t.Errorf("prepare without job variables: exit %d, want a failure naming the missing CI_ variable:\n%s", res.code, res.stderr)
	}
}

// initContainer returns the init container that install-init-container.yaml
// adds.
func initContainer(t *testing.T) corev1.Container {
	t.Helper()
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(readDeploy(t, "helm/install-init-container.yaml"), &d); err != nil {
		t.Fatalf("helm/install-init-container.yaml: %v", err)
	}
	ic := d.Spec.Template.Spec.InitContainers
	if len(ic) != 1 {
		t.Fatalf("install-init-container.yaml adds %d init containers, want 1", len(ic))
	}
	return ic[0]
}

// chartDeployment builds the Deployment the gitlab-runner chart (0.86.0,
// templates/deployment.yaml) renders from values.yaml: its own volumes and
// mounts, plus values.yaml's volumes, volumeMounts, securityContext,
// podSecurityContext and ServiceAccount.
func chartDeployment(v chartValues, ns string) *appsv1.Deployment {
	labels := map[string]string{"app": "gitlab-runner", "release": "gitlab-runner"}
	mounts := append([]corev1.VolumeMount{
		{Name: "etc-gitlab-runner", MountPath: "/home/gitlab-runner/.gitlab-runner"},
		{Name: "configmaps", MountPath: "/configmaps"},
	}, v.VolumeMounts...)
	volumes := append([]corev1.Volume{
		{Name: "runner-secrets", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		{Name: "etc-gitlab-runner", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		{Name: "configmaps", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gitlab-runner"}}}},
	}, v.Volumes...)
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "gitlab-runner", Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "gitlab-runner"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext:    v.PodSecurityContext.DeepCopy(),
					ServiceAccountName: v.ServiceAccount.Name,
					Containers: []corev1.Container{{
						Name:            "gitlab-runner",
						Image:           "registry.gitlab.com/gitlab-org/gitlab-runner:alpine-v18.9.0",
						Command:         []string{"/usr/bin/dumb-init", "--", "/bin/bash", "/configmaps/entrypoint"},
						SecurityContext: v.SecurityContext.DeepCopy(),
						VolumeMounts:    mounts,
					}},
					Volumes: volumes,
				},
			},
		},
	}
}

// TestRunnerPodDryRun applies install-init-container.yaml to the chart's
// Deployment the way kustomize's strategic merge does, checks the init
// container and the runner container share the executor volume, and
// creates the Deployment and its Pod with dryRun=All on the real API server
// in a namespace that enforces the "restricted" Pod Security Standard.
func TestRunnerPodDryRun(t *testing.T) {
	v := helmValues(t)
	ns := restrictedNamespace(t)
	if err := fx.env.ApplyRBAC(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	orig, err := json.Marshal(chartDeployment(v, ns))
	if err != nil {
		t.Fatal(err)
	}
	patch, err := yaml.YAMLToJSON(readDeploy(t, "helm/install-init-container.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	merged, err := strategicpatch.StrategicMergePatch(orig, patch, appsv1.Deployment{})
	if err != nil {
		t.Fatalf("apply install-init-container.yaml: %v", err)
	}
	var d appsv1.Deployment
	if err := json.Unmarshal(merged, &d); err != nil {
		t.Fatal(err)
	}
	// kustomize keeps the chart's name; the patch's is a placeholder.
	d.Name = "gitlab-runner"
	spec := d.Spec.Template.Spec

	ic := initContainer(t)
	runner := spec.Containers[0]
	mount := executorMount(t, v)
	initMount := slices.IndexFunc(ic.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == mount.Name })
	checks := []struct {
		what string
		ok   bool
	}{
		{"the patch keeps the runner container", len(spec.Containers) == 1 && runner.Name == "gitlab-runner"},
		{"the patch adds exactly the init container", len(spec.InitContainers) == 1 && spec.InitContainers[0].Name == ic.Name},
		{"the init container runs `install DIR`", len(ic.Args) == 2 && ic.Args[0] == "install" && len(ic.Command) == 0},
		{"the init container mounts the executor volume at DIR", initMount >= 0 && ic.VolumeMounts[initMount].MountPath == ic.Args[1] && !ic.VolumeMounts[initMount].ReadOnly},
		{"DIR is not the image's own /opt/gitlab-runner-kubevirt", initMount >= 0 && ic.VolumeMounts[initMount].MountPath != "/opt/gitlab-runner-kubevirt"},
		{"the init container has a read-only root filesystem", ic.SecurityContext != nil && ic.SecurityContext.ReadOnlyRootFilesystem != nil && *ic.SecurityContext.ReadOnlyRootFilesystem},
		{"the init container has cpu and memory limits", !ic.Resources.Limits.Cpu().IsZero() && !ic.Resources.Limits.Memory().IsZero()},
		{"the init image is the gc CronJob's", ic.Image == cronJob(t).Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image},
	}
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("want: %s", ck.what)
		}
	}

	cs, err := fx.env.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(t.Context(), &d, metav1.CreateOptions{
		DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict,
	}); err != nil {
		t.Fatalf("dry-run create of the patched Deployment: %v", err)
	}
	dryRunPod(t, ns, "gitlab-runner", spec)
}

// TestPostRenderer checks the files post-render.sh uses: the script is
// executable and names them, and kustomization.yaml patches the chart's
// Deployment with install-init-container.yaml on top of Helm's output.
func TestPostRenderer(t *testing.T) {
	type kustomization struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
		Patches    []struct {
			Path   string `json:"path"`
			Target struct {
				Group   string `json:"group"`
				Version string `json:"version"`
				Kind    string `json:"kind"`
			} `json:"target"`
		} `json:"patches"`
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(readDeploy(t, "helm/kustomization.yaml"), &k); err != nil {
		t.Fatalf("helm/kustomization.yaml: %v", err)
	}
	script := string(readDeploy(t, "helm/post-render.sh"))
	checks := []struct {
		what string
		ok   bool
	}{
		{"kind Kustomization", k.APIVersion == "kustomize.config.k8s.io/v1beta1" && k.Kind == "Kustomization"},
		{"one resource, the file post-render.sh writes Helm's output to", len(k.Resources) == 1 && strings.Contains(script, `"$work/`+k.Resources[0]+`"`)},
		{"one patch, install-init-container.yaml", len(k.Patches) == 1 && k.Patches[0].Path == "install-init-container.yaml"},
		{"the patch targets apps/v1 Deployments", len(k.Patches) == 1 && k.Patches[0].Target.Group == "apps" && k.Patches[0].Target.Version == "v1" && k.Patches[0].Target.Kind == "Deployment"},
		{"post-render.sh copies kustomization.yaml", strings.Contains(script, `"$here/kustomization.yaml"`)},
		{"post-render.sh copies install-init-container.yaml", strings.Contains(script, `"$here/install-init-container.yaml"`)},
		{"post-render.sh stops on errors", strings.Contains(script, "set -eu")},
	}
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("want: %s", ck.what)
		}
	}
	fi, err := os.Stat(filepath.Join(fx.root, "deploy", "helm", "post-render.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("post-render.sh mode %s: Helm runs it, it must be executable", fi.Mode().Perm())
	}
}
