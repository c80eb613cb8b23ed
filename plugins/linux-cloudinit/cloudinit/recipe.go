package cloudinit

import (
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// RunCommand runs an uploaded job script; the core replaces {script} with
// the script's path. sshd runs it as `$SHELL -c "<command>"` with the
// user's login shell (/bin/bash, set in the user-data).
//
//   - The script runs in its own session and process group (setsid from
//     util-linux; a background command of a shell without job control is
//     not a group leader, so setsid needs no fork and $! is the group id),
//     so the whole tree it starts can be signalled at once. Unlike `set -m`
//     this works in dash too and prints no job notices.
//   - sshd delivers a signal request with killpg to this shell's process
//     group (OpenSSH session.c), which the script is no longer in. The
//     traps forward TERM, INT or HUP to the script's group, followed by
//     TERM (background commands of a script ignore INT, and nohup'd ones
//     HUP, so the signal alone would leave them running); a second signal
//     sends KILL. A signal that arrives before the script started is
//     forwarded as soon as its pid is known.
//   - The shell waits for the script and exits with its exit code; after a
//     signal, it ends by that same signal, so the exit reports it.
//   - stdout and stderr are not redirected: they stay separate streams.
//
// A SIGKILL of this shell cannot be forwarded (nothing can catch it); the
// transport should send TERM, and TERM again, before KILL. OpenSSH before
// 9.8 refuses signal requests in root sessions, another reason the job
// user is not root.
const RunCommand = `p= s=
f() {
  if [ -n "$s" ]; then k=KILL; else s=$1; k=$1; fi
  if [ -n "$p" ]; then kill -s "$k" -- "-$p"; kill -s TERM -- "-$p"; fi
} 2>/dev/null
trap 'f TERM' TERM
trap 'f INT' INT
trap 'f HUP' HUP
setsid -w bash {script} &
p=$!
if [ -n "$s" ]; then kill -s "$s" -- "-$p" 2>/dev/null; kill -s TERM -- "-$p" 2>/dev/null; fi
wait "$p"
r=$?
while [ -n "$s" ] && kill -0 "$p" 2>/dev/null; do wait "$p"; done
if [ -n "$s" ]; then trap - "$s"; kill -s "$s" $$; fi
exit "$r"`

// ReadinessCommand exits 0 once cloud-init has finished: `cloud-init status
// --wait` exits 0 when it is done and, since cloud-init 23.4, 2 when it is
// done with recoverable errors ("degraded"); 1 is a failure, and then the
// long status goes to stderr for the job log.
const ReadinessCommand = `cloud-init status --wait >/dev/null
r=$?
if [ "$r" -eq 0 ] || [ "$r" -eq 2 ]; then exit 0; fi
cloud-init status --long >&2
exit "$r"`

// Recipe returns how job scripts run on a cloud-init Linux guest.
func Recipe() *pluginv1.RunRecipe {
	return &pluginv1.RunRecipe{
		Shell:            "bash",
		ScriptExtension:  ".sh",
		TempDir:          "/tmp",
		Command:          RunCommand,
		ReadinessCommand: ReadinessCommand,
		PathSeparator:    "/",
	}
}
