package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/hashicorp/go-hclog"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/credentials"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/policy"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/session"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// Prepare defaults.
const (
	DefaultPrepareTimeout = 10 * time.Minute
	DefaultCleanupTimeout = 60 * time.Second
	// PasswordCapability is the OS plugin capability that asks for a
	// login password (Windows).
	PasswordCapability = "password"
)

var usernameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)

// PrepareOptions configure the prepare stage; they come from the runner's
// prepare_args.
type PrepareOptions struct {
	Defaults   policy.Defaults
	Policy     policy.Policy
	NamePrefix string

	Shell           string
	OSPlugin        string // empty: the OS plugin serving Shell
	TransportPlugin string
	OSOptions       map[string]string
	// TransportOptions may hold secrets: they are stored in the job's
	// Secret only.
	TransportOptions map[string]string
	Username         string
	Port             int
	Timezone         string

	NodeSelector      map[string]string
	Tolerations       []corev1.Toleration
	PriorityClassName string
	// KernelBoot, when set, boots every VM with KubeVirt's direct kernel
	// boot, kernel and initrd taken from the job's image (--kernel-boot).
	KernelBoot *kube.KernelBoot

	// Timeout bounds the whole stage (default DefaultPrepareTimeout).
	Timeout time.Duration
	// CleanupTimeout bounds the removal of what a failed prepare created
	// (default DefaultCleanupTimeout).
	CleanupTimeout time.Duration
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// Version is the executor's version, put in the
	// app.kubernetes.io/version label.
	Version string
	// Logger is the runner log (stderr); nil discards. Events that could
	// not be recorded are logged here at debug level.
	Logger hclog.Logger
	// Session keeps the transport plugin running for the job's run
	// stages (--session, --session-idle-timeout); see package session.
	Session session.Options
}

// SessionPlugins is implemented by a Plugins whose transport plugin can be
// kept as the job's session: it returns the plugin's process handle along
// with its service.
type SessionPlugins interface {
	Plugins
	// TransportProcess starts the transport plugin called name, detachable,
	// with its unix socket in socketDir.
	TransportProcess(ctx context.Context, name, socketDir string) (*pluginapi.Plugin, pluginapi.TransportPlugin, error)
}

