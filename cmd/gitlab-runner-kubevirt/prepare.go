package main

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/policy"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/session"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/stages"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// Defaults of prepare's flags.
const (
	defaultShell           = "bash"
	defaultUser            = "runner"
	defaultPort            = 22
	defaultTransportPlugin = "transport-ssh"
	defaultMachineType     = "q35"
	defaultArchitecture    = "amd64"
	defaultTTL             = "3h"
	defaultCPURequest      = "1"
	defaultMemoryRequest   = "1Gi"
)

// prepareFlags are prepare's flags as typed by the administrator; options
// parses and validates them.
type prepareFlags struct {
	kube kubeFlags

	image, pullPolicy, pullSecret  string
	machineType, architecture, ttl string
	cpuReq, cpuLim, memReq, memLim string
	storageReq, storageLim         string
	allowedImages, allowedMachines []string
	allowedArchs                   []string
	maxCPU, maxMemory, maxStorage  string
	maxTTL                         string
	shell, sshUser, timezone       string
	sshPort                        int
	osPlugin, transportPlugin      string
	osOptions, transportOptions    []string
	nodeSelector, tolerations      []string
	priorityClass                  string
	timeout                        time.Duration
	kernelBoot                     bool
	kernelArgs, kernelPath         string
	initrdPath                     string
	session                        bool
	sessionIdle                    time.Duration
}

func newPrepareCmd(g *globalOptions) *cobra.Command {
	f := &prepareFlags{}
	cmd := &cobra.Command{
		Use:   "prepare",
		Short: "Create the job's VM and wait until it is ready (custom executor prepare_exec)",
		Long: `prepare validates the runner's defaults and policy and the job's variables
(CI_JOB_IMAGE, VM_MACHINE_TYPE, VM_ARCHITECTURE, VM_TTL, VM_CPU_REQUEST,
VM_CPU_LIMIT, VM_MEMORY_REQUEST, VM_MEMORY_LIMIT, VM_STORAGE_REQUEST,
VM_STORAGE_LIMIT; gitlab-runner passes them with a CUSTOM_ENV_ prefix), then
creates the job's Secret and VirtualMachineInstance, waits until the VM runs,
is reachable with its pinned host key and has finished first-boot
configuration. A refused value creates nothing. On any failure, including
SIGTERM, whatever was created is deleted.`,
		Example: `  # config.toml: prepare_exec = "gitlab-runner-kubevirt", prepare_args = [...]
  gitlab-runner-kubevirt prepare --namespace ci \
    --default-image quay.io/containerdisks/debian:12 \
    --allowed-images 'quay.io/containerdisks/*,registry.example.com/ci/*' \
    --max-cpu 4 --max-memory 8Gi --max-ttl 6h

  # Windows guests (Cloudbase-Init, PowerShell over SSH):
  gitlab-runner-kubevirt prepare --shell pwsh --ssh-user Administrator \
    --default-image registry.example.com/ci/windows-2022:latest --default-memory-request 4Gi`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := f.options()
			if err != nil {
				return stageExit(stages.SystemFailure(err))
			}
			clients, err := f.kube.clients()
			if err != nil {
				return stageExit(stages.SystemFailure(err))
			}
			opts.Version, opts.Logger = version, g.logger()
			plugins := openPlugins(g)
			defer plugins.Close()
			return stageExit(stages.Prepare(cmd.Context(), jobenv.OS(), clients, plugins, opts, cmd.OutOrStdout()))
		},
	}
	f.register(cmd)
	cmd.SetFlagErrorFunc(flagError)
	return cmd
}

