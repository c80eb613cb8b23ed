package kube

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/credentials"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/policy"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// testJob returns a complete job description with fresh credentials.
func testJob(t testing.TB, ns string, runnerID, jobID string, ds pluginv1.Datasource, password bool) *Job {
	t.Helper()
	names, err := naming.ForJob("runner", runnerID, jobID)
	if err != nil {
		t.Fatal(err)
	}
	passwordLength := 0
	if password {
		passwordLength = credentials.PasswordLength
	}
	creds, err := credentials.Generate(nil, passwordLength, "runner")
	if err != nil {
		t.Fatal(err)
	}
	return &Job{
		Namespace: ns,
		Names:     names,
		Job: jobenv.Job{RunnerID: runnerID, JobID: jobID, ProjectID: "77", Name: "build: all\nthe things",
			URL: "https://gitlab.example.com/g/p/-/jobs/" + jobID, Ref: "feature/Fancy branch!", SHA: strings.Repeat("ab", 20)},
		VM: policy.VM{
			Image: "registry.example.com/ci/debian:12", ImagePullPolicy: "IfNotPresent", ImagePullSecret: "regcred",
			MachineType: "q35", Architecture: "amd64", TTL: 3 * time.Hour,
			Requests: map[string]resource.Quantity{"cpu": resource.MustParse("1"), "memory": resource.MustParse("1Gi"), "ephemeral-storage": resource.MustParse("10Gi")},
			Limits:   map[string]resource.Quantity{"cpu": resource.MustParse("2"), "memory": resource.MustParse("2Gi"), "ephemeral-storage": resource.MustParse("20Gi")},
		},
		Created: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC),
		Boot: &pluginv1.RenderResponse{
			UserData:    []byte("#cloud-config\nssh_keys:\n  ed25519_private: |\n" + string(creds.Host.PrivatePEM)),
			NetworkData: []byte("version: 2\n"),
			Datasource:  ds,
			Recipe: &pluginv1.RunRecipe{Shell: "bash", ScriptExtension: ".sh", TempDir: "/tmp", Command: "bash {script}",
				ReadinessCommand: "cloud-init status --wait", PathSeparator: "/"},
		},
		OSPlugin: "linux-cloudinit", Transport: "transport-ssh",
		Username: "runner", Credentials: creds, Port: 22, TransportOptions: map[string]string{"keepalive": "10s"},
		NodeSelector:      map[string]string{"node-role.example.com/ci": "true"},
		Tolerations:       []corev1.Toleration{{Key: "ci", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		PriorityClassName: "ci-low",
	}
}

func TestVMIShape(t *testing.T) {
	tests := []struct {
		name string
		ds   pluginv1.Datasource
	}{
		{"nocloud", pluginv1.Datasource_DATASOURCE_NOCLOUD},
		{"configdrive", pluginv1.Datasource_DATASOURCE_CONFIG_DRIVE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := testJob(t, "ci", "12", "3456", tt.ds, false)
			vmi, err := j.VMI()
			if err != nil {
				t.Fatal(err)
			}
			checkVMIShape(t, j, vmi)
		})
	}
}

