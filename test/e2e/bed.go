package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"kubevirt.io/client-go/kubevirt"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// ServiceAccount is the runner's ServiceAccount in deploy/rbac.yaml.
const ServiceAccount = "gitlab-runner-kubevirt"

// DefaultImage is the containerDisk image the runner defaults to. The
// stand-in never pulls it.
const DefaultImage = "registry.example.com/ci/debian:12"

// Options configure [Start].
type Options struct {
	// BinDir holds the core and plugins/ with plugins.lock (see
	// [BuildBinaries], `make build`).
	BinDir string
	// Kube configures the control plane.
	Kube kubeenv.Options
	// Behaviour chooses each VMI's behaviour in the stand-in (nil: normal).
	Behaviour standin.BehaviourFunc
	// OnEvent receives the stand-in's events.
	OnEvent func(standin.Event)
	// Logf receives the stand-in's log (default: discarded).
	Logf func(format string, args ...any)
	// SSHPort is the guests' sshd port (default 22).
	SSHPort int
	// Progress, when set, is told each step of the start as it completes:
	// "apiserver ready", "namespace and RBAC", "runner kubeconfig",
	// "guest account", "stand-in watching".
	Progress func(step string)
}

// Bed is a running end-to-end environment. Stop it on every path.
type Bed struct {
	// ControlPlane is the control plane, the namespace with the runner's
	// RBAC and job objects, the runner's kubeconfig and admin clients.
	ControlPlane
	// Account is the guests' login user.
	Account *standin.Account
	// Standin drives the VMIs.
	Standin *standin.Controller
	// Core is the executor binary; PluginDir its plugin directory.
	Core, PluginDir string
	// SSHPort is the guests' sshd port.
	SSHPort int
}

// CheckTools fails, naming the Debian package, when a tool the bed needs
// is missing.
func CheckTools() error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, fmt.Errorf("the end-to-end environment needs root (useradd for the guest account, sshd on port 22 of loopback addresses); running as uid %d", os.Geteuid()))
	}
	for _, t := range []struct{ tool, pkg string }{
		{"sshd", "openssh-server"}, {"useradd", "passwd"}, {"userdel", "passwd"}, {"bash", "bash"},
	} {
		if _, err := exec.LookPath(t.tool); err == nil {
			continue
		}
		found := false
		for _, d := range []string{"/usr/sbin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(d, t.tool)); err == nil {
				found = true
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("%s is missing: install Debian package %s", t.tool, t.pkg))
		}
	}
	return errors.Join(errs...)
}

// Start brings the environment up: control plane, namespace, RBAC, the
// ServiceAccount's kubeconfig, the guest account and the stand-in. On
// failure everything started is stopped again.
func Start(ctx context.Context, opts Options) (b *Bed, err error) {
	if err := CheckTools(); err != nil {
		return nil, err
	}
	if err := CheckBinDir(opts.BinDir); err != nil {
		return nil, err
	}
	if opts.SSHPort == 0 {
		opts.SSHPort = standin.DefaultSSHPort
	}
	progress := func(step string) {
		if opts.Progress != nil {
			opts.Progress(step)
		}
	}
	b = &Bed{
		Core:      filepath.Join(opts.BinDir, CoreBinary),
		PluginDir: filepath.Join(opts.BinDir, PluginsDir),
		SSHPort:   opts.SSHPort,
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.Stop())
			b = nil
		}
	}()
	if b.ControlPlane, err = StartControlPlane(ctx, opts.Kube, "apiserver ready", progress); err != nil {
		return b, err
	}
	if b.Account, err = standin.CreateAccount(ctx); err != nil {
		return b, err
	}
	progress("guest account")
	b.Standin, err = standin.Start(ctx, standin.Options{
		Config:    b.Env.AdminConfig(),
		Namespace: b.Namespace,
		Behaviour: opts.Behaviour,
		OnEvent:   opts.OnEvent,
		Logf:      opts.Logf,
		SSHPort:   opts.SSHPort,
		// Each job's guest starts as fresh as a new VM.
		Accounts: []*standin.Account{b.Account},
	})
	if err != nil {
		return b, err
	}
	progress("stand-in watching")
	return b, nil
}

// ControlPlane is the part every bed starts first: a control plane, a
// namespace with the runner's RBAC, the runner's kubeconfig and admin
// clients.
type ControlPlane struct {
	// Env is the control plane.
	Env *kubeenv.Env
	// Namespace holds the runner's RBAC and the job objects.
	Namespace string
	// Kubeconfig authenticates as the runner's ServiceAccount.
	Kubeconfig string
	// Kube and Virt are admin clients.
	Kube kubernetes.Interface
	Virt kubevirt.Interface
}

