package stages

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
)

// CleanupOptions configure the cleanup stage.
type CleanupOptions struct {
	NamePrefix string
	// Timeout bounds the stage (default DefaultCleanupTimeout).
	Timeout time.Duration
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
	d, err := clients.Delete(ctx, names)
	if err != nil {
		return SystemFailure(err)
	}
	switch {
	case d.VMI || d.Secret:
		fmt.Fprintf(out, "Deleted VM %s/%s (vmi deleted: %t, secret deleted: %t)\n", clients.Namespace, names.VMI, d.VMI, d.Secret)
	default:
		fmt.Fprintf(out, "Nothing to clean up for VM %s/%s\n", clients.Namespace, names.VMI)
	}
	return nil
}