// checkVMIShape asserts everything the contract says about the VMI.
func checkVMIShape(t *testing.T, j *Job, vmi *kubevirtv1.VirtualMachineInstance) {
	t.Helper()
	if vmi.Name != "runner-12-3456" || vmi.Namespace != j.Namespace {
		t.Errorf("name = %s/%s", vmi.Namespace, vmi.Name)
	}
	s := vmi.Spec
	if s.Architecture != "amd64" || s.NodeSelector["kubernetes.io/arch"] != "amd64" || s.NodeSelector["node-role.example.com/ci"] != "true" {
		t.Errorf("architecture %q, nodeSelector %v", s.Architecture, s.NodeSelector)
	}
	if s.Domain.Machine == nil || s.Domain.Machine.Type != "q35" {
		t.Errorf("machine = %+v", s.Domain.Machine)
	}
	if s.TerminationGracePeriodSeconds == nil || *s.TerminationGracePeriodSeconds != 0 {
		t.Errorf("terminationGracePeriodSeconds = %v", s.TerminationGracePeriodSeconds)
	}
	if s.PriorityClassName != "ci-low" || len(s.Tolerations) != 1 {
		t.Errorf("priorityClassName %q tolerations %v", s.PriorityClassName, s.Tolerations)
	}
	for _, r := range []struct {
		list corev1.ResourceList
		key  corev1.ResourceName
		want string
	}{
		{s.Domain.Resources.Requests, corev1.ResourceCPU, "1"}, {s.Domain.Resources.Limits, corev1.ResourceCPU, "2"},
		{s.Domain.Resources.Requests, corev1.ResourceMemory, "1Gi"}, {s.Domain.Resources.Limits, corev1.ResourceMemory, "2Gi"},
		{s.Domain.Resources.Requests, corev1.ResourceEphemeralStorage, "10Gi"}, {s.Domain.Resources.Limits, corev1.ResourceEphemeralStorage, "20Gi"},
	} {
		if q, ok := r.list[r.key]; !ok || q.String() != r.want {
			t.Errorf("resource %s = %v, want %s", r.key, r.list, r.want)
		}
	}
	for _, d := range s.Domain.Devices.Disks {
		if d.Disk == nil || d.Disk.Bus != kubevirtv1.DiskBusVirtio {
			t.Errorf("disk %s is not virtio: %+v", d.Name, d.DiskDevice)
		}
	}
	var cd *kubevirtv1.ContainerDiskSource
	var refs []*corev1.LocalObjectReference
	for _, v := range s.Volumes {
		switch {
		case v.ContainerDisk != nil:
			cd = v.ContainerDisk
		case v.CloudInitNoCloud != nil:
			if j.Boot.Datasource != pluginv1.Datasource_DATASOURCE_NOCLOUD {
				t.Errorf("nocloud volume for datasource %s", j.Boot.Datasource)
			}
			if v.CloudInitNoCloud.UserData != "" || v.CloudInitNoCloud.UserDataBase64 != "" || v.CloudInitNoCloud.NetworkData != "" {
				t.Error("first-boot data is inline in the VMI")
			}
			refs = append(refs, v.CloudInitNoCloud.UserDataSecretRef, v.CloudInitNoCloud.NetworkDataSecretRef)
		case v.CloudInitConfigDrive != nil:
			if j.Boot.Datasource != pluginv1.Datasource_DATASOURCE_CONFIG_DRIVE {
				t.Errorf("configdrive volume for datasource %s", j.Boot.Datasource)
			}
			if v.CloudInitConfigDrive.UserData != "" || v.CloudInitConfigDrive.UserDataBase64 != "" {
				t.Error("first-boot data is inline in the VMI")
			}
			refs = append(refs, v.CloudInitConfigDrive.UserDataSecretRef, v.CloudInitConfigDrive.NetworkDataSecretRef)
		}
	}
	if cd == nil || cd.Image != j.VM.Image || cd.ImagePullPolicy != corev1.PullIfNotPresent || cd.ImagePullSecret != "regcred" {
		t.Errorf("containerDisk = %+v", cd)
	}
	if len(refs) != 2 {
		t.Fatalf("want one first-boot volume with two secret refs, got %d refs", len(refs))
	}
	for _, r := range refs {
		if r == nil || r.Name != j.Names.Secret {
			t.Errorf("secret ref = %+v, want %s", r, j.Names.Secret)
		}
	}
	checkMeta(t, j, vmi.Labels, vmi.Annotations)
	noSecrets(t, j, fmt.Sprintf("%+v", vmi))
}

// checkMeta asserts the labels and annotations on either object.
func checkMeta(t *testing.T, j *Job, labels, annotations map[string]string) {
	t.Helper()
	want := map[string]string{
		naming.LabelName: naming.AppName, naming.LabelManagedBy: naming.AppName, naming.LabelID: j.Names.VMI,
		naming.LabelRunnerID: j.Job.RunnerID, naming.LabelJobID: j.Job.JobID, naming.LabelProjectID: "77",
		naming.LabelJobRef: "feature-Fancy-branch", naming.LabelJobSHA: j.Job.SHA,
		naming.LabelExpires: fmt.Sprint(j.Created.Add(3 * time.Hour).Unix()),
	}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}
	for k, v := range labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			t.Errorf("label key %q: %v", k, errs)
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("label %s=%q: %v", k, v, errs)
		}
	}
	if annotations[naming.AnnotationCreated] != "2026-11-28T12:00:00Z" || annotations[naming.AnnotationTTL] != "3h0m0s" ||
		annotations[naming.AnnotationJobName] != j.Job.Name || annotations[naming.AnnotationJobURL] != j.Job.URL ||
		annotations[naming.AnnotationOSPlugin] != "linux-cloudinit" || annotations[naming.AnnotationTransportPlugin] != "transport-ssh" {
		t.Errorf("annotations = %v", annotations)
	}
}

