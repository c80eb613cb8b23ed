package stages

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/session"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// maxScriptSize bounds the script run uploads; GitLab's scripts are far
// smaller.
const maxScriptSize = 64 << 20

// lookBackTimeout bounds the extra GET run makes to explain a lost
// connection.
const lookBackTimeout = 10 * time.Second

// DefaultKillGrace is how long a cancelled run waits for the script to end
// after TERM before it sends KILL.
const DefaultKillGrace = 10 * time.Second

// RunOptions configure the run stage.
type RunOptions struct {
	NamePrefix string
	// Script is the local path of the script gitlab-runner wrote.
	Script string
	// Stage is the sub-stage name (step_script, after_script, ...).
	Stage string
	// KillGrace is how long a cancelled run waits for the remote script
	// after TERM before KILL (default DefaultKillGrace).
	KillGrace time.Duration
	// Session, when enabled, reattaches to the transport plugin prepare
	// kept running (--session); any problem falls back to a fresh plugin.
	Session session.Options
	// Logger is the runner log (stderr); nil discards.
	Logger hclog.Logger
}

func (o RunOptions) killGrace() time.Duration {
	if o.KillGrace <= 0 {
		return DefaultKillGrace
	}
	return o.KillGrace
}

// lastWait bounds the wait for the exit status after KILL; then the Exec
// call itself is cancelled.
const lastWait = 5 * time.Second

// execGracefully runs start and, when ctx ends (SIGTERM from
// gitlab-runner), ends the remote command in steps while the Exec call
// still runs: TERM, KILL after grace, and only then cancels the call.
// Cancelling the call at once would also end the remote command, but the
// plugin needs time for that, and this process exits (killing the
// plugin) as soon as Exec returns.
func execGracefully(ctx context.Context, transport pluginapi.TransportPlugin, start *pluginv1.ExecStart, stdout, stderr io.Writer, grace time.Duration) (*pluginv1.ExecExit, error) {
	callCtx, cancelCall := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCall()
	signals := make(chan string, 2)
	finished := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for _, step := range []struct {
			signal string
			wait   time.Duration
		}{{"TERM", grace}, {"KILL", lastWait}, {"", 0}} {
			if step.signal == "" {
				cancelCall()
				return
			}
			select {
			case <-finished:
				return
			case <-ctx.Done():
			}
			signals <- step.signal
			select {
			case <-finished:
				return
			case <-time.After(step.wait):
			}
		}
	}()
	exit, err := transport.Exec(callCtx, start, pluginapi.ExecIO{Stdout: stdout, Stderr: stderr, Signals: signals})
	close(finished)
	<-stopped
	return exit, err
}

// Run runs one script of the job on its VM: one GET of the Secret and the
// VMI, the transport plugin only (the recipe comes from the Secret), an
// upload of the script, and an Exec whose output streams to stdout and
// stderr as it arrives. A non-zero exit is a build failure carrying the
// script's code; a lost connection, a lost VM or an API error is a system
// failure. Cancelling ctx (SIGTERM), or reaching CI_JOB_TIMEOUT, ends the
// remote command (see execGracefully).
func Run(ctx context.Context, lookup jobenv.Lookup, clients *kube.Clients, plugins Plugins, opts RunOptions, stdout, stderr io.Writer) error {
	job, err := jobenv.ReadJob(lookup)
	if err != nil {
		return SystemFailure(err)
	}
	names, err := naming.ForJob(opts.NamePrefix, job.RunnerID, job.JobID)
	if err != nil {
		return SystemFailure(err)
	}
	script, err := readScript(opts.Script)
	if err != nil {
		return SystemFailure(err)
	}
	// gitlab-runner ends the stage at the job timeout; the same bound here
	// ends an orphaned run (its runner died) instead of letting it go on.
	if job.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, job.Timeout)
		defer cancel()
	}

	secret, vmi, err := clients.Get(ctx, names)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return SystemFailure(fmt.Errorf("the job's VM is gone (did prepare succeed, or did gc remove it?): %w", err))
		}
		return SystemFailure(err)
	}
	access, err := kube.ParseAccess(secret)
	if err != nil {
		return SystemFailure(err)
	}
	st, err := kube.Assess(vmi)
	if err != nil {
		return SystemFailure(err)
	}
	if !st.Ready() {
		return SystemFailure(fmt.Errorf("vmi %s/%s is not running with an IP address (phase %q, ip %q)", vmi.Namespace, vmi.Name, st.Phase, st.IP))
	}

	transport, release, err := runTransport(ctx, lookup, plugins, opts, names.VMI, string(vmi.UID), access.Transport, job.Timeout)
	if err != nil {
		return SystemFailure(fmt.Errorf("start transport plugin %q: %w", access.Transport, err))
	}
	defer release()
	target := access.Target(st.IP)
	path, err := scriptPath(access.Recipe, job.JobID, opts.Stage)
	if err != nil {
		return SystemFailure(err)
	}
	sum := sha256.Sum256(script)
	if _, err := transport.Upload(ctx, &pluginv1.UploadHeader{
		Target: target, Path: path, Mode: 0o700, Size: int64(len(script)), Sha256: hex.EncodeToString(sum[:]),
	}, bytes.NewReader(script)); err != nil {
		if ctx.Err() != nil {
			return SystemFailure(fmt.Errorf("run %s cancelled: %w", opts.Stage, ctx.Err()))
		}
		return SystemFailure(fmt.Errorf("upload the %s script to VM %s: %s", opts.Stage, names.VMI, pluginapi.ErrorMessage(err)))
	}

	command := strings.ReplaceAll(access.Recipe.GetCommand(), "{script}", path)
	exit, err := execGracefully(ctx, transport, &pluginv1.ExecStart{Target: target, Command: command},
		stdout, stderr, opts.killGrace())
	switch {
	case ctx.Err() != nil:
		return SystemFailure(fmt.Errorf("run %s cancelled (%s): %w", opts.Stage, describeExit(exit), ctx.Err()))
	case err != nil:
		return SystemFailure(fmt.Errorf("start the %s script on VM %s: %s", opts.Stage, names.VMI, pluginapi.ErrorMessage(err)))
	case exit.GetDisconnected():
		return SystemFailure(fmt.Errorf("lost the connection to VM %s during %s: %s; %s",
			names.VMI, opts.Stage, describeExit(exit), lookBack(ctx, clients, names.VMI)))
	case exit.GetSignal() != "":
		return BuildFailure(signalExitCode(exit.GetSignal()), fmt.Errorf("the %s script was %s", opts.Stage, describeExit(exit)))
	case exit.GetCode() != 0:
		return BuildFailure(int(exit.GetCode()), fmt.Errorf("the %s script failed with %s", opts.Stage, describeExit(exit)))
	}
	return nil
}

