package e2e_test

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// waitLimit bounds every wait for something to happen: a deadline against
// hangs, never a performance expectation.
const waitLimit = 90 * time.Second

// runnerID is CI_RUNNER_ID of every job (the harness's default).
const runnerID = 1

// newExecutor returns a harness for bed with hooks and extra prepare
// flags.
func newExecutor(t *testing.T, hooks runner.Hooks, prepareArgs ...string) *runner.Executor {
	t.Helper()
	cfg := bed.RunnerConfig(prepareArgs...)
	cfg.Hooks = hooks
	return e2etest.NewExecutor(t, cfg)
}

// runJob runs job and, if the test fails, logs the job log, the runner
// log and the tail of the stand-in's log.
func runJob(ctx context.Context, t *testing.T, e *runner.Executor, job runner.Job) *runner.Result {
	t.Helper()
	return e2etest.RunJob(ctx, t, e, job, &standinLog, 6000)
}

// assertClean checks what every test must leave behind: no VMI, no
// Secret, no guest sshd, no executor or plugin process, no process of the
// guest account. It waits (bounded) for the stand-in to finish deleted
// VMIs, and deletes leftovers so later tests start clean.
func assertClean(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	e2etest.AssertNoJobObjects(ctx, t, cluster())
	// A powered-off guest leaves nothing in the shared temp dirs.
	if uid := accountUID(); uid != "" {
		for _, dir := range []string{"/tmp", "/var/tmp", "/dev/shm"} {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if owner(filepath.Join(dir, e.Name())) == uid {
					t.Errorf("%s/%s of the guest account survived the job", dir, e.Name())
				}
			}
		}
	}
	// Processes end asynchronously after their parent: poll, bounded.
	e2etest.WaitGone(ctx, t, "processes", leftoverProcesses)
}

// cluster is what the shared checks look at: the bed's admin clients,
// namespace and stand-in.
func cluster() e2etest.Cluster {
	return e2etest.Cluster{Kube: bed.Kube, Virt: bed.Virt, Namespace: bed.Namespace, Standin: bed.Standin}
}

// accountUID is the guest account's uid ("" if unknown).
func accountUID() string {
	u, err := user.Lookup(bed.Account.Name)
	if err != nil {
		return ""
	}
	return u.Uid
}

// owner is the uid owning path ("" if unknown).
func owner(path string) string {
	fi, err := os.Lstat(path)
	if err != nil {
		return ""
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return strconv.FormatUint(uint64(st.Uid), 10)
	}
	return ""
}

// leftoverProcesses lists processes of our binaries or of the guest
// account.
func leftoverProcesses() []string {
	uid := accountUID()
	var out []string
	for _, p := range e2etest.AllPids() {
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(p) + "/exe")
		owner := procUID(p)
		if strings.HasPrefix(exe, binDir+string(filepath.Separator)) || (uid != "" && owner == uid) {
			out = append(out, strconv.Itoa(p)+" "+e2etest.Cmdline(p))
		}
	}
	return out
}

func procEnviron(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	return strings.ReplaceAll(string(b), "\x00", "\n")
}

// procUID is the real uid of pid ("" if gone or a zombie).
func procUID(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "State:") && strings.Contains(line, "zombie") {
			return ""
		}
		if strings.HasPrefix(line, "Uid:") {
			if f := strings.Fields(line); len(f) > 1 {
				return f[1]
			}
		}
	}
	return ""
}

// parentPid reads the parent of pid (0 if gone).
func parentPid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// tree returns root and its living descendants.
func tree(root int) []int {
	children := map[int][]int{}
	for _, p := range e2etest.AllPids() {
		children[parentPid(p)] = append(children[parentPid(p)], p)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// procSnapshot is what was read of one process.
type procSnapshot struct {
	pid              int
	exe              string
	cmdline, environ string
}

// procWatcher reads the command line and environment of a stage process
// and of every process it starts, for as long as the stage runs.
type procWatcher struct {
	mu    sync.Mutex
	seen  map[int]procSnapshot
	stops map[int]chan struct{}
	wg    sync.WaitGroup
}

func newProcWatcher() *procWatcher {
	return &procWatcher{seen: map[int]procSnapshot{}, stops: map[int]chan struct{}{}}
}

// hooks returns harness hooks that watch every stage.
func (w *procWatcher) hooks() runner.Hooks {
	return runner.Hooks{
		StageStarted: func(s runner.StageInfo) { w.start(s.PID) },
		StageEnded:   func(r runner.StageResult) { w.stop(r.PID) },
	}
}

func (w *procWatcher) start(pid int) {
	stop := make(chan struct{})
	w.mu.Lock()
	w.stops[pid] = stop
	w.mu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			for _, p := range tree(pid) {
				w.read(p)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
}

func (w *procWatcher) read(pid int) {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return
	}
	snap := procSnapshot{pid: pid, exe: exe, cmdline: e2etest.Cmdline(pid), environ: procEnviron(pid)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.seen[pid]; ok && old.environ != "" {
		return
	}
	w.seen[pid] = snap
}

func (w *procWatcher) stop(pid int) {
	w.mu.Lock()
	stop := w.stops[pid]
	delete(w.stops, pid)
	w.mu.Unlock()
	if stop != nil {
		close(stop)
	}
}

// snapshots waits for the watchers and returns what they read.
func (w *procWatcher) snapshots() []procSnapshot {
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]procSnapshot, 0, len(w.seen))
	for _, s := range w.seen {
		out = append(out, s)
	}
	return out
}
