// Package stages implements the GitLab custom-executor stages of
// gitlab-runner-kubevirt: config, prepare, run, cleanup, and the gc
// maintenance command.
//
// Every stage is a function of (context, environment, clients, options)
// that writes the job log to the writers it is given and returns an error
// classified as a build or a system failure ([Failure]); [ExitStatus]
// turns that into the exit code gitlab-runner expects and writes
// BUILD_EXIT_CODE_FILE. The command layer (cmd/gitlab-runner-kubevirt)
// only parses flags and wires these functions, so each stage runs as a
// separate process exactly as gitlab-runner drives it: environment in,
// exit code out.
package stages

import (
	"context"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// Plugins starts the plugins a stage needs, on demand. Implementations
// start each plugin at most once per stage and end all of them in Close.
type Plugins interface {
	// OS starts the OS plugin called name.
	OS(ctx context.Context, name string) (pluginapi.OSPlugin, error)
	// OSForShell starts the OS plugin that serves GitLab shell shell
	// ("bash", "pwsh").
	OSForShell(ctx context.Context, shell string) (pluginapi.OSPlugin, error)
	// Transport starts the transport plugin called name.
	Transport(ctx context.Context, name string) (pluginapi.TransportPlugin, error)
	// Close ends every plugin started.
	Close()
}
