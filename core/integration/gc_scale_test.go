package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
)

// gcSet is what a test namespace holds, as "vmi/name" and "secret/name".
type gcSet struct {
	expired []string // gc must delete these
	kept    []string // gc must leave these alone
}

func (s gcSet) all() []string { return sorted(append(slices.Clone(s.expired), s.kept...)) }

func sorted(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return out
}

// addJobs creates n jobs of runner runnerID with the executor's own
// Create: the even ones expired four hours ago, the odd ones live.
func (s *gcSet) addJobs(t *testing.T, c *cluster, runnerID string, n int, now time.Time) {
	t.Helper()
	for i := range n {
		j := job(t, c.ns, runnerID, strconv.Itoa(i), now, 100*time.Hour)
		dst := &s.kept
		if i%2 == 0 {
			j = job(t, c.ns, runnerID, strconv.Itoa(i), now.Add(-5*time.Hour), time.Hour)
			dst = &s.expired
		}
		c.create(t, j)
		*dst = append(*dst, "vmi/"+j.Names.VMI, "secret/"+j.Names.Secret)
	}
}

// addOrphan creates a job whose VMI is then deleted: its owned Secret is
// an orphan gc must delete.
func (s *gcSet) addOrphan(t *testing.T, c *cluster, runnerID, jobID string, now time.Time) {
	t.Helper()
	j := job(t, c.ns, runnerID, jobID, now, 100*time.Hour)
	c.create(t, j)
	if err := c.admin.Virt.KubevirtV1().VirtualMachineInstances(c.ns).Delete(t.Context(), j.Names.VMI, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	s.expired = append(s.expired, "secret/"+j.Names.Secret)
}

// addForeign creates an expired-looking VMI and Secret that are not ours
// (no managed-by label; someone else's managed-by).
func (s *gcSet) addForeign(t *testing.T, c *cluster, runnerID, jobID string, now time.Time) {
	t.Helper()
	j := job(t, c.ns, runnerID, jobID, now.Add(-5*time.Hour), time.Hour)
	v, err := j.VMI()
	if err != nil {
		t.Fatal(err)
	}
	delete(v.Labels, naming.LabelManagedBy)
	if _, err := c.admin.Virt.KubevirtV1().VirtualMachineInstances(c.ns).Create(t.Context(), v, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sec, err := j.Secret()
	if err != nil {
		t.Fatal(err)
	}
	sec.Labels[naming.LabelManagedBy] = "someone-else"
	if _, err := c.admin.Kube.CoreV1().Secrets(c.ns).Create(t.Context(), sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.kept = append(s.kept, "vmi/"+j.Names.VMI, "secret/"+j.Names.Secret)
}

// existing lists every VMI and Secret in c's namespace.
func (c *cluster) existing(t *testing.T) []string {
	t.Helper()
	return (&gcFixture{cluster: c}).exists(t)
}

// okItems are the report's items without an error.
func okItems(rep *kube.GCReport) []string {
	ok := &kube.GCReport{}
	for _, it := range rep.Items {
		if it.Error == "" {
			ok.Items = append(ok.Items, it)
		}
	}
	return items(ok)
}

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestGCInterruptedRunResumes stops a gc after a few deletions (its
// context is cancelled as the fifth DELETE goes out) and checks that the
// first run deleted only expired objects and reported only what it
// deleted, and that a second run deletes exactly the rest: nothing live,
// foreign or in another namespace is touched by either.
func TestGCInterruptedRunResumes(t *testing.T) {
	c, other := newCluster(t), newCluster(t)
	now := time.Now()
	var set, otherSet gcSet
	set.addJobs(t, c, "7", 24, now)
	set.addOrphan(t, c, "7", "100", now)
	set.addForeign(t, c, "7", "101", now)
	otherSet.addJobs(t, other, "7", 4, now)
	if got := c.existing(t); !slices.Equal(got, set.all()) {
		t.Fatalf("fixture = %v, want %v", got, set.all())
	}

	cfg, _, err := env.ServiceAccountConfig(t.Context(), c.ns, serviceAccount)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var deletes atomic.Int32
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodDelete && deletes.Add(1) == 5 {
				cancel()
			}
			return rt.RoundTrip(r)
		})
	}
	interrupted, err := kube.NewForConfig(cfg, c.ns)
	if err != nil {
		t.Fatal(err)
	}
	rep1, err := interrupted.GC(ctx, kube.GCOptions{Workers: 2, PageSize: 5})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted GC = %v, want context.Canceled", err)
	}
	left := c.existing(t)
	gone := setMinus(set.all(), left)
	if len(gone) == 0 || len(gone) >= len(set.expired) {
		t.Errorf("interrupted GC deleted %v, want some but not all of %v", gone, set.expired)
	}
	if extra := setMinus(gone, set.expired); len(extra) > 0 {
		t.Errorf("interrupted GC deleted %v, which are not expired", extra)
	}
	if lying := setMinus(okItems(rep1), gone); len(lying) > 0 {
		t.Errorf("interrupted GC reported %v deleted, but they exist", lying)
	}

	rep2, err := c.runner.GC(t.Context(), kube.GCOptions{PageSize: 5})
	if err != nil {
		t.Fatalf("second GC: %v", err)
	}
	if got, want := c.existing(t), sorted(set.kept); !slices.Equal(got, want) {
		t.Errorf("after the second GC the namespace holds %v, want %v", got, want)
	}
	if missing := setMinus(set.expired, append(items(rep1), items(rep2)...)); len(missing) > 0 {
		t.Errorf("neither run reported %v (first %v, second %v)", missing, items(rep1), items(rep2))
	}
	if extra := setMinus(append(okItems(rep1), items(rep2)...), set.expired); len(extra) > 0 {
		t.Errorf("the runs reported %v deleted, which are not expired", extra)
	}
	for _, it := range rep2.Items {
		// A Secret whose VMI the first run deleted is an orphan now.
		if it.Kind == "Secret" && slices.Contains(gone, "vmi/"+strings.TrimSuffix(it.Name, "-credentials")) &&
			!strings.Contains(it.Reason, "no longer exists") {
			t.Errorf("second GC deleted %s because %q, want its VMI no longer exists", it.Name, it.Reason)
		}
	}
	if got := other.existing(t); !slices.Equal(got, otherSet.all()) {
		t.Errorf("the other namespace holds %v after GC, want it untouched: %v", got, otherSet.all())
	}
}