// register binds prepare's flags to f.
func (f *prepareFlags) register(cmd *cobra.Command) {
	f.kube.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.image, "default-image", "", "containerDisk image of jobs that set no image (required)")
	fl.StringVar(&f.pullPolicy, "default-image-pull-policy", "", "image pull policy: Always, IfNotPresent or Never (default: Kubernetes' rule)")
	fl.StringVar(&f.pullSecret, "default-image-pull-secret", "", "name of the registry Secret used to pull the image")
	fl.StringVar(&f.machineType, "default-machine-type", defaultMachineType, "QEMU machine type (spec.domain.machine.type)")
	fl.StringVar(&f.architecture, "default-architecture", defaultArchitecture, "guest architecture: amd64 (x86_64), arm64 (aarch64), s390x, ppc64le, riscv64")
	fl.StringVar(&f.cpuReq, "default-cpu-request", defaultCPURequest, "CPU request (Kubernetes quantity)")
	fl.StringVar(&f.cpuLim, "default-cpu-limit", "", "CPU limit (Kubernetes quantity; empty: none)")
	fl.StringVar(&f.memReq, "default-memory-request", defaultMemoryRequest, "memory request, the guest's memory size (Kubernetes quantity)")
	fl.StringVar(&f.memLim, "default-memory-limit", "", "memory limit (Kubernetes quantity; empty: none)")
	fl.StringVar(&f.storageReq, "default-storage-request", "", "ephemeral-storage request (Kubernetes quantity; empty: none)")
	fl.StringVar(&f.storageLim, "default-storage-limit", "", "ephemeral-storage limit (Kubernetes quantity; empty: none)")
	fl.StringVar(&f.ttl, "default-ttl", defaultTTL, "time after which gc may delete the VM (Go duration)")
	fl.StringSliceVar(&f.allowedImages, "allowed-images", nil, "glob patterns (path.Match; '*' stops at '/') of images jobs may choose; empty: any")
	fl.StringVar(&f.maxCPU, "max-cpu", "", "largest CPU request or limit a job may ask for (empty: no bound)")
	fl.StringVar(&f.maxMemory, "max-memory", "", "largest memory request or limit a job may ask for (empty: no bound)")
	fl.StringVar(&f.maxStorage, "max-storage", "", "largest ephemeral-storage request or limit a job may ask for (empty: no bound)")
	fl.StringVar(&f.maxTTL, "max-ttl", "", "longest VM_TTL a job may ask for (empty: no bound)")
	fl.StringSliceVar(&f.allowedMachines, "allowed-machine-types", nil, "machine types jobs may choose besides the default")
	fl.StringSliceVar(&f.allowedArchs, "allowed-architectures", nil, "architectures jobs may choose besides the default")
	fl.StringVar(&f.shell, "shell", defaultShell, "GitLab shell of the job scripts (bash, pwsh, ...); selects the OS plugin unless --os-plugin is set")
	fl.StringVar(&f.sshUser, "ssh-user", defaultUser, "login name on the guest")
	fl.IntVar(&f.sshPort, "ssh-port", defaultPort, "port the transport connects to on the VM's IP")
	fl.StringVar(&f.timezone, "timezone", "", "IANA time zone of the guest (empty: the image's)")
	fl.StringVar(&f.osPlugin, "os-plugin", "", "OS plugin name (default: the plugin serving --shell)")
	fl.StringVar(&f.transportPlugin, "transport-plugin", defaultTransportPlugin, "transport plugin name")
	fl.StringArrayVar(&f.osOptions, "os-plugin-option", nil, "key=value option for the OS plugin (repeatable)")
	fl.StringArrayVar(&f.transportOptions, "transport-option", nil, "key=value option for the transport plugin (repeatable; stored in the job's Secret)")
	fl.StringArrayVar(&f.nodeSelector, "node-selector", nil, "label=value every VM's node must carry (repeatable)")
	fl.StringArrayVar(&f.tolerations, "toleration", nil, "toleration key[=value][:Effect] (repeatable; without value: operator Exists)")
	fl.StringVar(&f.priorityClass, "priority-class", "", "priorityClassName of the VMs")
	fl.DurationVar(&f.timeout, "timeout", stages.DefaultPrepareTimeout, "bound of the whole stage")
	registerSessionFlag(cmd, &f.session)
	fl.DurationVar(&f.sessionIdle, "session-idle-timeout", session.DefaultIdleTimeout, "end the job's transport session after this long without a stage using it (1s to 24h)")
	fl.BoolVar(&f.kernelBoot, "kernel-boot", false, "boot the kernel and initrd inside the job's image directly (KubeVirt kernelBoot; microvm's images have no boot loader)")
	fl.StringVar(&f.kernelArgs, "kernel-args", kube.DefaultKernelArgs, "kernel command line with --kernel-boot")
	fl.StringVar(&f.kernelPath, "kernel-path", kube.DefaultKernelPath, "absolute path of the kernel inside the image, with --kernel-boot")
	fl.StringVar(&f.initrdPath, "initrd-path", kube.DefaultInitrdPath, "absolute path of the initrd inside the image, with --kernel-boot (empty: none)")
}