// StartControlPlane starts the control plane with opts, a namespace
// "gitlab-runner-*" with the runner's RBAC (deploy/rbac.yaml), the
// kubeconfig of [ServiceAccount] and admin clients. progress (which may
// be nil) is told each step as it completes: ready once the control plane
// answers, then "namespace and RBAC" and "runner kubeconfig". The
// returned ControlPlane holds what was started even on error (its Env
// then needs stopping).
func StartControlPlane(ctx context.Context, opts kubeenv.Options, ready string, progress func(step string)) (cp ControlPlane, err error) {
	if progress == nil {
		progress = func(string) {}
	}
	if cp.Env, err = kubeenv.Start(ctx, opts); err != nil {
		return cp, err
	}
	progress(ready)
	if cp.Namespace, err = cp.Env.NewNamespace(ctx, "gitlab-runner-"); err != nil {
		return cp, err
	}
	if err = cp.Env.ApplyRBAC(ctx, cp.Namespace); err != nil {
		return cp, err
	}
	progress("namespace and RBAC")
	if _, cp.Kubeconfig, err = cp.Env.ServiceAccountConfig(ctx, cp.Namespace, ServiceAccount); err != nil {
		return cp, err
	}
	progress("runner kubeconfig")
	if cp.Kube, err = kubernetes.NewForConfig(cp.Env.AdminConfig()); err != nil {
		return cp, fmt.Errorf("admin client: %w", err)
	}
	if cp.Virt, err = kubevirt.NewForConfig(cp.Env.AdminConfig()); err != nil {
		return cp, fmt.Errorf("admin kubevirt client: %w", err)
	}
	return cp, nil
}

// RunnerConfig returns the [runners.custom] configuration of this bed:
// the core's four stages against the bed's namespace with the
// ServiceAccount's kubeconfig, the guest account as --ssh-user, and
// prepareArgs appended to prepare's flags (policy flags, for instance).
// Short retry and kill timeouts suit tests; the stage timeouts stay
// generous.
func (b *Bed) RunnerConfig(prepareArgs ...string) runner.Config {
	return StageConfig(b.Core, b.Kubeconfig, b.Namespace, b.Account.Name, 4*time.Minute, append([]string{
		"--ssh-port", fmt.Sprint(b.SSHPort),
		"--default-image", DefaultImage,
		"--timeout", "3m",
	}, prepareArgs...)...)
}

// StageConfig returns a [runners.custom] configuration that runs core's
// four stages against namespace with kubeconfig and sshUser as
// --ssh-user of config and prepare; prepare gets prepareArgs after those
// flags and is bounded by prepareTimeout. Short retry and kill timeouts suit tests; the other
// stage timeouts stay generous. The stages get a runner Pod's small
// environment; no KUBECONFIG: the flag names the file.
func StageConfig(core, kubeconfig, namespace, sshUser string, prepareTimeout time.Duration, prepareArgs ...string) runner.Config {
	kube := []string{"--kubeconfig", kubeconfig, "--namespace", namespace}
	return runner.Config{
		ConfigExec:           core,
		ConfigArgs:           []string{"config", "--ssh-user", sshUser},
		PrepareExec:          core,
		PrepareArgs:          append(append(append([]string{"prepare"}, kube...), "--ssh-user", sshUser), prepareArgs...),
		RunExec:              core,
		RunArgs:              append([]string{"run"}, kube...),
		CleanupExec:          core,
		CleanupArgs:          append([]string{"cleanup"}, kube...),
		Env:                  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"},
		PrepareRetryInterval: 200 * time.Millisecond,
		GracefulKillTimeout:  30 * time.Second,
		ForceKillTimeout:     10 * time.Second,
		ConfigExecTimeout:    2 * time.Minute,
		PrepareExecTimeout:   prepareTimeout,
		CleanupExecTimeout:   2 * time.Minute,
	}
}

// VMIName is the name the executor gives the VMI of job jobID on runner
// runnerID (deterministic: <prefix>-<runner id>-<job id>).
func VMIName(runnerID, jobID int64) string { return fmt.Sprintf("runner-%d-%d", runnerID, jobID) }

// Stop stops the stand-in (and every guest sshd), removes the guest
// account and stops the control plane. It is safe on a partly started bed.
func (b *Bed) Stop() error {
	var errs []error
	if b.Standin != nil {
		if err := b.Standin.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop the stand-in: %w", err))
		}
	}
	if b.Account != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Account.Remove(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if b.Env != nil {
		if err := b.Env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop the control plane: %w", err))
		}
	}
	return errors.Join(errs...)
}