// noSecrets fails if s contains any of the job's secret material.
func noSecrets(t *testing.T, j *Job, s string) {
	t.Helper()
	for _, secret := range []string{string(j.Credentials.Client.PrivatePEM), string(j.Credentials.Host.PrivatePEM), "PRIVATE KEY", string(j.Boot.UserData)} {
		if strings.Contains(s, secret) {
			t.Errorf("secret material found: %.60q", secret)
		}
	}
	if j.Credentials.Password != "" && strings.Contains(s, j.Credentials.Password) {
		t.Error("password found")
	}
}

func TestSecretShapeAndRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		password bool
	}{
		{"key login", false},
		{"password capability", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := testJob(t, "ci", "1", "2", pluginv1.Datasource_DATASOURCE_NOCLOUD, tt.password)
			s, err := j.Secret()
			if err != nil {
				t.Fatal(err)
			}
			if s.Type != corev1.SecretTypeOpaque || s.Name != "runner-1-2-credentials" {
				t.Errorf("type %s name %s", s.Type, s.Name)
			}
			for _, k := range []string{KeyUserData, KeyNetworkData, KeyUsername, KeySSHPrivateKey, KeyHostPublicKey, KeyRunRecipe, KeyTransport, KeyTransportPort} {
				if len(s.Data[k]) == 0 {
					t.Errorf("key %q missing", k)
				}
			}
			if _, ok := s.Data[KeyPassword]; ok != tt.password {
				t.Errorf("password key present = %t, want %t", ok, tt.password)
			}
			if !strings.Contains(string(s.Data[KeyRunRecipe]), `"temp_dir":"/tmp"`) {
				t.Errorf("run-recipe = %s, want proto field names", s.Data[KeyRunRecipe])
			}
			checkMeta(t, j, s.Labels, s.Annotations)
			noSecrets(t, j, fmt.Sprint(s.Labels, s.Annotations))

			a, err := ParseAccess(s)
			if err != nil {
				t.Fatalf("ParseAccess: %v", err)
			}
			if a.Username != "runner" || a.Port != 22 || a.Transport != "transport-ssh" || a.HostKeys[0] != j.Credentials.Host.Public ||
				string(a.PrivateKey) != string(j.Credentials.Client.PrivatePEM) || a.Password != j.Credentials.Password ||
				a.Recipe.GetCommand() != "bash {script}" || a.Options["keepalive"] != "10s" {
				t.Errorf("ParseAccess = %#v", a)
			}
			target := a.Target("10.0.0.5")
			if target.Host != "10.0.0.5" || target.Port != 22 || len(target.HostKeys) != 1 {
				t.Errorf("Target = %v", target)
			}
			noSecrets(t, j, fmt.Sprintf("%v %+v %#v %s", a, a, a, *a))
			noSecrets(t, j, fmt.Sprintf("%v %+v %#v", j, *j, j))
		})
	}
}

func TestParseAccessRefusesBrokenSecrets(t *testing.T) {
	j := testJob(t, "ci", "1", "2", pluginv1.Datasource_DATASOURCE_NOCLOUD, false)
	tests := []struct {
		name   string
		mutate func(map[string][]byte)
		want   string
	}{
		{"no username", func(d map[string][]byte) { delete(d, KeyUsername) }, `key "username" is missing`},
		{"no host key", func(d map[string][]byte) { delete(d, KeyHostPublicKey) }, `key "host-public-key" is missing`},
		{"no credentials", func(d map[string][]byte) { delete(d, KeySSHPrivateKey) }, `neither "ssh-privatekey" nor "password"`},
		{"bad port", func(d map[string][]byte) { d[KeyTransportPort] = []byte("99999") }, `not a port number`},
		{"bad recipe", func(d map[string][]byte) { d[KeyRunRecipe] = []byte("{") }, `decode "run-recipe"`},
		{"recipe without command", func(d map[string][]byte) { d[KeyRunRecipe] = []byte(`{"temp_dir":"/tmp"}`) }, `has no command`},
		{"bad options", func(d map[string][]byte) { d[KeyTransportOptions] = []byte(`{"password":"hunter2"`) }, `not a JSON object`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := j.Secret()
			if err != nil {
				t.Fatal(err)
			}
			tt.mutate(s.Data)
			_, err = ParseAccess(s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error leaks secret content: %v", err)
			}
		})
	}
}

