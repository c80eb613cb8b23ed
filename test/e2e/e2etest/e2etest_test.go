package e2etest_test

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// recorder is a testing.TB that keeps what Errorf reports.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestInOrder(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want []string
		errs []string
	}{
		{"in order", "a b c", []string{"a", "c"}, nil},
		{"nothing wanted", "a", nil, nil},
		{"out of order", "a b c", []string{"c", "a"}, []string{`"a" does not appear (in this order) in the job log after position 5`}},
		{"missing", "a b c", []string{"a", "x", "b"}, []string{`"x" does not appear (in this order) in the job log after position 1`}},
		{"repeated needs two", "ab", []string{"a", "a"}, []string{`"a" does not appear (in this order) in the job log after position 1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			e2etest.InOrder(r, tt.log, tt.want...)
			if !reflect.DeepEqual(r.errors, tt.errs) {
				t.Errorf("InOrder(%q, %q) reported %q, want %q", tt.log, tt.want, r.errors, tt.errs)
			}
		})
	}
}

func TestLogTail(t *testing.T) {
	var l e2etest.Log
	l.Logf("first %d", 1)
	l.Logf("second")
	all := l.String()
	if lines := strings.Split(strings.TrimSuffix(all, "\n"), "\n"); len(lines) != 2 ||
		!strings.HasSuffix(lines[0], " first 1") || !strings.HasSuffix(lines[1], " second") {
		t.Fatalf("log = %q, want two timestamped lines", all)
	}
	tests := []struct {
		n    int
		want string
	}{
		{0, all}, {-1, all}, {len(all), all}, {len(all) + 10, all}, {7, "second\n"},
	}
	for _, tt := range tests {
		if got := l.Tail(tt.n); got != tt.want {
			t.Errorf("Tail(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestBehaviours(t *testing.T) {
	vmi := func(name string) *kubevirtv1.VirtualMachineInstance {
		return &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	var b e2etest.Behaviours
	if got := b.Choose(vmi("a")); got != standin.Normal() {
		t.Errorf("zero value chose %+v, want normal", got)
	}
	b.Set("a", func(seen int) standin.Behaviour {
		if seen == 1 {
			return standin.Fail("first try")
		}
		return standin.Normal()
	})
	steps := []struct {
		name string
		want standin.Behaviour
	}{
		{"a", standin.Fail("first try")}, {"b", standin.Normal()}, {"a", standin.Normal()},
	}
	for i, s := range steps {
		if got := b.Choose(vmi(s.name)); got != s.want {
			t.Errorf("step %d: Choose(%s) = %+v, want %+v", i, s.name, got, s.want)
		}
	}
	b.Set("a", func(seen int) standin.Behaviour { return standin.Fail(fmt.Sprint("seen ", seen)) })
	if got, want := b.Choose(vmi("a")), standin.Fail("seen 1"); got != want {
		t.Errorf("after Set again: Choose = %+v, want %+v (Set restarts the count)", got, want)
	}
	b.Delete("a")
	if got := b.Choose(vmi("a")); got != standin.Normal() {
		t.Errorf("after Delete: Choose = %+v, want normal", got)
	}
}

func TestBinDirRefusesAnIncompleteDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(e2etest.BinDirEnv, dir)
	got, _, cleanup, err := e2etest.BinDir(t.Context(), "unused-")
	cleanup()
	if err == nil {
		t.Fatalf("BinDir with %s=%s (empty) = %q, want an error", e2etest.BinDirEnv, dir, got)
	}
	for _, want := range []string{e2etest.BinDirEnv, dir, "make build"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if _, statErr := os.Stat(dir); statErr != nil {
		t.Errorf("cleanup of a given %s removed it: %v", e2etest.BinDirEnv, statErr)
	}
}
