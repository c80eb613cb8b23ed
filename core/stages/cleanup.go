package stages

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/session"
)

// CleanupOptions configure the cleanup stage.
type CleanupOptions struct {
	NamePrefix string
	// Timeout bounds the stage (default DefaultCleanupTimeout).
	Timeout time.Duration
	// Logger is the runner log (stderr); nil discards. Events that could
	// not be recorded are logged here at debug level.
	Logger hclog.Logger
}

// Cleanup ends the job's transport session (if prepare kept one), then
// deletes the job's VMI and Secret. It is idempotent (objects that do not
// exist count as deleted), bounded by opts.Timeout, and does not wait for
// KubeVirt's finalizers.
func Cleanup(ctx context.Context, lookup jobenv.Lookup, clients *kube.Clients, opts CleanupOptions, out io.Writer) error {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultCleanupTimeout
	}
	job, err := jobenv.ReadJob(lookup)
	if err != nil {
		return SystemFailure(err)
	}
	names, err := naming.ForJob(opts.NamePrefix, job.RunnerID, job.JobID)
	if err != nil {
		return SystemFailure(err)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	endSession(ctx, lookup, names.VMI, opts.Logger)
	// The VMI is read first only to attach Events to it; a failed read
	// (already gone, no rights) just records none.
	events := clients.Events(opts.Logger)
	vmi, gerr := clients.GetVMI(ctx, names.VMI)
	if gerr != nil {
		vmi = nil
	}
	events.Normal(ctx, vmi, kube.ReasonCleanupStarted, "Cleanup started for GitLab job %s", job.JobID)
	d, err := clients.Delete(ctx, names)
	if err != nil {
		events.Warning(ctx, vmi, kube.ReasonCleanupFailed, "Cleanup failed for GitLab job %s: %v", job.JobID, err)
		return SystemFailure(err)
	}
	events.Normal(ctx, vmi, kube.ReasonDeleted, "VM and Secret deleted for GitLab job %s", job.JobID)
	switch {
	case d.VMI || d.Secret:
		fmt.Fprintf(out, "Deleted VM %s/%s (vmi deleted: %t, secret deleted: %t)\n", clients.Namespace, names.VMI, d.VMI, d.Secret)
	default:
		fmt.Fprintf(out, "Nothing to clean up for VM %s/%s\n", clients.Namespace, names.VMI)
	}
	return nil
}

// endSession stops the job's transport session and removes its file, best
// effort and bounded by session.StopTimeout: a session left behind ends by
// itself (idle timeout, job timeout, or its VM gone).
func endSession(ctx context.Context, lookup jobenv.Lookup, vmi string, log hclog.Logger) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	m, err := session.New(lookup, vmi, 0, session.Options{}, log)
	if err != nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, session.StopTimeout)
	defer cancel()
	if err := m.End(sctx); err != nil {
		log.Info("ending the transport session", "error", err.Error())
	}
}
