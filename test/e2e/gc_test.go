package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// Labels the executor puts on its objects (deploy docs, core/naming).
const (
	labelManagedBy = "app.kubernetes.io/managed-by"
	labelName      = "app.kubernetes.io/name"
	labelID        = "io.kubevirt.gitlab-runner/id"
	labelRunnerID  = "io.kubevirt.gitlab-runner/runner-id"
	labelExpires   = "io.kubevirt.gitlab-runner/expires"
	appName        = "gitlab-runner-kubevirt"
)

// gcObject is one object of the mixed set.
type gcObject struct {
	kind, name string
	labels     map[string]string
	owner      string // Secret's ownerReference to a VMI of this name
	ownerUID   types.UID
}

// ourLabels are the labels of job objects for VMI id expiring at expires.
func ourLabels(id string, expires time.Time) map[string]string {
	return map[string]string{
		labelManagedBy: appName, labelName: appName, labelID: id, labelRunnerID: "1",
		labelExpires: strconv.FormatInt(expires.Unix(), 10),
	}
}

// gcReport is the JSON `gc -o json` prints.
type gcReport struct {
	DryRun bool `json:"dryRun"`
	Items  []struct {
		Kind, Namespace, Name, Reason, Error string
	} `json:"items"`
}

// runGC runs the executor's gc as the runner's ServiceAccount.
func runGC(t *testing.T, args ...string) gcReport {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bed.Core, append([]string{"gc", "--kubeconfig", bed.Kubeconfig, "--namespace", bed.Namespace, "-o", "json"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gc %v: %v\nstdout: %s\nstderr: %s", args, err, stdout.String(), stderr.String())
	}
	var rep gcReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("gc -o json printed no JSON report (%v):\n%s", err, stdout.String())
	}
	return rep
}

func (r gcReport) names() []string {
	var out []string
	for _, it := range r.Items {
		out = append(out, it.Kind+"/"+it.Name)
	}
	sort.Strings(out)
	return out
}

// TestGC builds a mixed set of job objects and checks that gc deletes
// exactly the expired VMIs (with their Secrets) and the orphaned Secrets,
// and that --dry-run deletes nothing.
func TestGC(t *testing.T) {
	now := time.Now()
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	foreign := ourLabels("gc-foreign", past)
	delete(foreign, labelManagedBy) // looks like ours, is not managed by us
	objects := []gcObject{
		{kind: "VMI", name: "gc-expired", labels: ourLabels("gc-expired", past)},
		{kind: "Secret", name: "gc-expired-credentials", labels: ourLabels("gc-expired", past), owner: "gc-expired"},
		{kind: "VMI", name: "gc-live", labels: ourLabels("gc-live", future)},
		{kind: "Secret", name: "gc-live-credentials", labels: ourLabels("gc-live", future), owner: "gc-live"},
		{kind: "Secret", name: "gc-orphan-credentials", labels: ourLabels("gc-orphan", future), owner: "gc-orphan", ownerUID: "0b5e7a52-1111-4222-8333-944455556666"},
		{kind: "Secret", name: "gc-young-credentials", labels: ourLabels("gc-young", future)},
		{kind: "VMI", name: "gc-foreign", labels: foreign},
		{kind: "Secret", name: "gc-foreign-credentials", labels: foreign},
		{kind: "Secret", name: "unrelated", labels: map[string]string{"app": "something-else"}},
	}
	wantDeleted := []string{"Secret/gc-expired-credentials", "Secret/gc-orphan-credentials", "VirtualMachineInstance/gc-expired"}
	wantKept := []string{"Secret/gc-foreign-credentials", "Secret/gc-live-credentials", "Secret/gc-young-credentials", "Secret/unrelated",
		"VirtualMachineInstance/gc-foreign", "VirtualMachineInstance/gc-live"}

	ctx := t.Context()
	vmis := bed.Virt.KubevirtV1().VirtualMachineInstances(bed.Namespace)
	secrets := bed.Kube.CoreV1().Secrets(bed.Namespace)
	uids := map[string]types.UID{}
	for _, o := range objects {
		if o.kind != "VMI" {
			continue
		}
		behave(o.name, func(int) standin.Behaviour { return standin.Unschedulable("gc test: no node") })
		v, err := vmis.Create(ctx, gcVMI(o.name, o.labels), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids[o.name] = v.UID
	}
	for _, o := range objects {
		if o.kind != "Secret" {
			continue
		}
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: o.name, Labels: o.labels}, Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"userdata": []byte("#cloud-config\n")}}
		if o.owner != "" {
			uid := o.ownerUID
			if uid == "" {
				uid = uids[o.owner]
			}
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "kubevirt.io/v1", Kind: "VirtualMachineInstance", Name: o.owner, UID: uid}}
		}
		if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	dry := runGC(t, "--dry-run")
	if !dry.DryRun || !slices.Equal(dry.names(), wantDeleted) {
		t.Errorf("gc --dry-run would delete %v (dryRun %t), want %v", dry.names(), dry.DryRun, wantDeleted)
	}
	if got := existing(t); !slices.Equal(got, sortedUnion(wantDeleted, wantKept)) {
		t.Errorf("after --dry-run the namespace holds %v, want everything: %v", got, sortedUnion(wantDeleted, wantKept))
	}

	rep := runGC(t)
	if rep.DryRun || !slices.Equal(rep.names(), wantDeleted) {
		t.Errorf("gc deleted %v, want %v", rep.names(), wantDeleted)
	}
	for _, it := range rep.Items {
		if it.Error != "" || it.Reason == "" || it.Namespace != bed.Namespace {
			t.Errorf("gc item %+v: want a reason, no error, namespace %s", it, bed.Namespace)
		}
	}
	// Deleted VMIs disappear once the stand-in removed its finalizer.
	deadline := time.Now().Add(waitLimit)
	for !slices.Equal(existing(t), wantKept) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := existing(t); !slices.Equal(got, wantKept) {
		t.Errorf("after gc the namespace holds %v, want %v", got, wantKept)
	}
	if again := runGC(t); len(again.Items) != 0 {
		t.Errorf("a second gc deleted %v, want nothing", again.names())
	}

	for _, o := range objects {
		if o.kind == "VMI" {
			_ = vmis.Delete(ctx, o.name, metav1.DeleteOptions{})
		} else {
			_ = secrets.Delete(ctx, o.name, metav1.DeleteOptions{})
		}
	}
	assertClean(t)
}

// existing lists the namespace's VMIs and Secrets as Kind/name, sorted;
// VMIs being deleted count as gone.
func existing(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	vl, err := bed.Virt.KubevirtV1().VirtualMachineInstances(bed.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vl.Items {
		if v.DeletionTimestamp == nil {
			out = append(out, "VirtualMachineInstance/"+v.Name)
		}
	}
	sl, err := bed.Kube.CoreV1().Secrets(bed.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sl.Items {
		out = append(out, "Secret/"+s.Name)
	}
	sort.Strings(out)
	return out
}

func sortedUnion(a, b []string) []string {
	out := append(append([]string{}, a...), b...)
	sort.Strings(out)
	return out
}

// gcVMI is a minimal VMI with labels.
func gcVMI(name string, labels map[string]string) *kubevirtv1.VirtualMachineInstance {
	return &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{
			Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{{
				Name: "containerdisk", DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}},
			}}}},
			Volumes: []kubevirtv1.Volume{{Name: "containerdisk", VolumeSource: kubevirtv1.VolumeSource{
				ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: fmt.Sprintf("registry.example.com/ci/%s:1", name)},
			}}},
		},
	}
}