// Validate checks the options that do not depend on the job (runner flags).
func (o *PrepareOptions) Validate() error {
	var errs []error
	if !usernameRE.MatchString(o.Username) {
		errs = append(errs, inputerr.New("--ssh-user", o.Username, "must match %s", usernameRE))
	}
	if o.Port < 1 || o.Port > 65535 {
		errs = append(errs, inputerr.New("--ssh-port", fmt.Sprint(o.Port), "must be a TCP port between 1 and 65535"))
	}
	if o.Shell == "" {
		errs = append(errs, inputerr.New("--shell", "", "is required (bash, pwsh, ...)"))
	}
	if o.TransportPlugin == "" {
		errs = append(errs, inputerr.New("--transport-plugin", "", "is required"))
	}
	if err := naming.ValidatePrefix("--name-prefix", o.NamePrefix); err != nil {
		errs = append(errs, err)
	}
	if o.KernelBoot != nil {
		if err := o.KernelBoot.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := o.Session.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Prepare runs the prepare stage: it validates everything (runner flags,
// job variables, policy) before the first API call, renders first-boot
// data, creates the Secret and the VMI, waits until the VMI runs, the
// transport reaches it with the pinned host key and the OS's readiness
// command succeeds. Progress goes to out (the job log). If anything fails,
// including cancellation, what was created is deleted with a fresh,
// bounded context.
func Prepare(ctx context.Context, lookup jobenv.Lookup, clients *kube.Clients, plugins Plugins, opts PrepareOptions, out io.Writer) (err error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultPrepareTimeout
	}
	if opts.CleanupTimeout <= 0 {
		opts.CleanupTimeout = DefaultCleanupTimeout
	}
	start := opts.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(out, "%s (%.1fs)\n", fmt.Sprintf(format, args...), opts.Now().Sub(start).Seconds())
	}

	// 1. Validate all input. Nothing has been created yet.
	job, jobErr := jobenv.ReadJob(lookup)
	req, reqErr := jobenv.ReadVMRequest(lookup)
	if err := errors.Join(opts.Validate(), jobErr, reqErr); err != nil {
		return SystemFailure(err)
	}
	vm, err := policy.Resolve(opts.Defaults, req, opts.Policy)
	if err != nil {
		return SystemFailure(explainPolicy(err, opts.Policy))
	}
	names, err := naming.ForJob(opts.NamePrefix, job.RunnerID, job.JobID)
	if err != nil {
		return SystemFailure(err)
	}

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	// 2. Plugins, credentials, first-boot data. Still nothing created.
	osp, info, err := startOS(ctx, plugins, opts.OSPlugin, opts.Shell)
	if err != nil {
		return SystemFailure(err)
	}
	transport, proc, sess, err := prepareTransport(ctx, lookup, plugins, opts, names.VMI, job.Timeout)
	if err != nil {
		return SystemFailure(fmt.Errorf("start transport plugin %q: %w", opts.TransportPlugin, err))
	}
	if sess != nil {
		defer func() {
			if err != nil {
				_ = sess.Store().Remove()
			}
		}()
	}
	passwordLength, err := credentials.PasswordLengthFor(slices.Contains(info.GetCapabilities(), PasswordCapability), info.GetMaxPasswordLength())
	if err != nil {
		return SystemFailure(fmt.Errorf("OS plugin %q: %w", info.GetName(), err))
	}
	creds, err := credentials.Generate(nil, passwordLength, opts.Username)
	if err != nil {
		return SystemFailure(err)
	}
	// The guest's address is not known yet: the VMI name stands in for it.
	if err := pluginapi.ValidateTarget(ctx, transport, &pluginv1.Target{
		Host: names.VMI, Port: uint32(opts.Port), Username: opts.Username,
		PrivateKey: creds.Client.PrivatePEM, Password: creds.Password,
		HostKeys: []string{creds.Host.Public}, Options: opts.TransportOptions,
	}); err != nil {
		return SystemFailure(fmt.Errorf("--transport-option / transport plugin %s refused the target: %s", opts.TransportPlugin, pluginapi.ErrorMessage(err)))
	}
	boot, err := osp.Render(ctx, &pluginv1.RenderRequest{
		Username:      opts.Username,
		AuthorizedKey: creds.Client.Public,
		HostKey: &pluginv1.HostKey{
			Type:       creds.Host.Type(),
			PrivateKey: creds.Host.PrivatePEM,
			PublicKey:  creds.Host.Public,
		},
		Password:   creds.Password,
		Hostname:   naming.Hostname(names.VMI, job.JobID, int(info.GetMaxHostnameLength())),
		Timezone:   opts.Timezone,
		Options:    opts.OSOptions,
		InstanceId: names.VMI + "-" + rand.String(8),
	})
	if err != nil {
		return SystemFailure(fmt.Errorf("os plugin %s: render first-boot data: %s", info.GetName(), pluginapi.ErrorMessage(err)))
	}
	if err := checkRecipe(info.GetName(), opts.Shell, boot.GetRecipe()); err != nil {
		return SystemFailure(err)
	}
	spec := &kube.Job{
		Namespace: clients.Namespace, Names: names, Job: job, VM: vm, Created: start,
		Boot: boot, OSPlugin: info.GetName(), Transport: opts.TransportPlugin,
		Username: opts.Username, Credentials: creds, Port: opts.Port, TransportOptions: opts.TransportOptions,
		NodeSelector: opts.NodeSelector, Tolerations: opts.Tolerations, PriorityClassName: opts.PriorityClassName,
		Version: opts.Version, KernelBoot: opts.KernelBoot,
	}
	secret, err := spec.Secret()
	if err != nil {
		return SystemFailure(err)
	}
	vmiObj, err := spec.VMI()
	if err != nil {
		return SystemFailure(err)
	}
	fmt.Fprintf(out, "Preparing VM %s/%s with os plugin %s and transport %s: %s\n", clients.Namespace, names.VMI, info.GetName(), opts.TransportPlugin, vm)

	// 3. Create; from here on, failure removes what exists.
	events := clients.Events(opts.Logger)
	var created *kubevirtv1.VirtualMachineInstance
	defer func() {
		if err == nil {
			return
		}
		events.Warning(ctx, created, kube.ReasonPrepareFailed, "Prepare failed for GitLab job %s, deleting the VM: %v", job.JobID, err)
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), opts.CleanupTimeout)
		defer ccancel()
		if _, derr := clients.Delete(cctx, names); derr != nil {
			fmt.Fprintf(out, "Removing VM %s after the failure failed too: %v\n", names.VMI, derr)
			return
		}
		fmt.Fprintf(out, "Removed VM %s and its Secret after the failure\n", names.VMI)
	}()
	if created, err = clients.Create(ctx, secret, vmiObj); err != nil {
		return SystemFailure(err)
	}
	createdAt := opts.Now()
	events.Normal(ctx, created, kube.ReasonCreated, "VM created for GitLab job %s (%s)", job.JobID, projectPath(job))
	logf("Created VMI %s/%s and Secret %s", clients.Namespace, names.VMI, names.Secret)

	var lastNode string
	st, err := clients.WaitRunning(ctx, names.VMI, func(s kube.Status) {
		if s.Node != "" && s.Node != lastNode {
			lastNode = s.Node
			logf("VMI scheduled on node %s", s.Node)
		}
	})
	if err != nil {
		return SystemFailure(explainWait(err, clients.Namespace, names.VMI, vm, opts.NodeSelector))
	}
	logf("VMI running with IP %s", st.IP)

	// KubeVirt reports Running before the guest OS is up: a guest that dies
	// while booting (the VMI turns Failed) ends the waits below with
	// KubeVirt's reason instead of the transport's timeout.
	gctx, gcancel := context.WithCancelCause(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		ferr := clients.WatchFailure(gctx, names.VMI)
		if errors.Is(ferr, kube.ErrVMIDeleted) || errors.As(ferr, new(*kube.FailedError)) {
			gcancel(ferr)
		} else if ferr != nil && opts.Logger != nil {
			// A broken watch must not break prepare: the transport's
			// own deadline still applies.
			opts.Logger.Debug("watch for a failing guest ended", "vmi", names.VMI, "error", ferr)
		}
	}()
	defer func() {
		gcancel(nil)
		<-watchDone
	}()
	guestFailed := func(err error) error {
		if cause := context.Cause(gctx); cause != nil && ctx.Err() == nil && (errors.Is(cause, kube.ErrVMIDeleted) || errors.As(cause, new(*kube.FailedError))) {
			return SystemFailure(fmt.Errorf("VM %s stopped while its guest booted: %w", names.VMI, cause))
		}
		return err
	}

	target := &pluginv1.Target{
		Host: st.IP, Port: uint32(opts.Port), Username: opts.Username,
		PrivateKey: creds.Client.PrivatePEM, Password: creds.Password,
		HostKeys: []string{creds.Host.Public}, Options: opts.TransportOptions,
	}
	attempts, err := transport.WaitReady(gctx, target)
	if err != nil {
		return guestFailed(SystemFailure(fmt.Errorf("reach VM %s at %s:%d with %s: %s\n%s", names.VMI, st.IP, opts.Port, opts.TransportPlugin,
			pluginapi.ErrorMessage(err), unreachableHint(clients.Namespace, names.VMI, opts.Port, opts.TransportPlugin))))
	}
	logf("VM reachable over %s at %s:%d (%d attempts)", opts.TransportPlugin, st.IP, opts.Port, attempts)

	if cmd := boot.GetRecipe().GetReadinessCommand(); cmd != "" {
		logf("Waiting for first-boot configuration: %s", firstLine(cmd))
		exit, err := transport.Exec(gctx, &pluginv1.ExecStart{Target: target, Command: cmd}, pluginapi.ExecIO{Stdout: out, Stderr: out})
		if err != nil {
			return guestFailed(SystemFailure(fmt.Errorf("run readiness command on VM %s: %s", names.VMI, pluginapi.ErrorMessage(err))))
		}
		if gctx.Err() != nil {
			return guestFailed(SystemFailure(fmt.Errorf("readiness command on VM %s: %w", names.VMI, context.Cause(gctx))))
		}
		if exit.GetDisconnected() || exit.GetSignal() != "" || exit.GetCode() != 0 {
			return SystemFailure(fmt.Errorf("readiness command %q on VM %s did not succeed: %s\nhint: first-boot configuration (cloud-init, Cloudbase-Init) failed or never finished; its log is on the VM console: virtctl console %s -n %s",
				firstLine(cmd), names.VMI, describeExit(exit), names.VMI, clients.Namespace))
		}
	}
	now := opts.Now()
	bootSecs, totalSecs := now.Sub(createdAt).Seconds(), now.Sub(start).Seconds()
	fmt.Fprintf(out, "VM %s ready on node %s (image %s, boot %.1fs, total %.1fs)\n", names.VMI, orUnknown(st.Node), vm.Image, bootSecs, totalSecs)
	events.Normal(ctx, created, kube.ReasonReady, "VM ready on node %s with IP %s after %.1fs", orUnknown(st.Node), st.IP, bootSecs)
	if proc != nil {
		if kerr := sess.Keep(ctx, proc, opts.TransportPlugin, string(created.UID)); kerr != nil {
			opts.logger().Info("transport session not kept: each run stage starts its own transport plugin", "error", kerr.Error())
			_ = sess.Store().Remove()
		}
	}
	return nil
}