// options parses and validates every flag, reporting all problems at once.
func (f *prepareFlags) options() (stages.PrepareOptions, error) {
	var errs []error
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	quantity := func(flag, v string) *resource.Quantity {
		if v == "" {
			return nil
		}
		q, err := jobenv.ParseQuantity(flag, v)
		collect(err)
		if err != nil {
			return nil
		}
		return &q
	}
	d := policy.Defaults{
		Image:           f.image,
		ImagePullPolicy: f.pullPolicy,
		ImagePullSecret: f.pullSecret,
		CPURequest:      quantity("--default-cpu-request", f.cpuReq),
		CPULimit:        quantity("--default-cpu-limit", f.cpuLim),
		MemoryRequest:   quantity("--default-memory-request", f.memReq),
		MemoryLimit:     quantity("--default-memory-limit", f.memLim),
		StorageRequest:  quantity("--default-storage-request", f.storageReq),
		StorageLimit:    quantity("--default-storage-limit", f.storageLim),
	}
	var err error
	if f.image == "" {
		collect(inputerr.New(policy.FlagDefaultImage, "", "is required: the containerDisk image of jobs that set no image"))
	} else {
		_, err = jobenv.ParseImage(policy.FlagDefaultImage, f.image)
		collect(err)
	}
	switch f.pullPolicy {
	case "", "Always", "IfNotPresent", "Never":
	default:
		collect(inputerr.New(policy.FlagDefaultPullPolicy, f.pullPolicy, "must be Always, IfNotPresent or Never"))
	}
	if d.MachineType, err = jobenv.ParseMachineType(policy.FlagDefaultMachineType, f.machineType); err != nil {
		collect(err)
	}
	if d.Architecture, err = jobenv.ParseArchitecture(policy.FlagDefaultArchitecture, f.architecture); err != nil {
		collect(err)
	}
	if d.TTL, err = jobenv.ParseTTL(policy.FlagDefaultTTL, f.ttl); err != nil {
		collect(err)
	}
	if f.pullSecret != "" {
		for _, msg := range validation.IsDNS1123Subdomain(f.pullSecret) {
			collect(inputerr.New("--default-image-pull-secret", f.pullSecret, "must be a Secret name: %s", msg))
		}
	}

	p := policy.Policy{
		AllowedImages: f.allowedImages,
		MaxCPU:        quantity(policy.FlagMaxCPU, f.maxCPU),
		MaxMemory:     quantity(policy.FlagMaxMemory, f.maxMemory),
		MaxStorage:    quantity(policy.FlagMaxStorage, f.maxStorage),
	}
	if f.maxTTL != "" {
		p.MaxTTL, err = jobenv.ParseTTL(policy.FlagMaxTTL, f.maxTTL)
		collect(err)
	}
	for _, m := range f.allowedMachines {
		mt, err := jobenv.ParseMachineType("--allowed-machine-types", m)
		collect(err)
		p.AllowedMachineTypes = append(p.AllowedMachineTypes, mt)
	}
	for _, a := range f.allowedArchs {
		arch, err := jobenv.ParseArchitecture("--allowed-architectures", a)
		collect(err)
		p.AllowedArchitectures = append(p.AllowedArchitectures, arch)
	}
	collect(p.Validate())

	osOpts, err := keyValues("--os-plugin-option", f.osOptions, false)
	collect(err)
	trOpts, err := keyValues("--transport-option", f.transportOptions, true)
	collect(err)
	nodeSel, err := nodeSelector(f.nodeSelector)
	collect(err)
	tols, err := tolerations(f.tolerations)
	collect(err)
	if f.priorityClass != "" {
		for _, msg := range validation.IsDNS1123Subdomain(f.priorityClass) {
			collect(inputerr.New("--priority-class", f.priorityClass, "must be a PriorityClass name: %s", msg))
		}
	}
	if f.timeout <= 0 {
		collect(inputerr.New("--timeout", f.timeout.String(), "must be positive"))
	}
	opts := stages.PrepareOptions{
		Defaults: d, Policy: p, NamePrefix: f.kube.prefix,
		Shell: f.shell, OSPlugin: f.osPlugin, TransportPlugin: f.transportPlugin,
		OSOptions: osOpts, TransportOptions: trOpts,
		Username: f.sshUser, Port: f.sshPort, Timezone: f.timezone,
		NodeSelector: nodeSel, Tolerations: tols, PriorityClassName: f.priorityClass,
		Timeout: f.timeout,
		Session: session.Options{Enabled: f.session, IdleTimeout: f.sessionIdle},
	}
	if f.kernelBoot {
		opts.KernelBoot = &kube.KernelBoot{Args: f.kernelArgs, KernelPath: f.kernelPath, InitrdPath: f.initrdPath}
	}
	collect(opts.Validate())
	return opts, errors.Join(errs...)
}