// TestGCDryRunReportsExactlyWhatARunDeletes checks, with many jobs, small
// pages and several worker counts, that a dry run deletes nothing and
// reports exactly the objects (and reasons) a real run then deletes.
func TestGCDryRunReportsExactlyWhatARunDeletes(t *testing.T) {
	for _, workers := range []int{1, 7, 64} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			c := newCluster(t)
			now := time.Now()
			var set gcSet
			set.addJobs(t, c, "3", 20, now)
			set.addOrphan(t, c, "3", "50", now)
			set.addForeign(t, c, "3", "51", now)
			opts := kube.GCOptions{Workers: workers, PageSize: 3}

			dryOpts := opts
			dryOpts.DryRun = true
			dry, err := c.runner.GC(t.Context(), dryOpts)
			if err != nil {
				t.Fatalf("dry-run GC: %v", err)
			}
			if got := c.existing(t); !slices.Equal(got, set.all()) {
				t.Errorf("after the dry run the namespace holds %v, want everything: %v", got, set.all())
			}
			if got, want := items(dry), sorted(set.expired); !slices.Equal(got, want) {
				t.Errorf("dry run would delete %v, want %v", got, want)
			}
			if dry.ScannedVMIs != 20 || dry.ScannedSecrets != 21 {
				t.Errorf("dry run scanned %d VMIs and %d Secrets, want 20 and 21", dry.ScannedVMIs, dry.ScannedSecrets)
			}

			rep, err := c.runner.GC(t.Context(), opts)
			if err != nil {
				t.Fatalf("GC: %v", err)
			}
			dry.DryRun = false
			if fmt.Sprint(rep) != fmt.Sprint(dry) {
				t.Errorf("GC reported\n%v\nthe dry run\n%v", rep, dry)
			}
			if got, want := c.existing(t), sorted(set.kept); !slices.Equal(got, want) {
				t.Errorf("after GC the namespace holds %v, want %v", got, want)
			}
		})
	}
}