// prepareTransport starts the transport plugin. With sessions on, a job
// that can have one (TMPDIR and a job token) and a plugin source that can
// hand out the process, it starts it detachable with its socket in the
// job's session directory and also returns the process and the session
// manager, for keeping it as the job's session once the VM is ready.
func prepareTransport(ctx context.Context, lookup jobenv.Lookup, plugins Plugins, opts PrepareOptions, vmi string, jobTimeout time.Duration) (pluginapi.TransportPlugin, *pluginapi.Plugin, *session.Manager, error) {
	if sp, ok := plugins.(SessionPlugins); ok && opts.Session.Enabled {
		m, err := session.New(lookup, vmi, jobTimeout, opts.Session, opts.logger())
		if err == nil {
			err = m.Store().MakeDir()
		}
		if err != nil {
			opts.logger().Debug("no transport session for this job: each run stage starts its own transport plugin", "reason", err.Error())
		} else {
			proc, t, err := sp.TransportProcess(ctx, opts.TransportPlugin, m.Store().Dir())
			if err != nil {
				_ = m.Store().Remove()
				return nil, nil, nil, err
			}
			return t, proc, m, nil
		}
	}
	t, err := plugins.Transport(ctx, opts.TransportPlugin)
	return t, nil, nil, err
}

// logger returns opts.Logger or a logger that discards.
func (o PrepareOptions) logger() hclog.Logger {
	if o.Logger == nil {
		return hclog.NewNullLogger()
	}
	return o.Logger
}

