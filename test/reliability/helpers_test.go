package reliability_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// waitLimit bounds every wait for something to happen: a deadline against
// hangs, never a performance expectation.
const waitLimit = 2 * time.Minute

// lastJobID hands out job ids, unique within the suite.
var lastJobID atomic.Int64

func init() { lastJobID.Store(7000) }

// nextJobID returns a fresh CI_JOB_ID.
func nextJobID() int64 { return lastJobID.Add(1) }

// newExecutor returns a harness for bed with hooks and extra prepare flags;
// prepare is tried once (a retried prepare is covered by test/e2e).
func newExecutor(t *testing.T, hooks runner.Hooks, prepareArgs ...string) *runner.Executor {
	t.Helper()
	cfg := bed.RunnerConfig(prepareArgs...)
	cfg.Hooks = hooks
	cfg.PrepareRetries = 1
	return e2etest.NewExecutor(t, cfg)
}

// runJob runs job and logs the job, runner and stand-in logs if the test
// fails.
func runJob(ctx context.Context, t *testing.T, e *runner.Executor, job runner.Job) *runner.Result {
	t.Helper()
	return e2etest.RunJob(ctx, t, e, job, &standinLog, 6000)
}

// wantStatus checks the job's outcome.
func wantStatus(t *testing.T, res *runner.Result, want runner.Status) {
	t.Helper()
	if res.Status != want {
		t.Errorf("job status = %s (%s, failed stage %q), want %s", res.Status, res.Reason, res.FailedStage, want)
	}
}

// stageDuration returns how long the last run of stage took.
func stageDuration(res *runner.Result, stage string) time.Duration {
	s, _ := res.Stage(stage)
	return s.Duration
}

// objects lists the VMIs and Secrets in namespace (names).
func objects(ctx context.Context, namespace string) (vmis, secrets []string, err error) {
	vl, err := bed.Virt.KubevirtV1().VirtualMachineInstances(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	for _, v := range vl.Items {
		vmis = append(vmis, v.Name)
	}
	sl, err := bed.Kube.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	for _, s := range sl.Items {
		secrets = append(secrets, s.Name)
	}
	return vmis, secrets, nil
}

// assertClean checks what every test must leave behind: no VMI and no
// Secret in namespaces (default: the bed's), no executor or plugin
// process, no process of the guest account, no address held by the
// stand-in. Deleted VMIs stay until the stand-in powered their guest off,
// so it waits (bounded); leftovers are deleted so later tests start clean.
func assertClean(t *testing.T, namespaces ...string) {
	t.Helper()
	if len(namespaces) == 0 {
		namespaces = []string{bed.Namespace}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for _, ns := range namespaces {
		var vmis, secrets []string
		var err error
		for {
			vmis, secrets, err = objects(ctx, ns)
			if err != nil {
				t.Fatalf("list objects in %s: %v", ns, err)
			}
			if len(vmis)+len(secrets) == 0 || ctx.Err() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, n := range vmis {
			t.Errorf("VMI left in %s: %s", ns, n)
			_ = bed.Virt.KubevirtV1().VirtualMachineInstances(ns).Delete(ctx, n, metav1.DeleteOptions{})
		}
		for _, n := range secrets {
			t.Errorf("Secret left in %s: %s", ns, n)
			_ = bed.Kube.CoreV1().Secrets(ns).Delete(ctx, n, metav1.DeleteOptions{})
		}
	}
	if err := bed.Standin.WaitIdle(ctx); err != nil {
		t.Error(err)
	}
	e2etest.WaitGone(ctx, t, "processes", leftoverProcesses)
}

// gc runs `gitlab-runner-kubevirt gc` in namespace as the runner's
// ServiceAccount, deleting every job object (--max-age and --orphan-grace
// of 1ns), as the gc CronJob would after an outage.
func gc(t *testing.T, kubeconfig, namespace string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bed.Core, "gc", "--kubeconfig", kubeconfig, "--namespace", namespace,
		"--max-age", "1ns", "--orphan-grace", "1ns")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("gc: %v\n%s", err, out.String())
	}
	return out.String()
}

// accountUID is the guest account's uid ("" if unknown).
func accountUID() string {
	u, err := user.Lookup(bed.Account.Name)
	if err != nil {
		return ""
	}
	return u.Uid
}

// leftoverProcesses lists living processes of the binaries under test
// (the core and every gitlab-runner-kubevirt-plugin-*) or of the guest
// account.
func leftoverProcesses() []string {
	uid := accountUID()
	var out []string
	for _, p := range e2etest.AllPids() {
		if procState(p) == "Z" {
			// A zombie has no exe link; its name is the first 15 bytes
			// of the binary's name. Only our own zombies count (the
			// guest sshds' are reparented to init, which is not ours).
			// Packages run in parallel and orphans are reparented to an
			// init that may not reap: count a zombie only when its
			// parent is this test process or one of the binaries under
			// test, so other suites' zombies do not fail this one.
			if strings.HasPrefix(procStatusField(p, "Name"), e2e.PluginPrefix[:15]) && ownParent(procStatusField(p, "PPid")) {
				out = append(out, strconv.Itoa(p)+" (zombie) "+procStatusField(p, "Name"))
			}
			continue
		}
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(p) + "/exe")
		if underBinDir(exe) || (uid != "" && procUID(p) == uid) {
			out = append(out, strconv.Itoa(p)+" "+e2etest.Cmdline(p))
		}
	}
	return out
}

// underBinDir reports whether exe is one of the binaries under test.
func underBinDir(exe string) bool {
	dir, err := filepath.EvalSymlinks(binDir)
	if err != nil {
		dir = binDir
	}
	return strings.HasPrefix(exe, dir+string(filepath.Separator))
}

// ownParent reports whether ppid is this test process or a process of one
// of the binaries under test.
func ownParent(ppid string) bool {
	pid, err := strconv.Atoi(strings.TrimSpace(ppid))
	if err != nil {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return underBinDir(exe)
}

// pluginPids returns the living processes of this suite's plugin binaries.
func pluginPids() []int {
	// Only this suite's plugins: other packages' tests run at the same time
	// (go test runs packages in parallel) with plugins of their own.
	var pids []int
	for _, p := range e2etest.AllPids() {
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(p) + "/exe")
		if underBinDir(exe) && strings.HasPrefix(filepath.Base(exe), e2e.PluginPrefix) {
			pids = append(pids, p)
		}
	}
	return pids
}

func procEnviron(pid int) []string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	return strings.FieldsFunc(string(b), func(r rune) bool { return r == 0 })
}

// procStatusField returns a field of /proc/<pid>/status ("" if gone).
func procStatusField(pid int, field string) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// procState is the one-letter state of pid ("" if gone).
func procState(pid int) string {
	s := procStatusField(pid, "State")
	if s == "" {
		return ""
	}
	return s[:1]
}

// procUID is the real uid of pid ("" if gone).
func procUID(pid int) string {
	f := strings.Fields(procStatusField(pid, "Uid"))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// waitFor polls cond until it holds or waitLimit passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// onMarker returns a Log hook that calls f once, in a goroutine, when the
// job log first contains marker.
func onMarker(marker string, f func()) func(runner.Entry) {
	var fired atomic.Bool
	return func(e runner.Entry) {
		if !e.Runner && bytes.Contains(e.Data, []byte(marker)) && fired.CompareAndSwap(false, true) {
			go f()
		}
	}
}