// keyValues parses repeated key=value flags. secret values are never
// echoed in errors.
func keyValues(flag string, pairs []string, secret bool) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		shown := kv
		if secret {
			shown = k + "=<redacted>"
		}
		switch {
		case !ok || k == "":
			errs = append(errs, inputerr.New(flag, shown, "must be key=value with a non-empty key"))
		case strings.ContainsAny(k, " \t\r\n"):
			errs = append(errs, inputerr.New(flag, shown, "key must not contain whitespace"))
		default:
			if _, dup := out[k]; dup {
				errs = append(errs, inputerr.New(flag, shown, "key %q is given twice", k))
			}
			out[k] = v
		}
	}
	return out, errors.Join(errs...)
}

// nodeSelector parses --node-selector label=value flags.
func nodeSelector(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			errs = append(errs, inputerr.New("--node-selector", kv, "must be label=value"))
			continue
		}
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, inputerr.New("--node-selector", kv, "label %s", msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, inputerr.New("--node-selector", kv, "value %s", msg))
		}
		out[k] = v
	}
	return out, errors.Join(errs...)
}

// tolerations parses --toleration key[=value][:Effect] flags.
func tolerations(specs []string) ([]corev1.Toleration, error) {
	var (
		out  []corev1.Toleration
		errs []error
	)
	for _, s := range specs {
		kv, effect, _ := strings.Cut(s, ":")
		k, v, hasValue := strings.Cut(kv, "=")
		t := corev1.Toleration{Key: k, Effect: corev1.TaintEffect(effect), Operator: corev1.TolerationOpExists}
		if hasValue {
			t.Operator, t.Value = corev1.TolerationOpEqual, v
		}
		switch t.Effect {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			errs = append(errs, inputerr.New("--toleration", s, "effect must be NoSchedule, PreferNoSchedule or NoExecute"))
		}
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, inputerr.New("--toleration", s, "key %s", msg))
		}
		if hasValue {
			for _, msg := range validation.IsValidLabelValue(v) {
				errs = append(errs, inputerr.New("--toleration", s, "value %s", msg))
			}
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// ---- shared by the stage commands ----------------------------------------

// kubeFlags select the cluster and the object names; every stage that talks
// to Kubernetes registers them.
type kubeFlags struct {
	kubeconfig, context, namespace string
	prefix                         string
}

func (k *kubeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then the in-cluster ServiceAccount)")
	fl.StringVar(&k.context, "context", "", "kubeconfig context (default: the current one)")
	fl.StringVar(&k.namespace, "namespace", "", "namespace of the job VMs (default: the context's or the in-cluster namespace)")
	fl.StringVar(&k.prefix, "name-prefix", naming.DefaultPrefix, "first part of VMI names <prefix>-<runner id>-<job id>; use the same value in every stage")
}

