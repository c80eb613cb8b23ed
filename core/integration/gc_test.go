package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
)

// gcFixture is a namespace holding one object of every kind gc must tell
// apart.
type gcFixture struct {
	*cluster
	now time.Time
}

func newGCFixture(t *testing.T) *gcFixture {
	t.Helper()
	c := newCluster(t)
	now := time.Now()
	f := &gcFixture{cluster: c, now: now}

	// 1. Expired: its label says it expired four hours ago.
	c.create(t, job(t, c.ns, "1", "1", now.Add(-5*time.Hour), time.Hour))
	// 2. Live: expires in 100 hours.
	c.create(t, job(t, c.ns, "1", "2", now, 100*time.Hour))
	// 3. Orphan: Secret owned by a VMI that no longer exists.
	orphan := job(t, c.ns, "1", "3", now, 100*time.Hour)
	c.create(t, orphan)
	if err := c.admin.Virt.KubevirtV1().VirtualMachineInstances(c.ns).Delete(t.Context(), orphan.Names.VMI, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// 4. Secret whose VMI was never created (prepare died in between).
	never := job(t, c.ns, "1", "4", now, 100*time.Hour)
	s, err := never.Secret()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.runner.Kube.CoreV1().Secrets(c.ns).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// 5. Foreign VMI and Secret: an expired-looking label but not ours.
	foreign := job(t, c.ns, "1", "5", now.Add(-5*time.Hour), time.Hour)
	fv, err := foreign.VMI()
	if err != nil {
		t.Fatal(err)
	}
	delete(fv.Labels, naming.LabelManagedBy)
	if _, err := c.admin.Virt.KubevirtV1().VirtualMachineInstances(c.ns).Create(t.Context(), fv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fs, err := foreign.Secret()
	if err != nil {
		t.Fatal(err)
	}
	fs.Labels[naming.LabelManagedBy] = "someone-else"
	if _, err := c.admin.Kube.CoreV1().Secrets(c.ns).Create(t.Context(), fs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return f
}

// exists reports which of the fixture's objects exist, as "vmi/name" and
// "secret/name".
func (f *gcFixture) exists(t *testing.T) []string {
	t.Helper()
	var out []string
	vmis, err := f.admin.Virt.KubevirtV1().VirtualMachineInstances(f.ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vmis.Items {
		out = append(out, "vmi/"+v.Name)
	}
	secrets, err := f.admin.Kube.CoreV1().Secrets(f.ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		out = append(out, "secret/"+s.Name)
	}
	slices.Sort(out)
	return out
}

func items(rep *kube.GCReport) []string {
	var out []string
	for _, it := range rep.Items {
		kind := map[string]string{"VirtualMachineInstance": "vmi", "Secret": "secret"}[it.Kind]
		out = append(out, kind+"/"+it.Name)
	}
	slices.Sort(out)
	return out
}

func TestGCDeletesExactlyExpiredAndOrphaned(t *testing.T) {
	f := newGCFixture(t)
	all := []string{
		"secret/runner-1-1-credentials", "secret/runner-1-2-credentials", "secret/runner-1-3-credentials",
		"secret/runner-1-4-credentials", "secret/runner-1-5-credentials",
		"vmi/runner-1-1", "vmi/runner-1-2", "vmi/runner-1-5",
	}
	if got := f.exists(t); !slices.Equal(got, all) {
		t.Fatalf("fixture = %v, want %v", got, all)
	}
	tests := []struct {
		name        string
		opts        kube.GCOptions
		wantItems   []string
		wantReasons []string
		wantLeft    []string
	}{
		{
			name:        "dry run deletes nothing",
			opts:        kube.GCOptions{DryRun: true, PageSize: 1},
			wantItems:   []string{"secret/runner-1-1-credentials", "secret/runner-1-3-credentials", "vmi/runner-1-1"},
			wantReasons: []string{"expired at", "its VMI runner-1-1 expired", "its VMI runner-1-3 no longer exists"},
			wantLeft:    all,
		},
		{
			name:      "real run, young never-owned secret kept",
			opts:      kube.GCOptions{PageSize: 2},
			wantItems: []string{"secret/runner-1-1-credentials", "secret/runner-1-3-credentials", "vmi/runner-1-1"},
			wantLeft: []string{"secret/runner-1-2-credentials", "secret/runner-1-4-credentials", "secret/runner-1-5-credentials",
				"vmi/runner-1-2", "vmi/runner-1-5"},
		},
		{
			name:        "later, the never-owned secret is past its grace",
			opts:        kube.GCOptions{Now: f.now.Add(time.Hour), OrphanGrace: 30 * time.Minute},
			wantItems:   []string{"secret/runner-1-4-credentials"},
			wantReasons: []string{"its VMI runner-1-4 was never created"},
			wantLeft:    []string{"secret/runner-1-2-credentials", "secret/runner-1-5-credentials", "vmi/runner-1-2", "vmi/runner-1-5"},
		},
		{
			name:        "max-age removes the live VMI too, never the foreign one",
			opts:        kube.GCOptions{Now: f.now.Add(2 * time.Hour), MaxAge: time.Hour},
			wantItems:   []string{"secret/runner-1-2-credentials", "vmi/runner-1-2"},
			wantReasons: []string{"older than --max-age 1h0m0s"},
			wantLeft:    []string{"secret/runner-1-5-credentials", "vmi/runner-1-5"},
		},
		{
			name:     "nothing left to do",
			opts:     kube.GCOptions{Now: f.now.Add(2 * time.Hour), MaxAge: time.Hour},
			wantLeft: []string{"secret/runner-1-5-credentials", "vmi/runner-1-5"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := f.runner.GC(t.Context(), tt.opts)
			if err != nil {
				t.Fatalf("GC: %v", err)
			}
			if got := items(rep); !slices.Equal(got, tt.wantItems) {
				t.Errorf("report items = %v, want %v", got, tt.wantItems)
			}
			reasons := fmt.Sprint(rep.Items)
			for _, r := range tt.wantReasons {
				if !strings.Contains(reasons, r) {
					t.Errorf("reasons %s lack %q", reasons, r)
				}
			}
			if rep.DryRun != tt.opts.DryRun {
				t.Errorf("report dryRun = %t", rep.DryRun)
			}
			if got := f.exists(t); !slices.Equal(got, tt.wantLeft) {
				t.Errorf("left = %v, want %v", got, tt.wantLeft)
			}
		})
	}
}

func TestGCAllNamespacesNeedsClusterRights(t *testing.T) {
	c := newCluster(t)
	_, err := c.runner.GC(t.Context(), kube.GCOptions{AllNamespaces: true, DryRun: true})
	if err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("GC --all-namespaces as the namespaced runner = %v, want forbidden", err)
	}
}