// TestGCNeedsExactlyItsVerbs runs gc as ServiceAccounts whose Role lacks
// one verb each: gc needs list on both kinds, delete on both and get on
// VMIs (the orphan check), and without one of them it fails with an error
// that says so and deletes nothing it should not.
func TestGCNeedsExactlyItsVerbs(t *testing.T) {
	all := map[string][]string{"virtualmachineinstances": {"get", "list", "delete"}, "secrets": {"list", "delete"}}
	tests := []struct {
		name     string
		resource string // loses verb
		verb     string
		wantErr  string // "" means success
		// mustStay are kinds of objects of the fixture that must survive.
		mustStay []string
	}{
		{name: "get list delete suffice"},
		{name: "no list secrets", resource: "secrets", verb: "list", wantErr: "list secrets", mustStay: []string{"expired", "orphan"}},
		{name: "no list vmis", resource: "virtualmachineinstances", verb: "list", wantErr: "list virtualmachineinstances", mustStay: []string{"expired", "orphan"}},
		{name: "no delete vmis", resource: "virtualmachineinstances", verb: "delete", wantErr: "delete VirtualMachineInstance", mustStay: []string{"expired"}},
		{name: "no delete secrets", resource: "secrets", verb: "delete", wantErr: "delete Secret", mustStay: []string{"expired secrets", "orphan"}},
		{name: "no get vmis", resource: "virtualmachineinstances", verb: "get", wantErr: "check vmi", mustStay: []string{"orphan"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			now := time.Now()
			var set gcSet
			set.addJobs(t, c, "9", 4, now)
			set.addOrphan(t, c, "9", "10", now)
			set.addForeign(t, c, "9", "11", now)

			var rules []rbacv1.PolicyRule
			for res, verbs := range all {
				group := ""
				if res == "virtualmachineinstances" {
					group = "kubevirt.io"
				}
				if res == tt.resource {
					verbs = slices.DeleteFunc(slices.Clone(verbs), func(v string) bool { return v == tt.verb })
				}
				rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{group}, Resources: []string{res}, Verbs: verbs})
			}
			gcClients := c.limitedServiceAccount(t, "gc-only", rules)
			_, err := gcClients.GC(t.Context(), kube.GCOptions{Workers: 4})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("GC with get/list/delete: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "forbidden")):
				t.Fatalf("GC without %s %s = %v, want a forbidden error mentioning %q", tt.verb, tt.resource, err, tt.wantErr)
			}
			left := c.existing(t)
			if extra := setMinus(set.kept, left); len(extra) > 0 {
				t.Errorf("GC deleted %v, which it must keep", extra)
			}
			if tt.wantErr == "" && !slices.Equal(left, sorted(set.kept)) {
				t.Errorf("GC left %v, want %v", left, sorted(set.kept))
			}
			for _, stay := range tt.mustStay {
				var want []string
				for _, o := range set.expired {
					isOrphan := strings.Contains(o, "-10-")
					switch stay {
					case "expired":
						if !isOrphan {
							want = append(want, o)
						}
					case "expired secrets":
						if !isOrphan && strings.HasPrefix(o, "secret/") {
							want = append(want, o)
						}
					case "orphan":
						if isOrphan {
							want = append(want, o)
						}
					}
				}
				if gone := setMinus(want, left); len(gone) > 0 {
					t.Errorf("GC without %s %s deleted %v (%s), want them kept", tt.verb, tt.resource, gone, stay)
				}
			}
		})
	}
}

// limitedServiceAccount creates ServiceAccount name in c's namespace bound
// to a Role with exactly rules, and returns clients acting as it.
func (c *cluster) limitedServiceAccount(t *testing.T, name string, rules []rbacv1.PolicyRule) *kube.Clients {
	t.Helper()
	ctx := t.Context()
	kc := c.admin.Kube
	if _, err := kc.CoreV1().ServiceAccounts(c.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.RbacV1().Roles(c.ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: c.ns}},
	}
	if _, err := kc.RbacV1().RoleBindings(c.ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := env.ServiceAccountConfig(ctx, c.ns, name)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := kube.NewForConfig(cfg, c.ns)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.WaitGranted(ctx, c.ns, name, rules); err != nil {
		t.Fatal(err)
	}
	return clients
}

// setMinus returns the elements of a that are not in b.
func setMinus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
