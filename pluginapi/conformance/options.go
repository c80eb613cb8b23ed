package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// DefaultCallTimeout bounds every call the kit makes, so a plugin that hangs
// fails the check that called it instead of the whole test binary.
const DefaultCallTimeout = time.Minute

// DefaultWrongHostKeyTimeout bounds WaitReady against a target whose pinned
// host key is wrong: a transport keeps retrying until its deadline.
const DefaultWrongHostKeyTimeout = 5 * time.Second

// OSOptions configures TestOSPlugin.
type OSOptions struct {
	// Env is added to the plugin's environment. Like the core, the kit
	// passes nothing of its own environment but PATH; it also sets
	// GITLAB_RUNNER_KUBEVIRT_PLUGIN_LOG_LEVEL=trace, so that debug logging
	// is checked for secrets too. Env may override both.
	Env []string
	// Request adjusts the valid request the kit renders, e.g. to set the
	// Options or the Timezone the plugin needs. It gets a fresh request for
	// every render. The kit's request has Username "runner", Hostname
	// "ci-job-42", a fresh ed25519 AuthorizedKey and HostKey, a random
	// Password shaped like the core's (32 characters of a-z, A-Z, 2-9 and
	// -_.+=@) if the plugin declares the "password" capability, and no
	// Timezone or Options.
	Request func(req *pluginv1.RenderRequest)
	// Check validates the rendered response of the valid request further,
	// e.g. with the first-boot tool's own validator (cloud-init schema).
	Check func(t *testing.T, req *pluginv1.RenderRequest, resp *pluginv1.RenderResponse)
	// Mask replaces the parts of user-data that legitimately differ between
	// two renders of the same request, before they are compared. The kit
	// itself masks crypt(3) hashes ($6$salt$..., $y$...), whose salts are
	// random. Nil masks nothing else.
	Mask func(userData []byte) []byte
	// StartTimeout bounds launch and handshake; zero means
	// pluginapi.DefaultStartTimeout.
	StartTimeout time.Duration
	// CallTimeout bounds each call; zero means DefaultCallTimeout.
	CallTimeout time.Duration
}

// TransportOptions configures TestTransportPlugin.
type TransportOptions struct {
	// Env is added to the plugin's environment; see OSOptions.Env.
	Env []string
	// Target returns a guest the transport can reach: it accepts a login
	// with the target's credentials and presents one of its HostKeys.
	// Required; called once.
	Target func(t *testing.T) *pluginv1.Target
	// WrongHostKey returns a host public key (authorized_keys format) that
	// the target does not present. Nil generates a fresh ed25519 key, which
	// is right for every SSH-based transport.
	WrongHostKey func(t *testing.T, target *pluginv1.Target) string
	// Commands run on the guest; zero fields are POSIX sh defaults.
	Commands Commands
	// UploadDir is a directory on the guest the login user may write to
	// and run commands in. Default "/tmp".
	UploadDir string
	// WrongHostKeyTimeout bounds WaitReady against a wrong host key; zero
	// means DefaultWrongHostKeyTimeout.
	WrongHostKeyTimeout time.Duration
	// StartTimeout bounds launch and handshake; zero means
	// pluginapi.DefaultStartTimeout.
	StartTimeout time.Duration
	// CallTimeout bounds each call; zero means DefaultCallTimeout.
	CallTimeout time.Duration
}

// Commands are the guest commands TestTransportPlugin runs. The defaults
// are POSIX sh; a transport for another guest (PowerShell over WinRM, ...)
// sets every field.
type Commands struct {
	// OutErr prints the line "out" on stdout and "err" on stderr, then
	// exits with code 3. Default: echo out; echo err 1>&2; exit 3
	OutErr string
	// Cat copies stdin to stdout until stdin ends. Default: cat
	Cat string
	// Env prints the value of the variable CONFORMANCE_VAR on one line and
	// the working directory on the next.
	// Default: printf '%s\n' "$CONFORMANCE_VAR"; pwd
	Env string
	// Block prints the line "started <id>", where <id> identifies the
	// process (its pid), and then runs until it is killed.
	// Default: echo "started $$"; exec sleep 3600
	Block string
	// Alive exits 0 while the process "{id}" printed by Block runs, and
	// non-zero once it is gone. Default: kill -0 {id}
	Alive string
	// ReadFile prints the content of the file "{path}".
	// Default: cat {path}
	ReadFile string
}

func (c Commands) withDefaults() Commands {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	return Commands{
		OutErr:   def(c.OutErr, "echo out; echo err 1>&2; exit 3"),
		Cat:      def(c.Cat, "cat"),
		Env:      def(c.Env, `printf '%s\n' "$CONFORMANCE_VAR"; pwd`),
		Block:    def(c.Block, `echo "started $$"; exec sleep 3600`),
		Alive:    def(c.Alive, "kill -0 {id}"),
		ReadFile: def(c.ReadFile, "cat {path}"),
	}
}

// validate checks the options a caller set; errors name the option, the
// value and the rule.
func (o OSOptions) validate() error {
	return checkDurations(map[string]time.Duration{"OSOptions.StartTimeout": o.StartTimeout, "OSOptions.CallTimeout": o.CallTimeout})
}

// validate checks the options a caller set; errors name the option, the
// value and the rule.
func (o TransportOptions) validate() error {
	if o.Target == nil {
		return fmt.Errorf("TransportOptions.Target is nil: it must return a reachable target")
	}
	if err := checkDurations(map[string]time.Duration{
		"TransportOptions.StartTimeout": o.StartTimeout, "TransportOptions.CallTimeout": o.CallTimeout,
		"TransportOptions.WrongHostKeyTimeout": o.WrongHostKeyTimeout,
	}); err != nil {
		return err
	}
	for name, p := range map[string]struct{ value, placeholder string }{
		"TransportOptions.Commands.Alive":    {o.Commands.Alive, "{id}"},
		"TransportOptions.Commands.ReadFile": {o.Commands.ReadFile, "{path}"},
	} {
		if p.value != "" && !strings.Contains(p.value, p.placeholder) {
			return fmt.Errorf("%s %q: must contain the placeholder %s", name, p.value, p.placeholder)
		}
	}
	return nil
}

func checkDurations(d map[string]time.Duration) error {
	for name, v := range d {
		if v < 0 {
			return fmt.Errorf("%s %v: must not be negative (zero means the default)", name, v)
		}
	}
	return nil
}
