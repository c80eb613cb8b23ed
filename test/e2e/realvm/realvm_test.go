package realvm_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"

	"golang.org/x/crypto/ssh"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/realvm"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

// waitLimit bounds waits for the environment to act after a job (VMIs
// going away, QEMU exiting); a deadline against hangs, not a performance
// expectation.
const waitLimit = 2 * time.Minute

// TestJobRunsInsideTheGuest runs one job in a real VM: every stage
// executes inside the guest (its kernel, its cloud-init, its git, the
// user the Linux plugin rendered), the transport's pinned host key is the
// one the guest serves and another pinned key is refused, the script's
// exit code reaches GitLab as a build failure, and nothing is left after
// cleanup.
func TestJobRunsInsideTheGuest(t *testing.T) {
	const jobID = 201
	name := e2e.VMIName(1, jobID)
	var (
		mu        sync.Mutex
		checked   bool
		checkErrs []string
		served    string // the host key the guest serves
		pinned    string // the host key in the job's Secret
	)
	hooks := runner.Hooks{
		// Hooks run synchronously: after the last run sub-stage the VM
		// is still up (cleanup deletes it), and the connections with a
		// wrong host key can no longer slow the job's own sessions on a
		// slow TCG guest.
		StageEnded: func(r runner.StageResult) {
			if r.Stage != runner.StageCleanupFileVariables {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			checked = true
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			acc, err := guestAccess(ctx, name)
			if err != nil {
				checkErrs = append(checkErrs, err.Error())
				return
			}
			pinned = acc.hostKey
			if served, err = servedHostKey(acc.addr()); err != nil {
				checkErrs = append(checkErrs, err.Error())
			}
			checkErrs = append(checkErrs, checkTransportPinning(ctx, acc)...)
		},
	}
	e, err := runner.New(withHooks(bed.RunnerConfig(), hooks))
	if err != nil {
		t.Fatal(err)
	}
	res := runJob(t.Context(), t, e, runner.Job{
		ID:   jobID,
		Name: "inside-the-guest",
		Script: []string{
			`echo "kernel=$(uname -r)"`,
			"cloud-init status",
			"git --version",
			`echo "user=$(id -un) host=$(hostname)"`,
			"for i in 1 2 3; do echo out-$i; echo err-$i >&2; done",
			"exit 3",
			"echo never-printed",
		},
		AfterScript: []string{"echo after-script-runs"},
		Variables:   []runner.Variable{{Key: "VM_CPU_REQUEST", Value: "2"}, {Key: "VM_MEMORY_REQUEST", Value: "1Gi"}},
	})

	if res.Status != runner.StatusBuildFailure || res.ExitCode != 3 || res.FailedStage != runner.StageStepScript {
		t.Errorf("status %s exit code %d stage %s (%s), want build failure with exit code 3 in step_script", res.Status, res.ExitCode, res.FailedStage, res.Reason)
	}
	if step, ok := res.Stage(runner.StageStepScript); !ok || step.BuildExitCode != 3 {
		t.Errorf("step_script %+v: BUILD_EXIT_CODE_FILE must hold 3", step)
	}
	log := res.JobLog()
	e2etest.InOrder(t, log,
		"Created VMI "+bed.Namespace+"/"+name, "VM reachable over transport-ssh", "VM "+name+" ready",
		"kernel="+bed.Image.KernelVersion+"\n",
		"status: done\n",
		"git version 2.",
		fmt.Sprintf("user=%s host=%s\n", realvm.GuestUser, name),
		"out-1\n", "out-2\n", "out-3\n",
		"$ exit 3",
		"Running after_script", "after-script-runs\n",
		"ERROR: Job failed: exit code 3")
	// stdout and stderr are separate SSH streams: each keeps its order.
	e2etest.InOrder(t, log, "err-1\n", "err-2\n", "err-3\n", "Running after_script")
	if strings.Contains(log, "never-printed") {
		t.Error("the script went on after exit 3")
	}

	mu.Lock()
	defer mu.Unlock()
	if !checked {
		t.Fatal("the job never reached cleanup_file_variables: the pinning checks did not run")
	}
	for _, e := range checkErrs {
		t.Error(e)
	}
	if served == "" || served != pinned {
		t.Errorf("the guest serves host key %q, the job's Secret pins %q", served, pinned)
	}
	assertClean(t)
}

// TestCancelKillsTheGuestsSleep cancels a job while its script sleeps in
// the guest: run exits on SIGTERM, and before cleanup deletes the VM a
// second SSH session finds the sleep gone.
func TestCancelKillsTheGuestsSleep(t *testing.T) {
	const jobID = 202
	name := e2e.VMIName(1, jobID)
	// A duration no other process has: pgrep -f finds only the job's.
	duration := fmt.Sprintf("%d.%03d", 5000+time.Now().Unix()%1000, time.Now().Nanosecond()%1000)
	pattern := "[s]leep " + regexp.QuoteMeta(duration) // [s] keeps pgrep's own shell from matching
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		mu         sync.Mutex
		found      bool
		stillThere string
		probeErr   error
		client     *ssh.Client
	)
	hooks := runner.Hooks{
		StageStarted: func(s runner.StageInfo) {
			if s.Stage != runner.StageStepScript {
				return
			}
			go func() {
				defer cancel()
				pctx, pcancel := context.WithTimeout(ctx, waitLimit)
				defer pcancel()
				acc, err := guestAccess(pctx, name)
				var c *ssh.Client
				if err == nil {
					c, err = acc.dial()
				}
				mu.Lock()
				client, probeErr = c, err
				mu.Unlock()
				for err == nil && pctx.Err() == nil {
					if out, _ := run(c, "pgrep -f '"+pattern+"'"); strings.TrimSpace(out) != "" {
						mu.Lock()
						found = true
						mu.Unlock()
						return // cancel the job
					}
					time.Sleep(200 * time.Millisecond)
				}
			}()
		},
		// Synchronous, so before cleanup: the guest's sleep must be gone.
		StageEnded: func(r runner.StageResult) {
			if r.Stage != runner.StageStepScript {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if client == nil {
				return
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				out, _ := run(client, "pgrep -af '"+pattern+"'")
				if stillThere = strings.TrimSpace(out); stillThere == "" || time.Now().After(deadline) {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		},
	}
	e, err := runner.New(withHooks(bed.RunnerConfig(), hooks))
	if err != nil {
		t.Fatal(err)
	}
	res := runJob(ctx, t, e, runner.Job{ID: jobID, Script: []string{"echo going-to-sleep", "sleep " + duration, "echo never-printed"}})

	mu.Lock()
	defer mu.Unlock()
	if client != nil {
		client.Close()
	}
	if probeErr != nil {
		t.Fatalf("second SSH session into the guest: %v", probeErr)
	}
	if !found {
		t.Fatalf("the guest never ran %q", "sleep "+duration)
	}
	if stillThere != "" {
		t.Errorf("the guest's sleep still runs after the cancel: %s", stillThere)
	}
	if res.Status != runner.StatusCanceled || res.FailedStage != runner.StageStepScript {
		t.Errorf("status %s stage %s, want canceled in step_script", res.Status, res.FailedStage)
	}
	if step, _ := res.Stage(runner.StageStepScript); !step.Terminated || step.Killed {
		t.Errorf("run got SIGTERM %t, needed SIGKILL %t; want it to exit on SIGTERM", step.Terminated, step.Killed)
	}
	if strings.Contains(res.JobLog(), "never-printed") {
		t.Error("the script went on after the cancel")
	}
	assertClean(t)
}

// TestBootFailureShowsTheConsole runs a job whose image has a broken
// initrd: the kernel panics in seconds, the stand-in fails the VMI with
// the console's tail, and prepare puts it in the job log. One prepare try
// (gitlab-runner would try three times) keeps it cheap.
func TestBootFailureShowsTheConsole(t *testing.T) {
	const jobID = 203
	cfg := bed.RunnerConfig()
	cfg.PrepareRetries = 1
	e, err := runner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res := runJob(t.Context(), t, e, runner.Job{ID: jobID, Image: brokenImage, Script: []string{"echo never-printed"}})
	if res.Status != runner.StatusSystemFailure || res.FailedStage != runner.StagePrepare {
		t.Errorf("status %s stage %s (%s), want a system failure in prepare", res.Status, res.FailedStage, res.Reason)
	}
	log := res.JobLog()
	for _, want := range []string{"did not reach SSH", "Kernel panic - not syncing", "qemu exited"} {
		if !strings.Contains(log, want) {
			t.Errorf("the job log lacks %q", want)
		}
	}
	if !regexp.MustCompile(`\[\s*\d+\.\d+\] `).MatchString(log) {
		t.Error("the job log has no kernel console line")
	}
	if strings.Contains(log, "never-printed") {
		t.Error("the script ran although prepare failed")
	}
	assertClean(t)
}

// withHooks returns cfg with hooks.
func withHooks(cfg runner.Config, hooks runner.Hooks) runner.Config {
	cfg.Hooks = hooks
	return cfg
}

// access is how the job logs in to its guest, read from the job's objects
// as the run stage reads them.
type access struct {
	ip, user, hostKey string
	port              int
	privateKey        []byte
}

func (a access) addr() string { return fmt.Sprintf("%s:%d", a.ip, a.port) }

// dial logs in with the job's key, accepting only the pinned host key.
func (a access) dial() (*ssh.Client, error) {
	signer, err := ssh.ParsePrivateKey(a.privateKey)
	if err != nil {
		return nil, fmt.Errorf("parse the job's client key: %w", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(a.hostKey))
	if err != nil {
		return nil, fmt.Errorf("parse the pinned host key: %w", err)
	}
	c, err := ssh.Dial("tcp", a.addr(), &ssh.ClientConfig{User: a.user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(pub), Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("ssh %s@%s: %w", a.user, a.addr(), err)
	}
	return c, nil
}

// guestAccess reads the VMI's address and the job's Secret (as admin).
func guestAccess(ctx context.Context, name string) (access, error) {
	vmi, err := bed.Virt.KubevirtV1().VirtualMachineInstances(bed.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return access{}, fmt.Errorf("get vmi %s: %w", name, err)
	}
	if len(vmi.Status.Interfaces) == 0 || vmi.Status.Interfaces[0].IP == "" {
		return access{}, fmt.Errorf("vmi %s has no address", name)
	}
	var secretName string
	for _, v := range vmi.Spec.Volumes {
		if v.CloudInitNoCloud != nil && v.CloudInitNoCloud.UserDataSecretRef != nil {
			secretName = v.CloudInitNoCloud.UserDataSecretRef.Name
		}
	}
	s, err := bed.Kube.CoreV1().Secrets(bed.Namespace).Get(ctx, secretName, metav1.GetOptions{})
	if err != nil {
		return access{}, fmt.Errorf("get the job's secret %q: %w", secretName, err)
	}
	port, err := strconv.Atoi(string(s.Data[kube.KeyTransportPort]))
	if err != nil {
		return access{}, fmt.Errorf("secret %s key %s: %w", secretName, kube.KeyTransportPort, err)
	}
	return access{ip: vmi.Status.Interfaces[0].IP, port: port, user: string(s.Data[kube.KeyUsername]),
		hostKey: strings.TrimSpace(string(s.Data[kube.KeyHostPublicKey])), privateKey: s.Data[kube.KeySSHPrivateKey]}, nil
}

// servedHostKey returns the host key the SSH server at addr presents, in
// authorized_keys format, without logging in.
func servedHostKey(addr string) (string, error) {
	var key string
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "nobody", Timeout: 30 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			key = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
			return fmt.Errorf("host key recorded")
		}})
	if c != nil {
		c.Close()
	}
	if key == "" {
		return "", fmt.Errorf("read the host key of %s: %v", addr, err)
	}
	return key, nil
}

// checkTransportPinning starts the transport plugin binary under test and
// calls WaitReady against the running guest: with the job's pinned host
// key it gets in; with another pinned key it must refuse, naming the key
// the guest presented.
func checkTransportPinning(ctx context.Context, acc access) []string {
	path := filepath.Join(binDir, e2e.PluginsDir, e2e.PluginPrefix+"transport-ssh")
	sum, err := fileSHA256(path)
	if err != nil {
		return []string{err.Error()}
	}
	p, err := pluginapi.Launch(ctx, pluginapi.LaunchOptions{Path: path, SHA256: sum, Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		return []string{fmt.Sprintf("launch %s: %v", path, err)}
	}
	defer p.Close()
	tr, err := p.Transport()
	if err != nil {
		return []string{fmt.Sprintf("transport of %s: %v", path, err)}
	}
	other, err := sshd.NewKeyPair()
	if err != nil {
		return []string{err.Error()}
	}
	pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(acc.hostKey))
	if err != nil {
		return []string{fmt.Sprintf("parse the pinned host key: %v", err)}
	}
	target := func(hostKey string) *pluginv1.Target {
		return &pluginv1.Target{Host: acc.ip, Port: uint32(acc.port), Username: acc.user, PrivateKey: acc.privateKey, HostKeys: []string{hostKey}}
	}
	var errs []string
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	if _, err := tr.WaitReady(wctx, target(acc.hostKey)); err != nil {
		errs = append(errs, fmt.Sprintf("plugin WaitReady with the job's pinned host key: %v", err))
	}
	cancel()
	wctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := tr.WaitReady(wctx, target(other.AuthorizedKey))
	presented := "the guest presented ssh-ed25519 " + ssh.FingerprintSHA256(pinned)
	switch {
	case err == nil:
		errs = append(errs, fmt.Sprintf("plugin WaitReady with another pinned host key got in after %d attempts", n))
	case !strings.Contains(err.Error(), "host key mismatch") || !strings.Contains(err.Error(), presented):
		errs = append(errs, fmt.Sprintf("plugin WaitReady with another pinned host key = %v, want a host key mismatch where %s", err, presented))
	}
	return errs
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("hash %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

// run runs cmd in a new session of c and returns its output.
func run(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}