// runTransport returns the job's transport: the session prepare kept, or,
// with sessions off or on any problem with the session (no file, a file
// of another job or VMI, a dead plugin), a freshly started plugin. An Exec
// that fails over a session is not retried: scripts are not idempotent.
func runTransport(ctx context.Context, lookup jobenv.Lookup, plugins Plugins, opts RunOptions, vmi, uid, name string, jobTimeout time.Duration) (pluginapi.TransportPlugin, func(), error) {
	if opts.Session.Enabled {
		log := opts.Logger
		if log == nil {
			log = hclog.NewNullLogger()
		}
		m, err := session.New(lookup, vmi, jobTimeout, opts.Session, log)
		if err == nil {
			var p *pluginapi.Plugin
			if p, err = m.Attach(ctx, name, uid); err == nil {
				var t pluginapi.TransportPlugin
				if t, err = p.Transport(); err == nil {
					log.Debug("reusing the job's transport session", "plugin", name, "pid", p.Pid())
					return t, p.Close, nil
				}
				p.Close()
			}
		}
		if errors.Is(err, session.ErrNoSession) {
			log.Debug("no transport session: starting the transport plugin", "plugin", name)
		} else {
			log.Info("transport session unavailable, starting the transport plugin", "plugin", name, "reason", err.Error())
		}
	}
	t, err := plugins.Transport(ctx, name)
	return t, func() {}, err
}

// readScript reads the script gitlab-runner wrote.
func readScript(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("run: the script path argument is empty")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read script: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxScriptSize+1))
	if err != nil {
		return nil, fmt.Errorf("read script %s: %w", path, err)
	}
	if len(b) > maxScriptSize {
		return nil, fmt.Errorf("script %s is larger than %d bytes", path, maxScriptSize)
	}
	return b, nil
}

var unsafeNameChars = regexp.MustCompile(`[^a-z0-9._-]+`)

// scriptPath is where the script goes on the guest: the recipe's temp dir
// and a name of [a-z0-9._-] only (gitlab-<job id>-<stage>-<random>.<ext>),
// so the path never needs quoting.
func scriptPath(r *pluginv1.RunRecipe, jobID, stage string) (string, error) {
	if !extensionRE.MatchString(r.GetScriptExtension()) {
		return "", fmt.Errorf("run recipe script_extension %q must match %s", r.GetScriptExtension(), extensionRE)
	}
	s := unsafeNameChars.ReplaceAllString(strings.ToLower(stage), "-")
	s = strings.Trim(s, ".-")
	if len(s) > 64 {
		s = s[:64]
	}
	if s == "" {
		s = "script"
	}
	sep := r.GetPathSeparator()
	if sep == "" {
		sep = "/"
	}
	// A random part keeps two runs of the same stage (a retried job on a
	// reused guest, or guests sharing a temp dir) from colliding.
	nonce := make([]byte, 4)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("script name: %w", err)
	}
	dir := strings.TrimRight(r.GetTempDir(), sep)
	return dir + sep + "gitlab-" + jobID + "-" + s + "-" + hex.EncodeToString(nonce) + r.GetScriptExtension(), nil
}

// lookBack explains a lost connection from the VMI's current state.
func lookBack(ctx context.Context, clients *kube.Clients, name string) string {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookBackTimeout)
	defer cancel()
	vmi, err := clients.GetVMI(cctx, name)
	if apierrors.IsNotFound(err) {
		return "the VMI no longer exists"
	}
	if err != nil {
		return "the VMI's state is unknown: " + err.Error()
	}
	st, ferr := kube.Assess(vmi)
	if ferr != nil {
		return ferr.Error()
	}
	return fmt.Sprintf("the VMI is in phase %q on node %q", st.Phase, st.Node)
}

// signalExitCode is the shell convention for a process killed by a signal.
func signalExitCode(name string) int {
	n := map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "KILL": 9, "SEGV": 11, "PIPE": 13, "ALRM": 14, "TERM": 15}[strings.TrimPrefix(name, "SIG")]
	if n == 0 {
		return 1
	}
	return 128 + n
}