// startOS starts the OS plugin and checks it serves shell.
func startOS(ctx context.Context, plugins Plugins, name, shell string) (pluginapi.OSPlugin, *pluginv1.PluginInfo, error) {
	var (
		p   pluginapi.OSPlugin
		err error
	)
	if name == "" {
		p, err = plugins.OSForShell(ctx, shell)
	} else {
		p, err = plugins.OS(ctx, name)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("start the OS plugin (name %q, shell %q): %w", name, shell, err)
	}
	info, err := p.GetInfo(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("os plugin %q: get info: %s", name, pluginapi.ErrorMessage(err))
	}
	if !slices.Contains(info.GetShells(), shell) {
		return nil, nil, inputerr.New("--shell", shell, "is not served by os plugin %s (it serves %s)", info.GetName(), strings.Join(info.GetShells(), ", "))
	}
	return p, info, nil
}

var extensionRE = regexp.MustCompile(`^\.[a-z0-9]{1,8}$`)

// checkRecipe refuses a run recipe the run stage could not use.
func checkRecipe(plugin, shell string, r *pluginv1.RunRecipe) error {
	switch {
	case r == nil:
		return fmt.Errorf("os plugin %s returned no run recipe", plugin)
	case !strings.Contains(r.GetCommand(), "{script}"):
		return fmt.Errorf("os plugin %s: run recipe command %q has no {script} placeholder", plugin, r.GetCommand())
	case r.GetTempDir() == "":
		return fmt.Errorf("os plugin %s: run recipe has no temp_dir", plugin)
	case !extensionRE.MatchString(r.GetScriptExtension()):
		return fmt.Errorf("os plugin %s: run recipe script_extension %q must match %s", plugin, r.GetScriptExtension(), extensionRE)
	case r.GetShell() != "" && r.GetShell() != shell:
		return fmt.Errorf("os plugin %s: run recipe is for shell %q, the runner uses %q", plugin, r.GetShell(), shell)
	}
	return nil
}

// describeExit renders an ExecExit for messages.
func describeExit(e *pluginv1.ExecExit) string {
	var s string
	switch {
	case e.GetDisconnected():
		s = "the connection to the VM was lost"
	case e.GetSignal() != "":
		s = "killed by signal " + e.GetSignal()
	default:
		s = fmt.Sprintf("exit code %d", e.GetCode())
	}
	if m := e.GetMessage(); m != "" {
		s += " (" + m + ")"
	}
	return s
}

// firstLine shortens a multi-line command for the job log.
func firstLine(cmd string) string {
	if line, _, more := strings.Cut(cmd, "\n"); more {
		return line + " ..."
	}
	return cmd
}
