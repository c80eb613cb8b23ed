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

// Cleanup deletes the job's VMI and Secret. It is idempotent (objects that
// do not exist count as deleted), bounded by opts.Timeout, and does not
// wait for KubeVirt's finalizers.
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
