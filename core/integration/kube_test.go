package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/credentials"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/policy"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// job describes a job whose objects the tests create.
func job(t testing.TB, ns, runnerID, jobID string, created time.Time, ttl time.Duration) *kube.Job {
	t.Helper()
	names, err := naming.ForJob(naming.DefaultPrefix, runnerID, jobID)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := credentials.Generate(nil, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	return &kube.Job{
		Namespace: ns, Names: names,
		Job: jobenv.Job{RunnerID: runnerID, JobID: jobID, ProjectID: "5", Name: "test job", Ref: "feature/it", SHA: "0123abcd"},
		VM: policy.VM{
			Image: "registry.example.com/ci/debian:12", ImagePullPolicy: "IfNotPresent",
			MachineType: "q35", Architecture: "amd64", TTL: ttl,
			Requests: map[string]resource.Quantity{"cpu": resource.MustParse("500m"), "memory": resource.MustParse("1Gi"), "ephemeral-storage": resource.MustParse("5Gi")},
			Limits:   map[string]resource.Quantity{"cpu": resource.MustParse("1"), "memory": resource.MustParse("2Gi"), "ephemeral-storage": resource.MustParse("10Gi")},
		},
		Created: created,
		Boot: &pluginv1.RenderResponse{
			UserData: []byte("#cloud-config\n"), NetworkData: []byte("version: 2\n"), Datasource: pluginv1.Datasource_DATASOURCE_NOCLOUD,
			Recipe: &pluginv1.RunRecipe{Shell: "bash", ScriptExtension: ".sh", TempDir: "/tmp", Command: "bash {script}"},
		},
		OSPlugin: "linux-cloudinit", Transport: "transport-ssh", Username: "runner", Credentials: creds, Port: 22,
		Tolerations: []corev1.Toleration{{Key: "ci", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
	}
}

// create builds and creates the job's objects as the runner.
func (c *cluster) create(t testing.TB, j *kube.Job) *kubevirtv1.VirtualMachineInstance {
	t.Helper()
	secret, err := j.Secret()
	if err != nil {
		t.Fatal(err)
	}
	vmi, err := j.VMI()
	if err != nil {
		t.Fatal(err)
	}
	created, err := c.runner.Create(t.Context(), secret, vmi)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return created
}

func TestCreateIsAcceptedByKubeVirtSchemaAndOwnsSecret(t *testing.T) {
	c := newCluster(t)
	j := job(t, c.ns, "12", "3456", time.Now(), 3*time.Hour)
	created := c.create(t, j)

	// Read back as admin: what the API server stored, after the CRD's
	// structural schema pruned anything it does not know.
	vmi, err := c.admin.GetVMI(t.Context(), "runner-12-3456")
	if err != nil {
		t.Fatal(err)
	}
	if vmi.UID != created.UID {
		t.Errorf("uid %s != created %s", vmi.UID, created.UID)
	}
	s := vmi.Spec
	if s.Architecture != "amd64" || s.Domain.Machine == nil || s.Domain.Machine.Type != "q35" || *s.TerminationGracePeriodSeconds != 0 {
		t.Errorf("spec lost fields: arch %q machine %+v", s.Architecture, s.Domain.Machine)
	}
	if q := s.Domain.Resources.Requests[corev1.ResourceEphemeralStorage]; q.String() != "5Gi" {
		t.Errorf("ephemeral-storage request was not kept by the schema: %v", s.Domain.Resources.Requests)
	}
	var noCloud *kubevirtv1.CloudInitNoCloudSource
	for _, v := range s.Volumes {
		if v.CloudInitNoCloud != nil {
			noCloud = v.CloudInitNoCloud
		}
	}
	if noCloud == nil || noCloud.UserDataSecretRef == nil || noCloud.UserDataSecretRef.Name != "runner-12-3456-credentials" ||
		noCloud.NetworkDataSecretRef == nil || noCloud.UserData != "" {
		t.Errorf("cloudInitNoCloud = %+v", noCloud)
	}
	if vmi.Labels[naming.LabelManagedBy] != naming.AppName || vmi.Labels[naming.LabelJobRef] != "feature-it" {
		t.Errorf("labels = %v", vmi.Labels)
	}

	secret, err := c.admin.Kube.CoreV1().Secrets(c.ns).Get(t.Context(), "runner-12-3456-credentials", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(secret.OwnerReferences) != 1 {
		t.Fatalf("ownerReferences = %+v", secret.OwnerReferences)
	}
	ref := secret.OwnerReferences[0]
	if ref.APIVersion != "kubevirt.io/v1" || ref.Kind != "VirtualMachineInstance" || ref.Name != vmi.Name || ref.UID != vmi.UID {
		t.Errorf("ownerReference = %+v, want the VMI %s (%s)", ref, vmi.Name, vmi.UID)
	}
	if secret.Type != corev1.SecretTypeOpaque || len(secret.Data[kube.KeyUserData]) == 0 || len(secret.Data[kube.KeySSHPrivateKey]) == 0 {
		t.Errorf("secret type %s keys %v", secret.Type, keys(secret.Data))
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestLaterStagesFindTheObjectsByName(t *testing.T) {
	c := newCluster(t)
	c.create(t, job(t, c.ns, "7", "70", time.Now(), time.Hour))
	names, err := naming.ForJob(naming.DefaultPrefix, "7", "70")
	if err != nil {
		t.Fatal(err)
	}
	secret, vmi, err := c.runner.Get(t.Context(), names)
	if err != nil {
		t.Fatalf("Get as the runner: %v", err)
	}
	a, err := kube.ParseAccess(secret)
	if err != nil {
		t.Fatal(err)
	}
	if vmi.Name != "runner-7-70" || a.Username != "runner" || a.Recipe.GetCommand() != "bash {script}" {
		t.Errorf("vmi %s access %v", vmi.Name, a)
	}
}

func TestCreateReplacesOwnLeftoverButNotForeignObjects(t *testing.T) {
	c := newCluster(t)
	first := c.create(t, job(t, c.ns, "1", "2", time.Now(), time.Hour))
	// A retried prepare of the same job (cleanup may not have finished).
	second := c.create(t, job(t, c.ns, "1", "2", time.Now(), time.Hour))
	if first.UID == second.UID {
		t.Error("the leftover VMI was not replaced")
	}
	secret, err := c.admin.Kube.CoreV1().Secrets(c.ns).Get(t.Context(), "runner-1-2-credentials", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if secret.OwnerReferences[0].UID != second.UID {
		t.Errorf("secret owned by %s, want the new VMI %s", secret.OwnerReferences[0].UID, second.UID)
	}

	// An object of the same name someone else made is never touched.
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "runner-1-3-credentials", Namespace: c.ns}}
	if _, err := c.admin.Kube.CoreV1().Secrets(c.ns).Create(t.Context(), foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	j := job(t, c.ns, "1", "3", time.Now(), time.Hour)
	secretObj, _ := j.Secret()
	vmiObj, _ := j.VMI()
	_, err = c.runner.Create(t.Context(), secretObj, vmiObj)
	if err == nil || !strings.Contains(err.Error(), "not managed by gitlab-runner-kubevirt") {
		t.Fatalf("Create over a foreign secret: %v", err)
	}
	if _, err := c.admin.GetVMI(t.Context(), "runner-1-3"); !apierrors.IsNotFound(err) {
		t.Errorf("a VMI was created although the secret was refused: %v", err)
	}
}

// statusStep is one status change the stand-in makes.
type statusStep func(*kubevirtv1.VirtualMachineInstanceStatus)

func phase(p kubevirtv1.VirtualMachineInstancePhase, node, ip string) statusStep {
	return func(s *kubevirtv1.VirtualMachineInstanceStatus) {
		s.Phase, s.NodeName = p, node
		if ip != "" {
			s.Interfaces = []kubevirtv1.VirtualMachineInstanceNetworkInterface{{Name: "default", IP: ip, IPs: []string{ip}}}
		}
	}
}

func condition(typ, status, reason, msg string) statusStep {
	return func(s *kubevirtv1.VirtualMachineInstanceStatus) {
		s.Conditions = append(s.Conditions, kubevirtv1.VirtualMachineInstanceCondition{
			Type: kubevirtv1.VirtualMachineInstanceConditionType(typ), Status: corev1.ConditionStatus(status), Reason: reason, Message: msg})
	}
}

func TestWaitRunningFollowsStatus(t *testing.T) {
	tests := []struct {
		name      string
		steps     []statusStep
		wantIP    string
		wantErr   string
		wantNodes []string // nodes seen by progress, in order
	}{
		{
			name:   "scheduling, scheduled, running with ip",
			steps:  []statusStep{phase(kubevirtv1.Scheduling, "", ""), phase(kubevirtv1.Scheduled, "node-a", ""), phase(kubevirtv1.Running, "node-a", ""), phase(kubevirtv1.Running, "node-a", "10.0.0.7")},
			wantIP: "10.0.0.7", wantNodes: []string{"node-a"},
		},
		{
			name: "failed",
			steps: []statusStep{phase(kubevirtv1.Scheduled, "node-b", ""), func(s *kubevirtv1.VirtualMachineInstanceStatus) {
				s.Phase, s.Reason = kubevirtv1.Failed, "ErrImagePull"
			}},
			wantErr: "phase Failed: ErrImagePull", wantNodes: []string{"node-b"},
		},
		{
			name:    "unschedulable",
			steps:   []statusStep{phase(kubevirtv1.Scheduling, "", ""), condition("PodScheduled", "False", "Unschedulable", "0/3 nodes are available: 3 Insufficient devices.kubevirt.io/kvm")},
			wantErr: "unschedulable: 0/3 nodes are available: 3 Insufficient devices.kubevirt.io/kvm",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			j := job(t, c.ns, "9", fmt.Sprint(100+i), time.Now(), time.Hour)
			c.create(t, j)

			type result struct {
				st  kube.Status
				err error
			}
			seen := make(chan kube.Status, 100)
			done := make(chan result, 1)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			go func() {
				st, err := c.runner.WaitRunning(ctx, j.Names.VMI, func(s kube.Status) { seen <- s })
				done <- result{st, err}
			}()
			// Drive the status one step at a time, each after the watcher
			// has seen the previous state, as a real controller would.
			<-seen // the initial, empty status
			for _, step := range tt.steps {
				c.setStatus(t, j.Names.VMI, step)
			}
			r := <-done
			close(seen)
			var nodes []string
			for s := range seen {
				if s.Node != "" && !slices.Contains(nodes, s.Node) {
					nodes = append(nodes, s.Node)
				}
			}
			if tt.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr) {
					t.Fatalf("WaitRunning error = %v, want %q", r.err, tt.wantErr)
				}
			} else {
				if r.err != nil {
					t.Fatalf("WaitRunning: %v", r.err)
				}
				if r.st.IP != tt.wantIP || !r.st.Ready() {
					t.Errorf("status = %+v, want running with %s", r.st, tt.wantIP)
				}
			}
			if !slices.Equal(nodes, tt.wantNodes) {
				t.Errorf("progress saw nodes %v, want %v", nodes, tt.wantNodes)
			}
		})
	}
}

func TestWaitRunningReportsDeletionAndTimeout(t *testing.T) {
	c := newCluster(t)
	j := job(t, c.ns, "9", "200", time.Now(), time.Hour)
	c.create(t, j)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var once bool
		_, err := c.runner.WaitRunning(ctx, j.Names.VMI, func(kube.Status) {
			if !once {
				once = true
				close(started)
			}
		})
		done <- err
	}()
	<-started
	if _, err := c.runner.Delete(t.Context(), j.Names); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "deleted while waiting") {
		t.Errorf("WaitRunning after deletion = %v", err)
	}

	// A VMI that never runs: the caller's deadline ends the wait.
	j2 := job(t, c.ns, "9", "201", time.Now(), time.Hour)
	c.create(t, j2)
	short, cancel2 := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel2()
	_, err := c.runner.WaitRunning(short, j2.Names.VMI, nil)
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Errorf("WaitRunning past the deadline = %v", err)
	}
}

func TestDeleteIsIdempotent(t *testing.T) {
	c := newCluster(t)
	j := job(t, c.ns, "3", "30", time.Now(), time.Hour)
	c.create(t, j)
	tests := []struct {
		name string
		want kube.Deleted
	}{
		{"first delete removes both", kube.Deleted{VMI: true, Secret: true}},
		{"second delete finds nothing and succeeds", kube.Deleted{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.runner.Delete(t.Context(), j.Names)
			if err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if got != tt.want {
				t.Errorf("Delete = %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := c.admin.GetVMI(t.Context(), j.Names.VMI); !apierrors.IsNotFound(err) {
		t.Errorf("vmi still there: %v", err)
	}
}