func (k *kubeFlags) clients() (*kube.Clients, error) {
	return kube.New(kube.Options{Kubeconfig: k.kubeconfig, Context: k.context, Namespace: k.namespace})
}

// stageExit turns a stage result into the exit code gitlab-runner expects
// (see stages.ExitStatus) and writes BUILD_EXIT_CODE_FILE for script
// failures.
func stageExit(err error) error {
	code, werr := stages.ExitStatus(jobenv.OS(), err)
	if code == 0 {
		return nil
	}
	return &exitError{code: code, err: errors.Join(err, werr)}
}

// flagError makes a malformed command line a system failure, not exit 1.
func flagError(_ *cobra.Command, err error) error {
	return stageExit(stages.SystemFailure(err))
}

// hostPlugins adapts the plugin host to the plugins a stage asks for. The
// host is made on first use, so a stage that fails validation never looks
// at the plugin directory.
type hostPlugins struct {
	g    *globalOptions
	host *pluginhost.Host
}

// openPlugins returns the stage's plugin source: plugins are started on
// first use from the plugin directory and its plugins.lock.
func openPlugins(g *globalOptions) stages.Plugins {
	return &hostPlugins{g: g}
}

func (h *hostPlugins) get() (*pluginhost.Host, error) {
	if h.host != nil {
		return h.host, nil
	}
	dir, err := pluginhost.ResolveDir(h.g.pluginDir)
	if err != nil {
		return nil, err
	}
	// Plugin and host messages go to the runner log (stderr), shaped by
	// --log-level and --log-format like every other runner log line.
	log := h.g.logger()
	log.Debug("plugin directory", "path", dir.Path, "from", dir.Source)
	host, err := pluginhost.New(pluginhost.Options{Dir: dir.Path, Logger: log, PluginLogLevel: h.g.logLevel})
	if err != nil {
		return nil, err
	}
	h.host = host
	return host, nil
}

func (h *hostPlugins) OS(ctx context.Context, name string) (pluginapi.OSPlugin, error) {
	host, err := h.get()
	if err != nil {
		return nil, err
	}
	p, err := host.OpenByName(ctx, pluginhost.KindOS, name)
	if err != nil {
		return nil, err
	}
	return p.OS()
}

func (h *hostPlugins) OSForShell(ctx context.Context, shell string) (pluginapi.OSPlugin, error) {
	host, err := h.get()
	if err != nil {
		return nil, err
	}
	p, err := host.OpenForShell(ctx, shell)
	if err != nil {
		return nil, err
	}
	return p.OS()
}

func (h *hostPlugins) Transport(ctx context.Context, name string) (pluginapi.TransportPlugin, error) {
	host, err := h.get()
	if err != nil {
		return nil, err
	}
	p, err := host.OpenByName(ctx, pluginhost.KindTransport, name)
	if err != nil {
		return nil, err
	}
	return p.Transport()
}

// TransportProcess starts the transport plugin called name detachable,
// with its unix socket in socketDir (pluginhost.Host.OpenDetachable: the
// same lock, checksum and GetInfo checks as every other plugin), and
// returns its process handle too, so prepare can keep it as the job's
// session (stages.SessionPlugins). Until prepare detaches it, Close ends
// it like any other plugin.
func (h *hostPlugins) TransportProcess(ctx context.Context, name, socketDir string) (*pluginapi.Plugin, pluginapi.TransportPlugin, error) {
	host, err := h.get()
	if err != nil {
		return nil, nil, err
	}
	p, err := host.OpenDetachable(ctx, pluginhost.KindTransport, name, socketDir)
	if err != nil {
		return nil, nil, err
	}
	t, err := p.Transport()
	if err != nil {
		p.Close()
		return nil, nil, err
	}
	return p.Plugin, t, nil
}

// registerSessionFlag adds --session, shared by prepare and run.
func registerSessionFlag(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "session", true, "keep the transport plugin and its connection to the VM running from prepare to cleanup, so run stages reuse it (false: every stage starts its own)")
}

// Close ends every plugin started, except a detached session, which it
// only disconnects from.
func (h *hostPlugins) Close() {
	if h.host != nil {
		h.host.Close()
	}
}
