package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// heldJob is a job that went through config, prepare and one step_script
// with the harness and was then kept (no cleanup), so that run stages can
// be started against it again and again with the environment gitlab-runner
// gave the real step_script.
type heldJob struct {
	id  int64
	dir string
	// env is step_script's environment, with TMPDIR, BUILD_EXIT_CODE_FILE
	// and JOB_RESPONSE_FILE moved into dir.
	env []string
	// runArgs is the core's run command line without script and stage.
	runArgs []string
	core    string
	// vmi names the job's VMI; ip is its address.
	vmi, ip string
	// sshArgs log in with OpenSSH as the executor does: same user, same
	// key, the host key pinned.
	sshArgs []string
}

// holdJob prepares a job through the harness and keeps it.
func (s *suite) holdJob(ctx context.Context) (*heldJob, error) {
	id := s.nextJobID()
	h := &heldJob{id: id, core: s.bed.Core}
	var err error
	if h.dir, err = os.MkdirTemp(s.dir, fmt.Sprintf("job-%d-", id)); err != nil {
		return nil, fmt.Errorf("job %d dir: %w", id, err)
	}
	cfg := s.bed.RunnerConfig()
	cfg.CleanupExec, cfg.CleanupArgs = "", nil // keep the VM
	h.runArgs = slices.Clone(cfg.RunArgs)
	var (
		mu       sync.Mutex
		captured []string
		response []byte
		readErr  error
	)
	cfg.Hooks.StageStarted = func(si runner.StageInfo) {
		if si.Stage != runner.StageStepScript {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		captured = slices.Clone(si.Env)
		for _, kv := range si.Env {
			if v, ok := strings.CutPrefix(kv, "JOB_RESPONSE_FILE="); ok {
				response, readErr = os.ReadFile(v)
			}
		}
	}
	ex, err := runner.New(cfg)
	if err != nil {
		return nil, err
	}
	res, err := ex.Run(ctx, runner.Job{ID: id, Script: []string{"true"}})
	if err != nil {
		return nil, err
	}
	if res.Status != runner.StatusSuccess {
		return nil, fmt.Errorf("prepare job %d: %s (%s)\n%s", id, res.Status, res.Reason, tail(res.JobLog(), 3000))
	}
	mu.Lock()
	defer mu.Unlock()
	if captured == nil || readErr != nil {
		return nil, fmt.Errorf("job %d: step_script's environment not captured (response file: %v)", id, readErr)
	}
	respPath := filepath.Join(h.dir, "response.json")
	if err := os.WriteFile(respPath, response, 0o600); err != nil {
		return nil, fmt.Errorf("job %d: %w", id, err)
	}
	for _, kv := range captured {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "TMPDIR":
			kv = k + "=" + h.dir
		case "BUILD_EXIT_CODE_FILE":
			kv = k + "=" + filepath.Join(h.dir, "build_exit_code")
		case "JOB_RESPONSE_FILE":
			kv = k + "=" + respPath
		}
		h.env = append(h.env, kv)
	}

	// The job's login, read as an admin from the Secret prepare wrote.
	h.vmi = e2e.VMIName(1, id)
	sec, err := s.bed.Kube.CoreV1().Secrets(s.bed.Namespace).Get(ctx, naming.SecretName(h.vmi), metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("job %d: get secret: %w", id, err)
	}
	access, err := kube.ParseAccess(sec)
	if err != nil {
		return nil, fmt.Errorf("job %d: %w", id, err)
	}
	vmi, err := s.bed.Virt.KubevirtV1().VirtualMachineInstances(s.bed.Namespace).Get(ctx, h.vmi, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("job %d: get vmi: %w", id, err)
	}
	st, err := kube.Assess(vmi)
	if err != nil {
		return nil, fmt.Errorf("job %d: %w", id, err)
	}
	h.ip = st.IP
	key := filepath.Join(h.dir, "id_ed25519")
	if err := os.WriteFile(key, access.PrivateKey, 0o600); err != nil {
		return nil, fmt.Errorf("job %d: write key file: %w", id, err)
	}
	knownHosts := filepath.Join(h.dir, "known_hosts")
	var kh strings.Builder
	for _, hk := range access.HostKeys {
		fmt.Fprintf(&kh, "%s %s\n", h.ip, strings.TrimSpace(hk))
	}
	if err := os.WriteFile(knownHosts, []byte(kh.String()), 0o600); err != nil {
		return nil, fmt.Errorf("job %d: write known_hosts: %w", id, err)
	}
	h.sshArgs = []string{
		"-F", "/dev/null", "-i", key, "-p", strconv.Itoa(access.Port),
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + knownHosts, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-l", access.Username, h.ip,
	}
	return h, nil
}

// release runs the job's cleanup stage with its environment.
func (s *suite) release(ctx context.Context, h *heldJob) error {
	cfg := s.bed.RunnerConfig()
	cmd := exec.CommandContext(ctx, cfg.CleanupExec, cfg.CleanupArgs...)
	cmd.Env, cmd.Dir = h.env, h.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("cleanup job %d: %w\n%s", h.id, err, tail(string(out), 2000))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

func sortedStrings(xs []string) []string {
	out := slices.Clone(xs)
	sort.Strings(out)
	return out
}

func execLookPath(tool string) (string, error) {
	if p, err := exec.LookPath(tool); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(d, tool)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /sbin", tool)
}