func TestVMIRefusesUnknownDatasource(t *testing.T) {
	j := testJob(t, "ci", "1", "2", pluginv1.Datasource_DATASOURCE_UNSPECIFIED, false)
	if _, err := j.VMI(); err == nil || !strings.Contains(err.Error(), "NoCloud and ConfigDrive") {
		t.Errorf("error = %v", err)
	}
}

func TestVMIWithoutNetworkDataHasNoNetworkRef(t *testing.T) {
	j := testJob(t, "ci", "1", "2", pluginv1.Datasource_DATASOURCE_NOCLOUD, false)
	j.Boot.NetworkData = nil
	vmi, err := j.VMI()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vmi.Spec.Volumes {
		if v.CloudInitNoCloud != nil && (v.CloudInitNoCloud.NetworkDataSecretRef != nil || v.CloudInitNoCloud.UserDataSecretRef == nil) {
			t.Errorf("nocloud = %+v", v.CloudInitNoCloud)
		}
	}
}

func TestAssess(t *testing.T) {
	cond := func(typ, status, reason, msg string) kubevirtv1.VirtualMachineInstanceCondition {
		return kubevirtv1.VirtualMachineInstanceCondition{Type: kubevirtv1.VirtualMachineInstanceConditionType(typ),
			Status: corev1.ConditionStatus(status), Reason: reason, Message: msg}
	}
	tests := []struct {
		name      string
		status    kubevirtv1.VirtualMachineInstanceStatus
		ready     bool
		wantError string
	}{
		{name: "new", status: kubevirtv1.VirtualMachineInstanceStatus{}},
		{name: "scheduling", status: kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Scheduling}},
		{name: "scheduled", status: kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Scheduled, NodeName: "n1"}},
		{name: "running without ip", status: kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Running, NodeName: "n1"}},
		{name: "running with ip", ready: true, status: kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Running, NodeName: "n1",
			Interfaces: []kubevirtv1.VirtualMachineInstanceNetworkInterface{{IP: "10.1.2.3"}}}},
		{name: "failed with reason", wantError: "phase Failed: ImagePullBackOff; Synchronized False: image not found",
			status: kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Failed, Reason: "ImagePullBackOff",
				Conditions: []kubevirtv1.VirtualMachineInstanceCondition{cond("Synchronized", "False", "False", "image not found"), cond("Ready", "True", "", "")}}},
		{name: "failed without reason", wantError: "phase Failed: KubeVirt gave no reason",
			status: kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Failed}},
		{name: "unschedulable", wantError: "unschedulable: 0/3 nodes are available: 3 Insufficient memory",
			status: kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Scheduling,
				Conditions: []kubevirtv1.VirtualMachineInstanceCondition{cond("PodScheduled", "False", "Unschedulable", "0/3 nodes are available: 3 Insufficient memory")}}},
		{name: "scheduled condition false but not unschedulable", status: kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Scheduling,
			Conditions: []kubevirtv1.VirtualMachineInstanceCondition{cond("PodScheduled", "False", "SchedulerError", "retrying")}}},
		{name: "succeeded", wantError: "shut down", status: kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Succeeded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vmi := &kubevirtv1.VirtualMachineInstance{Status: tt.status}
			vmi.Name = "runner-1-2"
			st, err := Assess(vmi)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("error = %v, want %q", err, tt.wantError)
				}
				if _, ok := err.(*FailedError); !ok {
					t.Errorf("error is %T, want *FailedError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Assess: %v", err)
			}
			if st.Ready() != tt.ready {
				t.Errorf("Ready() = %t for %+v", st.Ready(), st)
			}
		})
	}
}
