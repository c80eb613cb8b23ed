package pluginapi

import (
	"context"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// InfoPlugin is served by every plugin.
type InfoPlugin interface {
	// GetInfo describes the plugin: name, kind, version, API versions,
	// capabilities and, for OS plugins, the OS family and shells.
	GetInfo(ctx context.Context) (*pluginv1.PluginInfo, error)
	// Health reports whether the plugin can do its job (e.g. a helper
	// binary it needs is present).
	Health(ctx context.Context) (*pluginv1.HealthResponse, error)
}

// OSPlugin renders first-boot data for one guest OS family.
type OSPlugin interface {
	InfoPlugin
	// Render turns a user, credentials and a hostname into first-boot data
	// and the recipe for running scripts. Invalid input (a username with a
	// newline, an unknown option) is an InvalidArgument error naming the
	// field; it is never escaped into the document silently.
	Render(ctx context.Context, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error)
}

// TransportPlugin reaches a booted guest and runs commands on it.
type TransportPlugin interface {
	InfoPlugin
	// WaitReady retries dial, handshake and authentication with backoff
	// until the guest accepts a login with one of target.HostKeys or ctx
	// ends. It returns the number of attempts made.
	WaitReady(ctx context.Context, target *pluginv1.Target) (attempts uint32, err error)
	// Exec runs start.Command on the guest, copying output to stdio as it
	// arrives, until the command ends or ctx is cancelled; cancelling ctx
	// must end the remote command. An error means the command could not be
	// started; a lost connection after start is an exit with Disconnected.
	Exec(ctx context.Context, start *pluginv1.ExecStart, stdio ExecIO) (*pluginv1.ExecExit, error)
	// Upload writes content to header.Path on the guest and verifies that
	// the written bytes hash to header.Sha256.
	Upload(ctx context.Context, header *pluginv1.UploadHeader, content io.Reader) (*pluginv1.UploadResponse, error)
}

// TargetValidator is implemented by transport plugins that can check a
// target, its options above all, without connecting. It is optional: the
// core calls it through ValidateTarget before it creates anything, so a
// bad --transport-option fails with nothing to clean up.
type TargetValidator interface {
	// ValidateTarget refuses an invalid target with InvalidInput. The
	// target's host is a placeholder: the guest's address is not known yet.
	ValidateTarget(ctx context.Context, target *pluginv1.Target) error
}

// ValidateTarget asks t to check target if it can (see TargetValidator).
// A plugin without the check (it answers Unimplemented) passes.
func ValidateTarget(ctx context.Context, t TransportPlugin, target *pluginv1.Target) error {
	v, ok := t.(TargetValidator)
	if !ok {
		return nil
	}
	if err := v.ValidateTarget(ctx, target); err != nil && status.Code(err) != codes.Unimplemented {
		return err
	}
	return nil
}

// ExecIO connects a remote command to local streams.
type ExecIO struct {
	// Stdin feeds the command; nil means no input (stdin is closed at once).
	Stdin io.Reader
	// Stdout and Stderr receive the command's output; nil discards it.
	Stdout io.Writer
	Stderr io.Writer
	// Signals carries signal names ("TERM", "INT", "KILL") to deliver to the
	// remote command; nil means none.
	Signals <-chan string
}
